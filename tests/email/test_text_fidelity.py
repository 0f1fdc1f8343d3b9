"""How faithfully mail text reaches the agent and the customer: HTML-only mail keeps its lines,
ISO-2022-JP replies keep their charset for the usual Mac/web characters, quote headers split
cleanly, and EUC-JP mis-labelled GB2312 reads as Japanese."""

from __future__ import annotations

import email
import smtplib
from email import policy

import pytest
from sqlalchemy import select

from channels.base import Outbound
from channels.email import EmailAdapter
from channels._mail_quote import split_reply
from channels._mail_text import decode_bytes, decode_iso2022jp, html_to_text
from helpdesk.extensions import db
from helpdesk.models import Message
from tests.email.conftest import email_inbox

ADAPTER = EmailAdapter({"address": "support@example.jp"})


def html_mail(markup: str, charset: str = "utf-8") -> bytes:
    head = ("From: =?UTF-8?B?5bGx55SwIOWkqumDjg==?= <taro@yamada-shoji.co.jp>\r\nTo: support@example.jp\r\n"
            "Subject: order\r\nDate: Sun, 1 Nov 2026 10:00:00 +0900\r\nMessage-ID: <html.1@yamada-shoji.co.jp>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/html; charset={charset}\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n")
    return head.encode("ascii") + markup.encode(charset)


# Outlook: one <p class=MsoNormal> per line (its CSS gives them no margin), a blank line as
# <p class=MsoNormal><o:p>&nbsp;</o:p></p>.
OUTLOOK = """<html xmlns:o="urn:schemas-microsoft-com:office:office"><head>
<meta http-equiv=Content-Type content="text/html; charset=utf-8">
<style><!-- p.MsoNormal, li.MsoNormal {margin:0mm; font-size:10.5pt;} --></style></head>
<body lang=JA link="#0563C1"><div class=WordSection1>
<p class=MsoNormal>サポートご担当者様<o:p></o:p></p>
<p class=MsoNormal><o:p>&nbsp;</o:p></p>
<p class=MsoNormal>お世話になっております。<o:p></o:p></p>
<p class=MsoNormal>㈱山田商事の山田です。<o:p></o:p></p>
<p class=MsoNormal><o:p>&nbsp;</o:p></p>
<p class=MsoNormal>注文番号A-100の商品が届いていません。<o:p></o:p></p>
<p class=MsoNormal>ご確認をお願いします。<o:p></o:p></p>
</div></body></html>"""
OUTLOOK_TEXT = ("サポートご担当者様\n\nお世話になっております。\n㈱山田商事の山田です。\n\n"
                "注文番号A-100の商品が届いていません。\nご確認をお願いします。")

# Gmail: a <div> per line, <div><br></div> for a blank line.
GMAIL = ('<div dir="ltr">サポートご担当者様<div><br></div><div>お世話になっております。</div>'
         '<div>山田です。</div><div><br></div><div><br></div><div>注文の件です。</div></div>\r\n')


def test_outlook_html_only_mail_keeps_its_lines_and_blank_lines():
    inbound = ADAPTER.parse_message(html_mail(OUTLOOK))
    assert inbound.text == OUTLOOK_TEXT


def test_gmail_html_only_mail_keeps_its_lines_and_blank_lines():
    # two <div><br></div> in a row are two blank lines, as the customer left them
    assert ADAPTER.parse_message(html_mail(GMAIL)).text == (
        "サポートご担当者様\n\nお世話になっております。\n山田です。\n\n\n注文の件です。")


@pytest.mark.parametrize("markup,text", [
    # a web editor's paragraph per line, <p>&nbsp;</p> as a blank line
    ("<p>一行目</p><p>&nbsp;</p><p>三行目</p><p>四行目</p>", "一行目\n\n三行目\n四行目"),
    ("<p>一行目</p>\n<p><br></p>\n<p>三行目</p>", "一行目\n\n三行目"),
    # paragraphs drawn with margins, and nothing else to say where blank lines are: one between them
    ("<p>最初の段落。</p>\n<p>次の段落。</p>", "最初の段落。\n\n次の段落。"),
    # a trailing <br> in a block ends its line and adds no empty one
    ("<div>一行目<br></div><div>二行目</div>", "一行目\n二行目"),
    ("<div>一行目<br><br>三行目</div>", "一行目\n\n三行目"),
    ("<p style='margin:0'>一行目</p><p style='margin:0'>二行目</p>", "一行目\n二行目"),
    # a pasted log or config keeps its indentation; a browser drops the newline right after <pre>
    ("<p>エラーです:</p><pre>\nTraceback:\n    File \"a.py\", line 3\n\tx = 1  \n</pre><p>以上</p>",
     "エラーです:\n\nTraceback:\n    File \"a.py\", line 3\n\tx = 1\n\n以上"),
    ("<pre>  <b>設定</b>:\n    有効</pre>", "  設定:\n    有効"),
    ("<pre><code>\n  y</code></pre><p>  z  </p>", "  y\n\nz"),
])
def test_html_lines_are_the_writers_lines(markup, text):
    assert html_to_text(markup) == text


@pytest.mark.config(SENTIMENT_ENABLED=False)
def test_html_only_mail_through_the_smtp_listener_reaches_the_agent_line_for_line(app, listener):
    email_inbox()
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as smtp:
        smtp.sendmail("relay@example.net", ["support@example.jp"], html_mail(OUTLOOK))
    db.session.expire_all()
    (msg,) = db.session.scalars(select(Message))
    assert msg.body == OUTLOOK_TEXT


