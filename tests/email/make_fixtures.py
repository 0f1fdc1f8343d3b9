"""Build the raw .eml fixtures the way real Japanese mailers write them.

Run ``python -m tests.email.make_fixtures`` to (re)write tests/email/fixtures/;
the tests also check that the committed files equal what this script builds.
The bytes are produced with Python's own codecs plus a hand-written table for
the NEC special characters (JIS row 13), never with the code under test.
"""

from __future__ import annotations

import base64
import quopri
from pathlib import Path

HERE = Path(__file__).parent / "fixtures"
CRLF = b"\r\n"

# NEC row 13 (cp932 0x87xx) in ISO-2022-JP: what Outlook and carrier phones emit.
# (The same cells as JIS X 0213 plane 1; test_fixtures checks them against iso2022_jp_3.)
_NEC_JIS = {"①": b"-!", "②": b'-"', "③": b"-#", "Ⅱ": b"-6", "㈱": b"-j", "№": b"-b", "㍉": b"-@"}


def jis(text: str) -> bytes:
    """ISO-2022-JP bytes, NEC characters included (each run closed with ESC ( B)."""
    out = b""
    for ch in text:
        if ch in _NEC_JIS:
            out += b"\x1b$B" + _NEC_JIS[ch] + b"\x1b(B"
        else:
            out += ch.encode("iso2022_jp")
    # Merge "ESC ( B ESC $ B" pairs the way real encoders keep one run.
    while b"\x1b(B\x1b$B" in out:
        out = out.replace(b"\x1b(B\x1b$B", b"")
    return out


def b64word(charset: str, data: bytes) -> bytes:
    return b"=?" + charset.encode() + b"?B?" + base64.b64encode(data) + b"?="


def b64lines(data: bytes) -> bytes:
    enc = base64.b64encode(data)
    return CRLF.join(enc[i:i + 76] for i in range(0, len(enc), 76))


def mail(headers: list[tuple[str, bytes | str]], body: bytes) -> bytes:
    lines = [name.encode() + b": " + (v.encode() if isinstance(v, str) else v) for name, v in headers]
    return CRLF.join(lines) + CRLF + CRLF + body


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


# ------------------------------------------------------------------ fixtures


