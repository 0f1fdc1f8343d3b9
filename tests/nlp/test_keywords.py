from __future__ import annotations

from nlp.keywords import extract_keywords


def test_noun_compound_is_joined():
    assert "返金対応" in extract_keywords("返金対応をお願いします。")


def test_lemmas_and_stopwords():
    kws = extract_keywords("アプリが壊れたので、修理をお願いしたいのですが。")
    assert "アプリ" in kws and "壊れる" in kws and "修理" in kws
    for stop in ("する", "お願い", "ので", "の", "です", "が"):
        assert stop not in kws


def test_politeness_is_not_a_topic():
    assert extract_keywords("いつもお世話になっております。ご返信ありがとうございます。") == ["返信"]


def test_empty():
    assert extract_keywords("") == [] and extract_keywords("  ") == []


def test_overlong_terms_are_dropped_not_cut():
    """A URL or an order number glued into one "noun" is no topic, and the report index that
    carries the keyword list has a row size limit."""
    kws = extract_keywords("a" * 5000 + "が壊れた。注文番号ABCDEFGHIJKLMNOPQRSTUVWXYZ0123が届きません")
    assert kws == ["壊れる", "注文番号", "届く"]  # the id glued on is cut out, the label stays
    assert extract_keywords("返金" * 12 + "が遅い") == ["返金" * 12, "遅い"]  # 24 characters: kept


def test_addresses_and_mentions_are_not_topics():
    assert extract_keywords("@example_support アプリが落ちまくってて仕事にならない") == ["アプリ", "落ちる", "仕事"]
    assert extract_keywords("https://example.com/faq?id=3 を見て info@example.jp に送った") == ["送る"]


def test_a_space_ends_a_compound():
    """「注文番号 A-10234」 is the order number's label and the number, not 「注文番号a」."""
    assert extract_keywords("注文番号 A-10234 が届きません") == ["注文番号", "届く"]
    assert extract_keywords("注文したやつまだ来ない") == ["注文"]


def test_when_is_not_what():
    """Time and amount nouns (UniDic 副詞可能) say when or how much, not what about."""
    assert extract_keywords("先週注文した商品が朝から届かない") == ["注文", "商品", "届く"]
    assert extract_keywords("全部キャンセルしたい") == ["キャンセル"]
    assert extract_keywords("年末年始の配送") == ["年末年始", "配送"]  # a topic of its own
    # before a loanword too, which UniDic may split into plain nouns (ログ + イン)
    assert extract_keywords("最近ログインできない") == ["ログイン"]
    assert extract_keywords("今月キャンペーンのクーポンが使えない") == ["キャンペーン", "クーポン", "使う"]


def test_how_much_and_how_strongly_are_not_what():
    """「二度と使わない」 gave 「度」 and 「いい加減にしろ」 gave 「加減」 as top terms of angry
    customers: a number's counter and an emphasis phrase, not topics."""
    assert extract_keywords("ふざけるな、二度と使わない!返金しろ。いい加減にしろ") == ["ふざける", "使う", "返金"]
    assert extract_keywords("3回問い合わせました。商品が2個届きません") == ["問い合わせる", "商品", "届く"]
    assert extract_keywords("回数券の残り回数") == ["回数券", "残り回数"]  # counter nouns without a number stay


def test_ids_and_codes_are_not_topics():
    assert extract_keywords("お問い合わせ番号: 2026112400123 / 会員ID: user_12345abc") == ["問い合わせ番号", "会員id"]
    assert extract_keywords("ＡＢＣ１２３のエラーコードE-4012が表示されます") == ["エラーコード", "表示"]
    assert extract_keywords("ffffffff-1234-5678-9abc-def012345678 のエラー") == ["エラー"]
    assert extract_keywords("トークンeyJhbGciOiJIUzI1NiJ9が無効") == ["トークン", "無効"]
    assert extract_keywords("iPhone15で落ちます") == ["iphone", "落ちる"]  # a name with a number stays


def test_english_function_words_and_laughter_are_not_topics():
    kws = extract_keywords("アプリがクラッシュします。The app crashes every time I open it")
    assert kws == ["アプリ", "クラッシュ", "app", "crashes", "time", "open"]
    assert extract_keywords("配送が遅いw 草 wwww orz 返金まだですか(笑)") == ["配送", "遅い", "返金"]


def test_attachment_placeholders_and_quoted_lines_are_not_topics():
    assert extract_keywords("[画像]") == [] and extract_keywords("[image]") == []
    assert extract_keywords("[画像] 壊れてました") == ["壊れる"]
    assert extract_keywords("請求書が届きません\n> 前回のお問い合わせ：配送の件") == ["請求書", "届く"]
