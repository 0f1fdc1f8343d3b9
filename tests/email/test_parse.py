"""Decoding real-world Japanese mail: every fixture's exact text, names, subjects, parts.

Pure parsing (no database, no servers): channels.email.EmailAdapter.parse_message.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from channels.base import ChannelError
from channels.email import EmailAdapter
from channels._mail_quote import split_reply
from channels._mail_text import (
    decode_bytes,
    decode_header_value,
    decode_iso2022jp,
    guess_decode,
    html_to_text,
    normalize_subject,
    ticket_token,
)
from tests.email import make_fixtures

FIXTURES = Path(__file__).parent / "fixtures"
ADAPTER = EmailAdapter({"address": "support@example.jp"})


def parse(name: str):
    return ADAPTER.parse_message((FIXTURES / f"{name}.eml").read_bytes())


def test_committed_fixtures_match_the_generator():
    built = make_fixtures.build()
    on_disk = {p.stem: p.read_bytes() for p in FIXTURES.glob("*.eml")}
    assert on_disk == built


def test_nec_table_in_generator_matches_jis_x_0213():
    # An independent codec agrees on the JIS cells the generator writes for NEC characters.
    for ch, cell in make_fixtures._NEC_JIS.items():
        assert cell in ch.encode("iso2022_jp_3")


EXPECTED = {
    "outlook_iso2022jp_nec": dict(
        display_name="山田 太郎（㈱山田商事）", user_id="taro@yamada-shoji.co.jp",
        subject="【至急】㈱山田商事 注文①の件",
        text="お世話になっております。\n㈱山田商事の山田です。\n\n①注文番号：Ⅱ-1234\n②お届け日：11月3日～5日\n\nよろしくお願いいたします。",
        quoted=None),
    "gmail_utf8_reply": dict(
        display_name="山田太郎", user_id="taro.yamada@gmail.com", subject="注文について",
        text="ご連絡ありがとうございます。\n届いた商品の色が違いました。交換をお願いします。",
        quoted="2026年11月1日(日) 10:05 サポート <support@example.jp>:\n\n> 山田様\n>\n"
               "> お問い合わせありがとうございます。\n> ご注文の商品は本日発送いたしました。"),
    "iphone_flowed_iso2022jp": dict(
        display_name="佐藤 花子", user_id="hanako@icloud.com", subject="返品について",
        text="返品の手続きについて教えてください。箱は捨ててしまいました。\n\niPhoneから送信",
        quoted="2026/11/01 10:05、サポート <support@example.jp>のメール:\n\n> 山田様\n> ご注文ありがとうございます。"),
    "docomo_sjis": dict(
        display_name="", user_id="keitai.user@docomo.ne.jp", subject="請求が二重です①",
        text="ｹｰﾀｲから失礼します①\n料金の請求が二重になっています。\n確認してください。", quoted=None),
    "au_split_subject": dict(
        display_name="鈴木一郎", user_id="ichiro-s@ezweb.ne.jp",
        subject="【お問い合わせ】機種変更後にメールが届かなくなりました（至急）",
        text="機種変更してからメールが届きません。\n設定を教えてください。", quoted=None),
    "softbank_no_charset": dict(
        display_name="", user_id="user@softbank.ne.jp", subject="ポイントについて",
        text="ポイントの有効期限を教えてください。", quoted=None),
    "no_charset_sjis": dict(
        display_name="", user_id="keiri@test-corp.co.jp", subject="receipt",
        text="領収書を再発行してください。\n宛名は株式会社テストでお願いします。", quoted=None),
    "euc_jp_unix": dict(
        display_name="田中", user_id="tanaka@example.org", subject="設定の質問",
        text="サーバの設定について質問です。\n①ポート番号は何番ですか。", quoted=None),
    "html_only": dict(
        display_name="高橋", user_id="form@example.net", subject="お問い合わせ",
        text="お問い合わせフォーム\n\nお名前：高橋 健\n\n内容：ログインできません。\n"
             "パスワード再設定メールが届きません & 困っています。\n\n・ブラウザ：Chrome\n・OS：Windows\n\n"
             "<b>これはタグではありません</b>", quoted=None),
    "multipart_attachments": dict(
        display_name="Kenji Ito", user_id="kenji@example.com", subject="請求書の件",
        text="請求書と写真を添付します。\nご確認ください。", quoted=None),
    "outlook_forward": dict(
        display_name="山田 太郎", user_id="taro@yamada-shoji.co.jp", subject="ご注文の確認",
        text="サポート御中\n\n下記の注文確認メールが届いたのですが、心当たりがありません。\n\n"
             "________________________________\n差出人: オンラインショップ <shop@example.com>\n"
             "送信日時: 2026年10月31日 9:00\n宛先: 山田 太郎 <taro@yamada-shoji.co.jp>\n件名: ご注文の確認\n\n"
             "ご注文ありがとうございます。注文番号：A-100", quoted=None),
    "outlook_reply_signature": dict(
        display_name="山田 太郎", user_id="taro@yamada-shoji.co.jp", subject="返品について",
        text="承知しました。明日までに返送します。",
        quoted="━━━━━━━━━━━━━━━━━━━━\n㈱山田商事 営業部\n山田 太郎\nTEL: 03-1234-5678\n━━━━━━━━━━━━━━━━━━━━\n\n"
               "-----Original Message-----\nFrom: サポート <support@example.jp>\n"
               "Sent: Sunday, November 1, 2026 10:05 AM\nTo: 山田 太郎 <taro@yamada-shoji.co.jp>\n"
               "Subject: RE: 返品について [#42]\n\n商品を返送してください。"),
    "no_message_id": dict(
        display_name="", user_id="noreply-form@example.net", subject="Contact form",
        text="フォームからの問い合わせです。", quoted=None),
    "hostile_html_name": dict(
        display_name="<script>alert(1)</script>", user_id="attacker@example.com",
        subject="<img src=x onerror=alert(2)>", text="<script>alert(3)</script> hello", quoted=None),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_decodes_exactly(name):
    inbound = parse(name)
    got = {k: getattr(inbound, k) for k in EXPECTED[name]}
    assert got == EXPECTED[name]
    assert "\ufffd" not in inbound.text + inbound.subject + inbound.display_name + (inbound.quoted or "")


def test_message_id_is_the_external_id_and_references_are_thread_hints():
    inbound = parse("gmail_utf8_reply")
    assert inbound.external_id == "<CAJ+abcDEF123=xyz@mail.gmail.com>"
    assert inbound.thread_hints == ("<helpdesk.42.7.aaaaaaaaaaaaaaaa@example.jp>", "<root-1@example.jp>",
                                    "ticket:42")
    assert inbound.meta["subject"] == "Re: 注文について [#42]"
    assert inbound.sent_at.isoformat() == "2026-11-01T11:30:00+09:00"


def test_mail_without_message_id_gets_a_stable_hash_id():
    a, b = parse("no_message_id"), parse("no_message_id")
    assert a.external_id.startswith("sha256:") and a.external_id == b.external_id
    assert a.meta["reply_to"] == "customer@example.org"  # replies go to Reply-To, not the form robot


def test_new_topic_is_a_new_thread_reply_token_is_a_hint():
    assert parse("outlook_iso2022jp_nec").new_thread is True
    fullwidth_reply = parse("outlook_reply_signature")
    assert fullwidth_reply.thread_hints == ("ticket:42",)
    # "ＲＥ：" with no threading headers: continue the customer's open ticket
    assert fullwidth_reply.new_thread is False


def test_attachments_keep_names_types_and_bytes():
    atts = parse("multipart_attachments").attachments
    assert [(a.filename, a.content_type, a.data) for a in atts] == [
        ("請求書.pdf", "application/pdf", make_fixtures.PDF_BYTES),
        ("㈱写真.png", "image/png", make_fixtures.PNG_BYTES),
        ("list.csv", "text/csv", make_fixtures.CSV_BYTES),  # "../../etc/" path dropped
    ]


def test_attachment_over_the_limit_is_listed_but_not_stored():
    small = EmailAdapter({"max_attachment_bytes": 1000})
    inbound = small.parse_message((FIXTURES / "multipart_attachments.eml").read_bytes())
    pdf = inbound.attachments[0]
    assert (pdf.filename, pdf.size, pdf.data) == ("請求書.pdf", len(make_fixtures.PDF_BYTES), None)
    assert any("請求書.pdf not stored" in n for n in inbound.meta["notes"])


def test_malformed_mime_is_read_as_far_as_possible():
    inbound = parse("malformed_mime")
    assert inbound.subject == "壊れたメール"  # the unterminated encoded word still decodes
    assert inbound.text.startswith("本文は読めま")  # damaged base64 keeps the intact part
    assert "no headers here" in inbound.text
    assert "CloseBoundaryNotFoundDefect" in inbound.meta["defects"]


def test_mail_bomb_of_nested_multiparts_is_refused():
    with pytest.raises(ChannelError, match="too many MIME parts"):
        ADAPTER.parse_message(make_fixtures.nested_bomb(500))


def test_deep_but_small_nesting_keeps_what_is_within_the_depth_limit():
    inbound = ADAPTER.parse_message(make_fixtures.nested_bomb(30))
    assert inbound.text == ""
    assert "nested too deeply" in inbound.meta["notes"]


def test_oversize_mail_becomes_a_header_only_record():
    raw = make_fixtures.huge(2 * 1024 * 1024)
    inbound = EmailAdapter({"max_message_bytes": 1024 * 1024}).parse_message(raw, folder="Quarantine")
    assert inbound.subject == "大きい"
    assert inbound.attachments == ()
    assert inbound.meta["oversize"]["size"] == len(raw)
    assert "「Quarantine」" in inbound.text and "2.0 MB" in inbound.text


@pytest.mark.parametrize("raw", [b"", b"\r\n\r\n", b"Subject: no sender\r\n\r\nbody"])
def test_mail_without_sender_is_refused(raw):
    with pytest.raises(ChannelError):
        ADAPTER.parse_message(raw)


def test_webhook_route_never_accepts_email():
    assert ADAPTER.verify({}, b"From: a@b\r\n\r\nx") is False
    with pytest.raises(ChannelError):
        ADAPTER.parse({"json": "payload"})


# ------------------------------------------------------------------ decoding units


def test_iso2022jp_nec_and_ibm_characters_decode_via_cp932():
    # ① ㈱ Ⅱ: NEC row 13, which JIS X 0208 (and so Python's iso2022_jp) lacks
    data = b"\x1b$B-!-j-6\x1b(B ok"
    assert decode_iso2022jp(data) == "①㈱Ⅱ ok"
    assert decode_bytes(data, "ISO-2022-JP") == "①㈱Ⅱ ok"
    with pytest.raises(UnicodeDecodeError):
        data.decode("iso2022_jp")  # why we do not use Python's codec


def test_half_width_katakana_escape_decodes():
    assert decode_iso2022jp(b"\x1b(I6@6E\x1b(B") == "ｶﾀｶﾅ"


@pytest.mark.parametrize("text", ["日本語のテキストです。", "株式会社①の請求書", "ｱｲｳ半角カナ混じり"])
def test_guess_decode_without_label(text):
    assert guess_decode(text.encode("utf-8")) == text
    assert guess_decode(text.encode("cp932")) == text
    assert guess_decode(text.encode("euc_jis_2004")) == text


def test_utf8_is_tried_before_cp932_because_cp932_accepts_utf8_bytes():
    data = "日本".encode()
    assert data.decode("cp932") != "日本"  # cp932 would garble it silently
    assert guess_decode(data) == "日本"


@pytest.mark.parametrize("declared,data,expected", [
    ("Shift_JIS", "①②㈱".encode("cp932"), "①②㈱"),  # Shift_JIS label, cp932 bytes
    ("ISO-2022-JP", "注文".encode("cp932"), "注文"),  # 8-bit bytes under a 7-bit label
    ("Shift_JIS", "注文です".encode("utf-8"), "注文です"),
    ("Shift_JIS", "お問い合わせの件".encode("utf-8"), "お問い合わせの件"),  # cp932 "decodes" this to mojibake
    ("Shift_JIS", "羞恥".encode("cp932"), "羞恥"),  # real Shift_JIS that happens to be valid UTF-8 ("㵒p")
    ("iso-8859-1", "注文です".encode("utf-8"), "注文です"),
    ("x-unknown", "注文です".encode("euc_jp"), "注文です"),
    ("us-ascii", b"plain", "plain"),
])
def test_misdeclared_charsets_still_decode(declared, data, expected):
    assert decode_bytes(data, declared) == expected


@pytest.mark.parametrize("raw,expected", [
    # one UTF-8 character split across two encoded words and a folded line
    ("=?UTF-8?B?" + base64.b64encode("こん".encode() + "に".encode()[:1]).decode() + "?=\r\n =?UTF-8?B?"
     + base64.b64encode("に".encode()[1:] + "ちは".encode()).decode() + "?=", "こんにちは"),
    ("=?utf-8?q?=E6=97=A5=E6=9C=AC_=E8=AA=9E?=", "日本 語"),
    ("=?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?= plain", "日本語 plain"),
    ("prefix =?UTF-8?B?5pel5pys?= =?UTF-8?B?6Kqe?= suffix", "prefix 日本語 suffix"),
    ("=?Shift_JIS?B?" + base64.b64encode("①".encode("cp932")).decode() + "?=", "①"),
    ("=?Shift_JIS?B?" + base64.b64encode("件名はUTF-8".encode()).decode() + "?=", "件名はUTF-8"),
    ("Subject\r\n\twith fold", "Subject with fold"),
])
def test_rfc2047_headers(raw, expected):
    assert decode_header_value(raw) == expected


@pytest.mark.parametrize("raw,expected", [
    # 4k+1 characters: the last one holds no whole byte (this crashed the parser)
    ("=?UTF-8?B?" + base64.b64encode("注文".encode()).decode() + "Q?=", "注文"),
    ("=?UTF-8?B?5pel5p*ys?=", "日本"),  # a character outside the alphabet mid-word
    ("=?UTF-8?B?5pel=5pys?=", "日本"),  # padding where none belongs
])
def test_damaged_base64_headers_keep_every_whole_byte(raw, expected):
    assert decode_header_value(raw) == expected


def test_raw_8bit_sjis_header_is_guessed():
    assert decode_header_value("件名テスト".encode("cp932")) == "件名テスト"


def test_header_text_never_contains_line_breaks():
    assert decode_header_value("=?UTF-8?B?" + base64.b64encode(b"a\r\nBcc: x@y").decode() + "?=") == "a Bcc: x@y"


@pytest.mark.parametrize("subject,topic,token", [
    ("Re: 注文について", "注文について", None),
    ("RE: Fwd: 注文について [#1234]", "注文について", 1234),
    ("返信: 注文について", "注文について", None),
    ("転送: 注文について", "注文について", None),
    ("ＲＥ： 注文について", "注文について", None),
    ("返信：ＦＷ：注文①について［＃７］", "注文①について", 7),
    ("Re[2]: 見積", "見積", None),
    ("Reservation", "Reservation", None),
])
def test_subject_normalisation(subject, topic, token):
    assert normalize_subject(subject) == topic
    assert ticket_token(subject) == token


def test_html_to_text_drops_scripts_and_keeps_escaped_text_as_text():
    # a spaced paragraph's margin, then the empty line the <br> starts: two blank rows, as a browser shows it
    assert html_to_text("<p>a<script>x()</script><style>p{}</style>&lt;b&gt;</p><br>b") == "a<b>\n\n\nb"


@pytest.mark.parametrize("text,body,quoted_start", [
    ("了解です\n\n山田さんは書きました:\n> 前文", "了解です", "山田さんは書きました:"),
    ("了解です\n\n2026年11月1日(日) 10:00 山田 <a@b> wrote:\n> 前文", "了解です", "2026年11月1日(日) 10:00 山田"),
    ("了解です\n\nOn Sun, Nov 1, 2026 at 10:00 AM 山田 <\na@b.jp> wrote:\n> x", "了解です", "On Sun"),
    ("了解です\n-----Original Message-----\nFrom: x", "了解です", "-----Original Message-----"),
    ("了解です\n\n差出人: サポート <s@x.jp>\n送信日時: 2026年11月1日 10:00\n件名: 注文\n\n本文",
     "了解です", "差出人:"),
    ("了解です\n\n> 前文\n> 前文2", "了解です", "> 前文"),
    ("了解です\n\n-- \n山田\nTEL 03", "了解です", "-- "),
    ("了解です\n────────\n山田 太郎\n────────", "了解です", "────"),
    # Gmail wraps a long Japanese header between the name and the address
    ("送り状番号は 1234-5678 です。\n\n2026年11月25日(水) 0:35 サンプル サポート カスタマーサポート窓口 <\n"
     "support@example.com>:\n\n> 田中様", "送り状番号は 1234-5678 です。", "2026年11月25日(水) 0:35 サンプル"),
    # the customer's own ruled block comes first; the signature after it is still one
    ("注文の件です。\n──────────\n注文番号: 12345\n──────────\n届いていません。\n\n-- \n山田\nTEL 03",
     "注文の件です。\n──────────\n注文番号: 12345\n──────────\n届いていません。", "-- "),
])
def test_quote_headers_and_signatures_are_split_off(text, body, quoted_start):
    new, quoted = split_reply(text)
    assert new == body
    assert quoted.startswith(quoted_start)


@pytest.mark.parametrize("rule", ["──────────", "----------", "━━━━━━━━━━"])
def test_ruled_block_with_text_after_it_is_the_customers_text(rule):
    text = (f"以下の注文について質問です。\n{rule}\n注文番号: 12345\n商品名: ワイヤレスイヤホン\n数量: 2\n{rule}\n"
            "届いた商品が1つしかありません。至急対応してください。")
    assert split_reply(text) == (text, None)


@pytest.mark.parametrize("text", [
    "サポートご担当者様\n----------\n昨日注文した商品がまだ届いていません。\n注文番号は12345です。\nご確認をお願いします。",
    "お世話になっております。\n----------\n注文が届かない\n至急確認願います",
    "ご担当者様\n====================\n送り状番号 1234-5678-9012\n届いていません",
    "Hello,\n----------\nPlease check my order\nIt has not arrived",
])
def test_a_lone_rule_above_the_customers_own_text_cuts_nothing(text):
    assert split_reply(text) == (text, None)


@pytest.mark.parametrize("text,body,signature", [
    (("商品が届きません。確認をお願いします。\n\n----------\n山田 太郎\n株式会社山田商事 営業部\n"
      "TEL: 03-1234-5678\ntaro@yamada-shoji.co.jp\n----------"),
     "商品が届きません。確認をお願いします。",
     "----------\n山田 太郎\n株式会社山田商事 営業部\nTEL: 03-1234-5678\ntaro@yamada-shoji.co.jp\n----------"),
    ("了解です。\n----------\n山田 太郎", "了解です。", "----------\n山田 太郎"),
    ("Thanks.\n----------\nTaro Yamada\nExample Inc.", "Thanks.", "----------\nTaro Yamada\nExample Inc."),
    ("了解です\n--\n山田", "了解です", "--\n山田"),  # "-- " with its space lost
    # a rule above the text and a real signature below it: only the signature goes
    ("山田です\n----------\n注文が届きません。\nよろしくお願いします。\n\n-- \n山田\nTEL 03",
     "山田です\n----------\n注文が届きません。\nよろしくお願いします。", "-- \n山田\nTEL 03"),
    (("了解です\n━━━━━━━━━━━━━━━━\n株式会社サンプル\nカスタマーサポート部 山田\n〒100-0001 東京都千代田区1-1\n"
      "TEL: 03-1234-5678\nhttps://example.jp\n本メールは送信専用です。\n━━━━━━━━━━━━━━━━"),
     "了解です", "━━━━━━━━━━━━━━━━\n株式会社サンプル"),
])
def test_a_rule_followed_by_a_signature_cuts_it_off(text, body, signature):
    new, quoted = split_reply(text)
    assert new == body
    assert quoted.startswith(signature)


def test_mail_whose_text_follows_a_dash_rule_keeps_it():
    text = ("株式会社サンプル サポートご担当者様\n\n----------\n"
            "先日注文した商品がまだ届いていません。\n至急ご確認ください。\n")
    raw = make_fixtures.mail([
        ("From", "taro@customer.jp"), ("To", "support@example.jp"),
        ("Subject", make_fixtures.b64word("ISO-2022-JP", make_fixtures.jis("商品未着"))),
        ("Message-ID", "<rule.1@customer.jp>"), ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=ISO-2022-JP"),
    ], make_fixtures.jis(make_fixtures.crlf(text)))
    inbound = ADAPTER.parse_message(raw)
    assert inbound.text == text.strip() and inbound.quoted is None


def test_inline_quotes_in_the_middle_are_kept():
    text = "> 在庫はありますか\nあります。\n> 価格は\n1000円です。"
    assert split_reply(text) == (text, None)


def test_message_that_is_only_a_quote_is_kept_whole():
    assert split_reply("> 前文だけ") == ("> 前文だけ", None)


def test_eight_bit_headers_never_leak_undecodable_text():
    raw = ("From: 山田 <山田@example.jp>\r\nSubject: テスト\r\nMessage-ID: <日本@example.jp>\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\n本文\r\n").encode()
    inbound = ADAPTER.parse_message(raw)
    assert (inbound.user_id, inbound.display_name, inbound.subject) == ("山田@example.jp", "山田", "テスト")
    assert inbound.external_id.startswith("sha256:")  # a non-ASCII Message-ID is not trusted
    broken = raw.replace("山田@".encode(), b"\xff\xfe@")
    with pytest.raises(ChannelError):
        ADAPTER.parse_message(broken)


def test_raw_8bit_junk_in_mime_headers_degrades_to_an_octet_stream_attachment():
    raw = (b"From: a@b.jp\r\nSubject: x\r\nMessage-ID: <junk@b.jp>\r\nContent-Type: multipart/mixed; boundary=zz\r\n"
           b"\r\n--zz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n--zz\r\nContent-Type: appl\xffication/x\r\n"
           b"Content-Disposition: attachment; filename*=utf-8''%E8%AB%8B%E6%B1%82\xff.pdf\r\n\r\ndata\r\n--zz--\r\n")
    inbound = ADAPTER.parse_message(raw)
    (att,) = inbound.attachments
    assert (inbound.text, att.content_type, att.data) == ("hi", "application/octet-stream", b"data")
    att.filename.encode("utf-8")  # storable: no lone surrogates


def test_iso2022jp2_extra_sets_fall_back_to_pythons_codec():
    text = "日本語と中文：汉语"
    data = text.encode("iso2022_jp_2")
    with pytest.raises(UnicodeDecodeError):
        decode_iso2022jp(data)  # a GB 2312 escape, outside plain ISO-2022-JP
    assert decode_bytes(data, "ISO-2022-JP-2") == text
    assert guess_decode(data) == text


def test_raw_8bit_attachment_names_are_guessed_like_raw_8bit_headers():
    atts = parse("raw_8bit_attachment_names").attachments
    assert [(a.filename, a.data) for a in atts] == [("見積書①.pdf", make_fixtures.PDF_BYTES),  # UTF-8
                                                    ("注文一覧.csv", make_fixtures.CSV_BYTES)]  # Shift_JIS


def test_oversize_note_gives_a_limit_under_a_megabyte_in_kilobytes():
    raw = make_fixtures.huge(364_000)
    inbound = EmailAdapter({"max_message_bytes": 200_000}).parse_message(raw)
    assert "（356 KB、上限 195 KB）" in inbound.text


@pytest.mark.parametrize("header", [
    "Auto-Submitted: auto-replied", "Precedence: auto_reply", "Precedence: bulk", "X-Autoreply: yes",
    "X-Autorespond: vacation", "X-Autogenerated: Reply", "X-Auto-Response: yes",
])
def test_machine_sent_mail_is_marked_auto_submitted(header):
    raw = header.encode() + b"\r\n" + (FIXTURES / "gmail_utf8_reply.eml").read_bytes()
    assert ADAPTER.parse_message(raw).meta["auto_submitted"] is True


@pytest.mark.parametrize("header", ["Auto-Submitted: no", "X-Autoreply: no", "Precedence: list"])
def test_mail_a_person_sent_is_not_auto_submitted(header):
    raw = header.encode() + b"\r\n" + (FIXTURES / "gmail_utf8_reply.eml").read_bytes()
    assert "auto_submitted" not in ADAPTER.parse_message(raw).meta


def test_delivery_report_names_the_returned_mail_and_the_error():
    inbound = ADAPTER.parse_message(make_fixtures.dsn("<helpdesk.5.9.0123456789abcdef@example.jp>"))
    assert inbound.meta["bounce"] == {
        "message_ids": ["<helpdesk.5.9.0123456789abcdef@example.jp>"],
        "error": "bounced: taro@customer.jp: 550 5.1.1 <taro@customer.jp>: Recipient address rejected: User unknown"}


def test_delay_warning_is_a_delivery_report_without_an_error():
    inbound = ADAPTER.parse_message(make_fixtures.dsn("<helpdesk.5.9.0123456789abcdef@example.jp>", "delayed"))
    assert inbound.meta["bounce"]["error"] is None


def test_mail_from_the_inboxs_own_address_is_marked_as_ours():
    raw = (FIXTURES / "docomo_sjis.eml").read_bytes().replace(b"keitai.user@docomo.ne.jp", b"Support@Example.jp")
    assert ADAPTER.parse_message(raw).meta["from_us"] is True
    assert "from_us" not in parse("docomo_sjis").meta
