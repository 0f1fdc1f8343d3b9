"""Japanese mail under the wrong charset label, as gateways and old servers send it.

A mail gateway that converts Shift_JIS to ISO-2022-JP often keeps "charset=Shift_JIS", and
old Unix servers send EUC-JP labelled Shift_JIS: both decode without an error in the
labelled codec, so the label must not win over the bytes.
"""

from __future__ import annotations

import base64
import smtplib
import unicodedata
from urllib.parse import quote

import pytest
from sqlalchemy import select

from channels._mail_text import decode_bytes
from channels.email import EmailAdapter, encode_iso2022jp
from helpdesk.extensions import db
from helpdesk.models import Message, Ticket
from tests.email.conftest import email_inbox

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)

BODY = "お世話になっております。\n①の件、㈱髙橋商事の髙橋です。"


def _mail(body: bytes, charset: str, subject: str = "Subject: test", msgid: str = "<label@example.jp>") -> bytes:
    head = (f"From: =?ISO-2022-JP?B?{base64.b64encode(encode_iso2022jp('髙橋 太郎')).decode()}?= "
            f"<takahashi@example.co.jp>\r\nTo: support@example.jp\r\n{subject}\r\nMessage-ID: {msgid}\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n"
            "Content-Transfer-Encoding: 7bit\r\n\r\n")
    return head.encode("ascii") + body


@pytest.mark.parametrize("label", ["Shift_JIS", "utf-8", "EUC-JP", "GB2312"])
def test_iso2022jp_body_under_another_label_reaches_the_agent_readable(app, listener, label):
    email_inbox()
    raw = _mail(encode_iso2022jp(BODY).replace(b"\n", b"\r\n"), label)
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as smtp:
        smtp.sendmail("relay@example.net", ["support@example.jp"], raw)
    db.session.expire_all()
    (msg,) = db.session.scalars(select(Message)).all()
    assert msg.body == BODY
    assert "$B" not in msg.body


def test_iso2022jp_subject_word_under_a_shift_jis_label_is_decoded():
    word = base64.b64encode(encode_iso2022jp("①納期のご相談")).decode()
    inbound = EmailAdapter(settings={"address": "support@example.jp"}).parse_message(
        _mail(b"body", "us-ascii", subject=f"Subject: =?Shift_JIS?B?{word}?="))
    assert inbound.subject == "①納期のご相談"


def test_euc_jp_body_labelled_shift_jis_is_not_half_width_mojibake(app, listener):
    inbox = email_inbox()
    text = "サーバの設定について質問です。\n①ポート番号は何番ですか。"  # ① is eucJP-ms 0xADA1
    raw = _mail(text.encode("euc_jis_2004").replace(b"\n", b"\r\n"), "Shift_JIS").replace(
        b"Content-Transfer-Encoding: 7bit", b"Content-Transfer-Encoding: 8bit")
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as smtp:
        smtp.sendmail("relay@example.net", ["support@example.jp"], raw)
    db.session.expire_all()
    (msg,) = db.session.scalars(select(Message)).all()
    assert msg.body == text
    ticket = db.session.get(Ticket, msg.ticket_id)
    assert ticket.inbox_id == inbox.id


@pytest.mark.parametrize("text", ["ｺﾝﾆﾁﾊ", "ｱｲｳｴ", "ﾃｽﾄ､ｱﾘｶﾞﾄｳ", "羞恥", "お問い合わせ①"])
def test_real_shift_jis_keeps_its_reading(text):
    # half-width katakana only (old carrier mail) is also valid EUC-JP: it stays Shift_JIS
    assert decode_bytes(text.encode("cp932"), "Shift_JIS") == text


def test_ascii_with_a_stray_escape_under_utf8_stays_as_sent():
    # no JIS escape sequence: nothing to reinterpret
    assert decode_bytes(b"plain text \x1b[0m", "utf-8") == "plain text \x1b[0m"


def test_attachment_name_from_a_mac_mailer_is_stored_composed(app, listener):
    # Apple Mail writes the name as macOS stores it: ダ and ポ as base letter + combining mark
    name = unicodedata.normalize("NFD", "ダウンロード用_見積書ポ.pdf")
    assert len(name) > len("ダウンロード用_見積書ポ.pdf")
    email_inbox()
    raw = (b"From: hanako@example.co.jp\r\nTo: support@example.jp\r\nSubject: mac\r\n"
           b"Message-ID: <mac.1@example.co.jp>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n--BB\r\n"
           b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
           b"Content-Disposition: attachment; filename*=utf-8''" + quote(name.encode()).encode() +
           b"\r\n\r\nJVBERi0xLjQK\r\n--BB--\r\n")
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as smtp:
        smtp.sendmail("relay@example.net", ["support@example.jp"], raw)
    db.session.expire_all()
    (msg,) = db.session.scalars(select(Message)).all()
    (att,) = msg.attachments
    assert att["filename"] == "ダウンロード用_見積書ポ.pdf"
