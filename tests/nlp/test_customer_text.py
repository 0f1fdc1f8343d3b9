"""What customers really write: half-width kana, long emails, quoted replies, kaomoji."""
from __future__ import annotations

import pytest

from nlp.text import fold_halfwidth_kana, strip_quoted

ORDER_LINES = ["お世話になっております。山田と申します。", "以下の内容で注文しております。", "注文日：2026年10月10日",
               "商品名：冷蔵庫", "数量：1台", "配送先：東京都千代田区丸の内一丁目", "支払い方法：クレジットカード",
               "配送希望日：11月20日午前", "備考：設置もお願いしています", "会員番号：00123456",
               "電話番号は登録のものと同じです", "注文確認メールは受け取っています。"]
FACTS = "\n".join(ORDER_LINES * 3) + "\n"  # about 300 tokens of order details, over the model's 128


def test_half_width_katakana_reads_like_full_width(model):
    # The tokeniser left ﾀﾞ as 「タ」+「゙」: 「ﾀﾞﾒですね」 was neutral, 「ダメですね」 negative.
    half, full = model.predict(["ﾀﾞﾒですね", "ダメですね"])
    assert half.label == full.label == "negative"
    assert half.probs == full.probs


def test_fold_halfwidth_kana_touches_nothing_else():
    assert fold_halfwidth_kana("ﾊﾞｸﾞばかり｡ﾊﾟｽﾜｰﾄﾞ～😡ＡＢＣ") == "バグばかり。パスワード～😡ＡＢＣ"
    assert fold_halfwidth_kana("") == ""


def test_a_long_email_is_judged_on_its_end_too(model):
    """Only the first 128 tokens used to count: the closing complaint of a long email was cut off."""
    ending = "もう二度と御社では買いません。本当に最悪です。"
    facts, complaint = model.predict([FACTS, FACTS + ending])
    assert facts.label == "neutral"
    assert complaint.label == "negative", complaint.probs


def test_long_and_short_texts_in_one_batch_keep_their_order(model):
    texts = ["ありがとうございました、助かりました！", FACTS * 30, "", "何度も問い合わせているのに返事がない。いい加減にしてください"]
    out = model.predict(texts, batch_size=2)
    assert [p.label for p in out] == ["positive", "neutral", "neutral", "negative"]


def test_the_quoted_mail_is_not_the_customer_speaking(model):
    reply = ("最悪です。返金してください。\n\n> 2026年11月1日 support@example.com:\n"
             "> いつもご利用ありがとうございます。大変満足いただけて嬉しいです。")
    (p,) = model.predict([reply])
    assert p.label == "negative", p.probs


def test_strip_quoted():
    assert strip_quoted("最悪です。\n> ありがとう\n＞ 嬉しい\n>> 以前の話\n以上") == "最悪です。\n以上"
    assert strip_quoted("> 転送します\n> 全部引用") == "> 転送します\n> 全部引用"  # nothing else: kept
    for kaomoji in (">_< 困った", "＞＜ 困った", ">.< 困った"):
        assert strip_quoted(f"{kaomoji}\nはい") == f"{kaomoji}\nはい"


@pytest.mark.parametrize(("text", "label"), [
    ("（´；ω；｀）", "negative"),
    ("最悪😡", "negative"),
    ("ﾛｸﾞｲﾝできません", "negative"),
    ("素晴らしい対応ですね。電話は繋がらないし", "negative"),  # sarcasm
    ("[画像]", "neutral"),
    ("\u3000\u3000", "neutral"),
])
def test_what_customers_write(model, text, label):
    (p,) = model.predict([text])
    assert p.label == label, (text, p.probs)