# ------------------------------------------------------------------ ISO-2022-JP replies

CONTEXT = {"external_ids": [], "last_inbound_meta": {"subject": "価格について"}, "agent_name": "佐藤"}


def jis_reply(server, text: str, subject: str = "価格について") -> email.message.Message:
    sink, settings = server
    a = EmailAdapter({"address": "support@example.jp", "from_address": "support@example.jp",
                      "from_name": "サポート窓口", "outbound_charset": "iso-2022-jp", **settings}, {})
    result = a.send("taro@customer.jp", Outbound(text=text, ticket_id=5, message_id=9, subject=subject,
                                                 context=CONTEXT))
    assert result.ok, result.error
    return email.message_from_bytes(sink.messages[-1]["data"], policy=policy.compat32)


def test_mac_and_web_characters_keep_the_reply_in_iso2022jp(smtp_server):
    text = "価格は¥1,000です — 送料は別です。\n10–20個、3〜5日、−5℃、ＡＢＣ～ＤＥＦ"
    msg = jis_reply(smtp_server, text, subject="¥1,000 — 見積")
    assert msg.get_content_charset() == "iso-2022-jp" and msg["Content-Transfer-Encoding"] == "7bit"
    body = decode_iso2022jp(msg.get_payload(decode=True)).replace("\r\n", "\n")
    assert body.startswith("価格は￥1,000です ― 送料は別です。\n10－20個、3～5日、－5℃、ＡＢＣ～ＤＥＦ\n")
    assert msg["Subject"].startswith("=?ISO-2022-JP?B?")
    assert decode_bytes(msg.get_payload(decode=True), "iso-2022-jp").startswith("価格は￥1,000")


def test_a_character_without_a_jis_form_still_sends_everything_as_utf8(smtp_server):
    sink, _ = smtp_server
    msg = jis_reply(smtp_server, "価格は¥1,000です。Café ünd 😊")
    assert msg.get_content_charset() == "utf-8"
    # UTF-8 carries every character as the agent wrote it: no substitution there
    assert email.message_from_bytes(sink.messages[-1]["data"], policy=policy.default).get_content() \
        .startswith("価格は¥1,000です。Café ünd 😊")


# ------------------------------------------------------------------ quote headers


@pytest.mark.parametrize("header", [
    "--- 山田 太郎 <taro@yahoo.co.jp> wrote:",
    "--- On Sun, 11/1/26, Taro Yamada <taro@yahoo.co.jp> wrote:",
    "--- taro@yahoo.co.jp wrote:",
    "----- Original Message -----",
    "-----Original Message-----",
    "―――――Original Message―――――",
    "＝＝＝＝＝ 元のメッセージ ＝＝＝＝＝",
])
def test_reply_header_goes_with_the_quote_it_introduces(header):
    body, quoted = split_reply(f"承知しました。\n明日返送します。\n\n{header}\n\n> 返送してください。\n> サポート")
    assert body == "承知しました。\n明日返送します。"
    assert quoted.startswith(header)


def test_yahoo_header_wrapped_over_two_lines_goes_with_the_quote():
    body, quoted = split_reply("了解です。\n\n--- On Sun, 11/1/26, Taro Yamada\n<taro@yahoo.co.jp> wrote:\n\n> 前文")
    assert body == "了解です。" and quoted.startswith("--- On Sun")


def test_yahoo_reply_mail_splits_cleanly():
    raw = ("From: taro@yahoo.co.jp\r\nTo: support@example.jp\r\nSubject: Re: 返品 [#42]\r\n"
           "Message-ID: <y.1@yahoo.co.jp>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\n"
           "承知しました。\r\n\r\n--- サポート <support@example.jp> wrote:\r\n\r\n> 返送してください。\r\n")
    inbound = ADAPTER.parse_message(raw.encode("utf-8"))
    assert inbound.text == "承知しました。"
    assert inbound.quoted == "--- サポート <support@example.jp> wrote:\n\n> 返送してください。"


@pytest.mark.parametrize("text", [
    "--- 追記 ---\n注文番号: 123\n--- ここまで ---\n届いていません。",
    "ご担当者様\n\n--- 2026/11/01 確認済み ---\n> 引用ではなく記号です\nよろしくお願いします。",
    "ご担当者様\n\n--- 前回のメールで書きました ---\n届いていません。",
])
def test_the_customers_own_dashed_lines_stay(text):
    assert split_reply(text) == (text, None)


# ------------------------------------------------------------------ EUC-JP labelled GB2312


@pytest.mark.parametrize("label", ["gb2312", "GBK", "gb18030"])
@pytest.mark.parametrize("text", [
    "お世話になっております。先日注文した商品がまだ届いていません。確認をお願いします。",
    "請求書の宛名を変更してください。",
    "明日送ります",
])
def test_euc_jp_labelled_gb2312_reads_as_japanese(label, text):
    assert decode_bytes(text.encode("euc_jp"), label) == text


@pytest.mark.parametrize("text", [
    "您好，我想咨询一下订单的问题。请尽快回复，谢谢。",
    # Japanese that a Chinese-locale mailer really wrote in GB2312 (simplified forms)
    "お世话になっております。先日注文した商品がまだ届いていません。确认をお愿いします。",
    "你好，这是「ありがとう」的意思吗？我们公司的产品什么时候发货？",
])
def test_real_gb2312_keeps_its_reading(text):
    assert decode_bytes(text.encode("gb2312"), "gb2312") == text