def outlook_iso2022jp_nec() -> bytes:
    """Outlook 2016 (Japanese Windows): ISO-2022-JP with ①②㈱Ⅱ, alternative with HTML."""
    text = "お世話になっております。\n㈱山田商事の山田です。\n\n①注文番号：Ⅱ-1234\n②お届け日：11月3日〜5日\n\nよろしくお願いいたします。\n"
    html = "<html><body><p>お世話になっております。</p></body></html>"
    body = (b"This is a multi-part message in MIME format.\r\n\r\n"
            b"------=_NextPart_000_0001_01DA0000.00000000\r\n"
            b'Content-Type: text/plain;\r\n\tcharset="iso-2022-jp"\r\n'
            b"Content-Transfer-Encoding: 7bit\r\n\r\n" + jis(crlf(text)) + b"\r\n"
            b"------=_NextPart_000_0001_01DA0000.00000000\r\n"
            b'Content-Type: text/html;\r\n\tcharset="iso-2022-jp"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + quopri.encodestring(jis(html)) + b"\r\n"
            b"------=_NextPart_000_0001_01DA0000.00000000--\r\n")
    return mail([
        ("From", b'"' + b64word("iso-2022-jp", jis("山田 太郎（㈱山田商事）")) + b'" <taro@yamada-shoji.co.jp>'),
        ("To", "<support@example.jp>"),
        ("Subject", b64word("iso-2022-jp", jis("【至急】㈱山田商事 注文①の件"))),
        ("Date", "Sun, 1 Nov 2026 10:00:00 +0900"),
        ("Message-ID", "<000001da0000$00000000$00000000@yamada-shoji.co.jp>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'multipart/alternative;\r\n\tboundary="----=_NextPart_000_0001_01DA0000.00000000"'),
        ("X-Mailer", "Microsoft Outlook 16.0"),
        ("Content-Language", "ja"),
    ], body)


def gmail_utf8_reply() -> bytes:
    """Gmail (web, Japanese UI): UTF-8 base64, reply with Gmail's Japanese quote header."""
    text = ("ご連絡ありがとうございます。\n届いた商品の色が違いました。交換をお願いします。\n\n"
            "2026年11月1日(日) 10:05 サポート <support@example.jp>:\n\n"
            "> 山田様\n>\n> お問い合わせありがとうございます。\n> ご注文の商品は本日発送いたしました。\n")
    html = ('<div dir="ltr">ご連絡ありがとうございます。<br>届いた商品の色が違いました。交換をお願いします。</div>'
            '<br><div class="gmail_quote">…</div>')
    boundary = b"000000000000a1b2c3d4e5f60718"
    body = (b"--" + boundary + b"\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64lines(crlf(text).encode()) + b"\r\n"
            b"--" + boundary + b"\r\nContent-Type: text/html; charset=\"UTF-8\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64lines(html.encode()) + b"\r\n"
            b"--" + boundary + b"--\r\n")
    return mail([
        ("MIME-Version", "1.0"),
        ("References", "<root-1@example.jp>\r\n <helpdesk.42.7.aaaaaaaaaaaaaaaa@example.jp>"),
        ("In-Reply-To", "<helpdesk.42.7.aaaaaaaaaaaaaaaa@example.jp>"),
        ("From", b64word("UTF-8", "山田太郎".encode()) + b" <taro.yamada@gmail.com>"),
        ("Date", "Sun, 1 Nov 2026 11:30:00 +0900"),
        ("Message-ID", "<CAJ+abcDEF123=xyz@mail.gmail.com>"),
        ("Subject", b"Re: " + b64word("UTF-8", "注文について".encode()) + b" [#42]"),
        ("To", "サポート <support@example.jp>".encode()),
        ("Content-Type", b'multipart/alternative; boundary="' + boundary + b'"'),
    ], body)


def iphone_flowed_iso2022jp() -> bytes:
    """iPhone Mail (Japanese): ISO-2022-JP, format=flowed; delsp=yes, iPhone quote header."""
    # Soft breaks: a line ending in a space joins the next; with delsp=yes the space goes.
    text = ("返品の手続きについて教えてく \nださい。箱は捨ててしまいました。\n\niPhoneから送信\n\n"
            "2026/11/01 10:05、サポート <support@example.jp>のメール:\n\n> 山田様\n> ご注文ありがとうございます。\n")
    return mail([
        ("Content-Type", "text/plain;\r\n\tcharset=iso-2022-jp;\r\n\tformat=flowed;\r\n\tdelsp=yes"),
        ("Content-Transfer-Encoding", "7bit"),
        ("From", b64word("ISO-2022-JP", jis("佐藤 花子")) + b" <hanako@icloud.com>"),
        ("Mime-Version", "1.0 (1.0)"),
        ("Date", "Sun, 1 Nov 2026 12:00:00 +0900"),
        ("Subject", b"Re: " + b64word("ISO-2022-JP", jis("返品について"))),
        ("Message-Id", "<5F1B2C3D-0000-4000-8000-ABCDEFABCDEF@icloud.com>"),
        ("In-Reply-To", "<helpdesk.9.20.bbbbbbbbbbbbbbbb@example.jp>"),
        ("To", "support@example.jp"),
        ("X-Mailer", "iPhone Mail (21A360)"),
    ], jis(crlf(text)))


def docomo_sjis() -> bytes:
    """docomo feature phone: 8-bit Shift_JIS (really cp932: ① and half-width kana), SJIS subject."""
    text = "ｹｰﾀｲから失礼します①\n料金の請求が二重になっています。\n確認してください。\n"
    return mail([
        ("Return-Path", "<keitai.user@docomo.ne.jp>"),
        ("From", "keitai.user@docomo.ne.jp"),
        ("To", "support@example.jp"),
        ("Subject", b64word("Shift_JIS", "請求が二重です①".encode("cp932"))),
        ("Date", "Sun, 01 Nov 2026 13:00:00 +0900 (JST)"),
        ("Message-ID", "<20261101130000.0001@docomo.ne.jp>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=Shift_JIS"),
        ("Content-Transfer-Encoding", "8bit"),
    ], crlf(text).encode("cp932"))


def au_split_subject() -> bytes:
    """au (ezweb) phones: a long subject in several ISO-2022-JP words over folded lines,
    and a sender name mis-declared as ISO-2022-JP while its bytes are Shift_JIS."""
    words = ["【お問い合わせ】", "機種変更後にメール", "が届かなくなりました", "（至急）"]
    subject = b"\r\n ".join(b64word("ISO-2022-JP", jis(w)) for w in words)
    text = "機種変更してからメールが届きません。\r\n設定を教えてください。\r\n"
    return mail([
        ("From", b64word("ISO-2022-JP", "鈴木一郎".encode("cp932")) + b" <ichiro-s@ezweb.ne.jp>"),
        ("To", "support@example.jp"),
        ("Subject", subject),
        ("Date", "Sun, 1 Nov 2026 14:00:00 +0900"),
        ("Message-ID", "<au.20261101140000.77@ezweb.ne.jp>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=ISO-2022-JP"),
        ("Content-Transfer-Encoding", "7bit"),
    ], jis(text))


def softbank_no_charset() -> bytes:
    """SoftBank/old mailers: text/plain with no charset at all, body in ISO-2022-JP."""
    text = "ポイントの有効期限を教えてください。\r\n"
    return mail([
        ("From", "user@softbank.ne.jp"),
        ("To", "support@example.jp"),
        ("Subject", b64word("ISO-2022-JP", jis("ポイントについて"))),
        ("Date", "Sun, 1 Nov 2026 15:00:00 +0900"),
        ("Message-ID", "<sb.0001@softbank.ne.jp>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain"),
    ], jis(text))


def no_charset_sjis() -> bytes:
    """No Content-Type at all and raw Shift_JIS bytes (an old PC mailer)."""
    text = "領収書を再発行してください。\r\n宛名は株式会社テストでお願いします。\r\n"
    return mail([
        ("From", "keiri@test-corp.co.jp"),
        ("To", "support@example.jp"),
        ("Subject", "receipt"),
        ("Date", "Sun, 1 Nov 2026 15:30:00 +0900"),
        ("Message-ID", "<old.pc.0001@test-corp.co.jp>"),
    ], text.encode("cp932"))


def euc_jp_unix() -> bytes:
    """A Unix mailer (Mew/Wanderlust era): EUC-JP 8-bit with an NEC ① (eucJP-ms)."""
    text = "サーバの設定について質問です。\n①ポート番号は何番ですか。\n"
    return mail([
        ("From", b64word("EUC-JP", "田中".encode("euc_jp")) + b" <tanaka@example.org>"),
        ("To", "support@example.jp"),
        ("Subject", b64word("EUC-JP", "設定の質問".encode("euc_jp"))),
        ("Date", "Sun, 1 Nov 2026 16:00:00 +0900"),
        ("Message-Id", "<20261101.160000.tanaka@example.org>"),
        ("Mime-Version", "1.0"),
        ("Content-Type", "Text/Plain; charset=euc-jp"),
        ("Content-Transfer-Encoding", "8bit"),
    ], crlf(text).encode("euc_jis_2004"))


def html_only() -> bytes:
    """A web form / marketing tool: HTML only, quoted-printable UTF-8, script and style inside."""
    html = ("<!DOCTYPE html><html><head><title>お問い合わせ</title>"
            "<style>p { color: red; }</style><script>alert('x')</script></head><body>"
            "<h1>お問い合わせフォーム</h1><p>お名前：高橋&nbsp;健</p>"
            "<p>内容：ログインできません。<br>パスワード再設定メールが届きません &amp; 困っています。</p>"
            "<ul><li>ブラウザ：Chrome</li><li>OS：Windows</li></ul>"
            "<p>&lt;b&gt;これはタグではありません&lt;/b&gt;</p>"
            "<script>document.cookie</script></body></html>")
    return mail([
        ("From", "=?UTF-8?Q?=E9=AB=98=E6=A9=8B?= <form@example.net>"),
        ("To", "support@example.jp"),
        ("Subject", "=?UTF-8?Q?=E3=81=8A=E5=95=8F=E3=81=84=E5=90=88=E3=82=8F=E3=81=9B?="),
        ("Date", "Sun, 1 Nov 2026 17:00:00 +0900"),
        ("Message-ID", "<form.0001@example.net>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/html; charset=UTF-8"),
        ("Content-Transfer-Encoding", "quoted-printable"),
    ], quopri.encodestring(html.encode()))


PDF_BYTES = b"%PDF-1.4\n% fixture invoice\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)
CSV_BYTES = "商品,数量\nりんご,3\n".encode("cp932")


def multipart_attachments() -> bytes:
    """Thunderbird-style mixed mail: UTF-8 text, a PDF with an RFC 2231 filename, an image
    with an Outlook-style RFC 2047 filename (㈱ in ISO-2022-JP), and a Shift_JIS CSV."""
    b = b"------------x9y8z7w6v5u4"
    body = (b"This is a multi-part message in MIME format.\r\n"
            b"--" + b + b"\r\nContent-Type: text/plain; charset=UTF-8; format=flowed\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" + crlf("請求書と写真を添付します。\nご確認ください。\n").encode() + b"\r\n"
            b"--" + b + b"\r\nContent-Type: application/pdf; name*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8.pdf\r\n"
            b"Content-Disposition: attachment;\r\n filename*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8.pdf\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64lines(PDF_BYTES) + b"\r\n"
            b"--" + b + b"\r\nContent-Type: image/png;\r\n name=\"" + b64word("ISO-2022-JP", jis("㈱写真.png")) + b"\"\r\n"
            b"Content-Disposition: inline;\r\n filename=\"" + b64word("ISO-2022-JP", jis("㈱写真.png")) + b"\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64lines(PNG_BYTES) + b"\r\n"
            b"--" + b + b"\r\nContent-Type: text/csv; charset=Shift_JIS; name=\"list.csv\"\r\n"
            b"Content-Disposition: attachment; filename=\"../../etc/list.csv\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64lines(CSV_BYTES) + b"\r\n"
            b"--" + b + b"--\r\n")
    return mail([
        ("From", "Kenji Ito <kenji@example.com>"),
        ("To", "support@example.jp"),
        ("Subject", b64word("UTF-8", "請求書の件".encode())),
        ("Date", "Sun, 1 Nov 2026 18:00:00 +0900"),
        ("Message-ID", "<tb.0001@example.com>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", b'multipart/mixed; boundary="' + b + b'"'),
        ("User-Agent", "Mozilla Thunderbird"),
    ], body)


def outlook_forward() -> bytes:
    """Outlook forward (FW:): the forwarded 差出人/送信日時/宛先/件名 block stays in the body."""
    text = ("サポート御中\n\n下記の注文確認メールが届いたのですが、心当たりがありません。\n\n"
            "________________________________\n差出人: オンラインショップ <shop@example.com>\n"
            "送信日時: 2026年10月31日 9:00\n宛先: 山田 太郎 <taro@yamada-shoji.co.jp>\n件名: ご注文の確認\n\n"
            "ご注文ありがとうございます。注文番号：A-100\n")
    return mail([
        ("From", b'"' + b64word("iso-2022-jp", jis("山田 太郎")) + b'" <taro@yamada-shoji.co.jp>'),
        ("To", "<support@example.jp>"),
        ("Subject", b"FW: " + b64word("iso-2022-jp", jis("ご注文の確認"))),
        ("Date", "Sun, 1 Nov 2026 19:00:00 +0900"),
        ("Message-ID", "<fw.0001@yamada-shoji.co.jp>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'text/plain; charset="iso-2022-jp"'),
        ("Content-Transfer-Encoding", "7bit"),
    ], jis(crlf(text)))


def outlook_reply_signature() -> bytes:
    """Outlook reply: new text, a ━━━ framed signature, then -----Original Message----- history."""
    text = ("承知しました。明日までに返送します。\n\n"
            "━━━━━━━━━━━━━━━━━━━━\n㈱山田商事 営業部\n山田 太郎\nTEL: 03-1234-5678\n━━━━━━━━━━━━━━━━━━━━\n\n"
            "-----Original Message-----\nFrom: サポート <support@example.jp>\nSent: Sunday, November 1, 2026 10:05 AM\n"
            "To: 山田 太郎 <taro@yamada-shoji.co.jp>\nSubject: RE: 返品について [#42]\n\n商品を返送してください。\n")
    return mail([
        ("From", b'"' + b64word("iso-2022-jp", jis("山田 太郎")) + b'" <taro@yamada-shoji.co.jp>'),
        ("To", "<support@example.jp>"),
        ("Subject", b64word("iso-2022-jp", jis("ＲＥ： 返品について [#42]"))),
        ("Date", "Sun, 1 Nov 2026 20:00:00 +0900"),
        ("Message-ID", "<re.0001@yamada-shoji.co.jp>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'text/plain; charset="iso-2022-jp"'),
        ("Content-Transfer-Encoding", "7bit"),
    ], jis(crlf(text)))


def no_message_id() -> bytes:
    """A script-sent mail with no Message-ID: dedupe falls back to a hash of the bytes."""
    return mail([
        ("From", "noreply-form@example.net"),
        ("Reply-To", "customer@example.org"),
        ("To", "support@example.jp"),
        ("Subject", "Contact form"),
        ("Date", "Sun, 1 Nov 2026 21:00:00 +0900"),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Transfer-Encoding", "8bit"),
    ], "フォームからの問い合わせです。\r\n".encode())


def malformed_mime() -> bytes:
    """Broken MIME: a boundary that never closes, bad base64, a part with no headers."""
    return mail([
        ("From", "broken@example.com"),
        ("To", "support@example.jp"),
        ("Subject", "=?UTF-8?B?5aOK44KM44Gf?= =?UTF-8?B?44Oh44O844Or"),  # second word never closes
        ("Message-ID", "<broken.0001@example.com>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'multipart/mixed; boundary="zzz"'),
    ], b"--zzz\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
       + base64.b64encode("本文は読めます".encode())[:-3] + b"!!!\r\n--zzz\r\n\r\nno headers here\r\n")


def hostile_html_name() -> bytes:
    """Script in the display name, subject and body: stored as text, escaped in the agent view."""
    return mail([
        ("From", '"<script>alert(1)</script>" <attacker@example.com>'),
        ("To", "support@example.jp"),
        ("Subject", "<img src=x onerror=alert(2)>"),
        ("Date", "Sun, 1 Nov 2026 22:00:00 +0900"),
        ("Message-ID", "<xss.0001@example.com>"),
        ("Content-Type", "text/plain; charset=utf-8"),
    ], b"<script>alert(3)</script> hello\r\n")


def raw_8bit_attachment_names() -> bytes:
    """Older Japanese mailers: attachment names as raw 8-bit bytes, neither RFC 2231 nor 2047
    (UTF-8 in Content-Disposition, Shift_JIS in Content-Type's name)."""
    b = b"raw8bit"
    body = (b"--" + b + b"\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n" + "見積書を送ります。".encode()
            + b"\r\n--" + b + b"\r\nContent-Type: application/pdf\r\n"
            b'Content-Disposition: attachment; filename="' + "見積書①.pdf".encode() + b'"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64lines(PDF_BYTES) + b"\r\n"
            b'--' + b + b'\r\nContent-Type: text/csv; name="' + "注文一覧.csv".encode("cp932") + b'"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64lines(CSV_BYTES) + b"\r\n"
            b"--" + b + b"--\r\n")
    return mail([
        ("From", "sales@old-mailer.co.jp"),
        ("To", "support@example.jp"),
        ("Subject", b64word("UTF-8", "見積書".encode())),
        ("Date", "Mon, 2 Nov 2026 09:30:00 +0900"),
        ("Message-ID", "<raw8bit.0001@old-mailer.co.jp>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", b'multipart/mixed; boundary="' + b + b'"'),
    ], body)


FIXTURES = {
    "outlook_iso2022jp_nec": outlook_iso2022jp_nec,
    "gmail_utf8_reply": gmail_utf8_reply,
    "iphone_flowed_iso2022jp": iphone_flowed_iso2022jp,
    "docomo_sjis": docomo_sjis,
    "au_split_subject": au_split_subject,
    "softbank_no_charset": softbank_no_charset,
    "no_charset_sjis": no_charset_sjis,
    "euc_jp_unix": euc_jp_unix,
    "html_only": html_only,
    "multipart_attachments": multipart_attachments,
    "outlook_forward": outlook_forward,
    "outlook_reply_signature": outlook_reply_signature,
    "no_message_id": no_message_id,
    "malformed_mime": malformed_mime,
    "hostile_html_name": hostile_html_name,
    "raw_8bit_attachment_names": raw_8bit_attachment_names,
}


def build() -> dict[str, bytes]:
    return {name: fn() for name, fn in FIXTURES.items()}


def nested_bomb(depth: int) -> bytes:
    """Multiparts nested ``depth`` deep (built at test time, not committed)."""
    body = b"Content-Type: text/plain\r\n\r\nbottom\r\n"
    for i in range(depth, 0, -1):
        body = (b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)) + body + \
               (b"\r\n--b%d--\r\n" % i)
    head = (b"From: bomb@example.com\r\nTo: support@example.jp\r\nSubject: bomb\r\n"
            b"Message-ID: <bomb.%d@example.com>\r\nMIME-Version: 1.0\r\n" % depth)
    return head + body


def dsn(original_message_id: str, action: str = "failed") -> bytes:
    """Postfix's delivery status notification for a mail we sent (built at test time: the id
    of the returned mail is only known once it is sent)."""
    b = b"dsn.boundary"
    body = (b"--" + b + b"\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            b"This is the mail system at host mx.customer.jp.\r\n\r\n"
            b"<taro@customer.jp>: host mx.customer.jp said: 550 5.1.1 User unknown\r\n"
            b"\r\n--" + b + b"\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; mx.customer.jp\r\nArrival-Date: Mon,  2 Nov 2026 10:00:00 +0900 (JST)\r\n\r\n"
            b"Final-Recipient: rfc822; taro@customer.jp\r\nOriginal-Recipient: rfc822;taro@customer.jp\r\n"
            b"Action: " + action.encode() + b"\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.customer.jp\r\n"
            b"Diagnostic-Code: smtp; 550 5.1.1 <taro@customer.jp>: Recipient address\r\n    rejected: User unknown\r\n"
            b"\r\n--" + b + b"\r\nContent-Description: Undelivered Message Headers\r\n"
            b"Content-Type: text/rfc822-headers\r\n\r\n"
            b"From: support@example.jp\r\nTo: taro@customer.jp\r\n"
            b"Subject: =?UTF-8?B?UmU6IOazqOaWhw==?=\r\nMessage-ID: " + original_message_id.encode() + b"\r\n"
            b"In-Reply-To: <m1@customer.jp>\r\n"
            b"\r\n--" + b + b"--\r\n")
    return mail([
        ("From", "MAILER-DAEMON@mx.customer.jp (Mail Delivery System)"),
        ("To", "support@example.jp"),
        ("Subject", "Undelivered Mail Returned to Sender"),
        ("Date", "Mon, 2 Nov 2026 10:00:01 +0900 (JST)"),
        ("Message-ID", "<20261102010001.DSN1@mx.customer.jp>"),
        ("Auto-Submitted", "auto-replied"),
        ("MIME-Version", "1.0"),
        ("Content-Type", b'multipart/report; report-type=delivery-status; boundary="' + b + b'"'),
    ], body)


def huge(size_bytes: int) -> bytes:
    """A mail of about ``size_bytes`` (a big base64 attachment)."""
    chunk = b"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\r\n"
    lines = size_bytes // len(chunk) + 1
    return (b"From: big@example.com\r\nTo: support@example.jp\r\nSubject: =?UTF-8?B?5aSn44GN44GE?=\r\n"
            b"Message-ID: <huge.0001@example.com>\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="big"\r\n\r\n'
            b"--big\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            b"big file\r\n--big\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + chunk * lines + b"--big--\r\n")


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    for name, data in build().items():
        (HERE / f"{name}.eml").write_bytes(data)
        print(f"wrote {name}.eml ({len(data)} bytes)")


if __name__ == "__main__":
    main()
