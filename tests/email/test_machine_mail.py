"""Mail no customer wrote: automatic replies known only by their subject, and bounces that
come as plain text instead of multipart/report."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from channels import get_adapter
from channels.email import EmailAdapter
from helpdesk.extensions import db
from helpdesk.models import Delivery, Direction, Message, Status, Ticket
from helpdesk.services import mailbox as mb
from helpdesk.services.replies import post_reply
from tests import factories as f
from tests.email.conftest import email_inbox
from tests.email.make_fixtures import b64word, crlf, jis, mail

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)

FIXTURES = Path(__file__).parent / "fixtures"
ADAPTER = EmailAdapter({"address": "support@example.jp"})
OUR_ID = "<helpdesk.5.9.0123456789abcdef@example.jp>"


def utf8_subject(text: str) -> bytes:
    return b64word("UTF-8", text.encode())


def jis_subject(text: str) -> bytes:
    return b64word("ISO-2022-JP", jis(text))


def customer_mail(subject: bytes, body: str = "本文です。", *, sender: str = "taro@customer.jp",
                  message_id: str = "<m2@customer.jp>", in_reply_to: str | None = None) -> bytes:
    """A plain text mail as a Japanese mailer writes it: ISO-2022-JP body, no machine headers."""
    headers: list[tuple[str, bytes | str]] = [
        ("From", b'"' + jis_subject("山田 太郎") + b'" <' + sender.encode() + b">"),
        ("To", "support@example.jp"),
        ("Subject", subject),
        ("Date", "Tue, 3 Nov 2026 09:00:00 +0900"),
        ("Message-ID", message_id),
    ]
    if in_reply_to:
        headers.append(("In-Reply-To", in_reply_to))
    headers += [("MIME-Version", "1.0"), ("Content-Type", 'text/plain; charset="ISO-2022-JP"'),
                ("Content-Transfer-Encoding", "7bit")]
    return mail(headers, jis(crlf(body)))


# ------------------------------------------------------------------ auto-replies by subject


@pytest.mark.parametrize("subject", [
    utf8_subject("自動返信: Re: 注文について [#5]"),
    jis_subject("【自動返信】お問い合わせありがとうございます"),
    jis_subject("自動応答"),
    jis_subject("自動応答： Re: 注文について [#5]"),  # Outlook in Japanese, full-width colon
    utf8_subject("［自動返信］受付のお知らせ"),
    jis_subject("不在通知"),
    utf8_subject("不在のお知らせ"),
    utf8_subject("不在のお知らせ（11/3〜11/5）"),
    b"Out of Office: Re: =?UTF-8?B?5rOo5paH?=",
    b"Automatic reply: Re: =?ISO-2022-JP?B?GyRCQ4FKOBsoQg==?= [#5]",
    b"Autoreply: Your message",
    b"Auto: Re: =?UTF-8?B?5rOo5paH?=",  # Lotus Notes
])
def test_auto_reply_known_only_by_its_subject_is_marked_auto_submitted(subject):
    assert ADAPTER.parse_message(customer_mail(subject, "ただいま不在にしております。")).meta["auto_submitted"] is True


@pytest.mark.parametrize("subject", [
    utf8_subject("Re: 自動返信について"),
    jis_subject("RE: 【自動返信】お問い合わせありがとうございます"),  # the customer answering one
    jis_subject("自動返信メールが届きません"),
    utf8_subject("自動返信の設定方法"),
    jis_subject("注文後の自動返信: 届かない"),
    utf8_subject("【至急】自動返信が来ない件"),
    b"Automobile parts",
    b"Out of office hours support",
])
def test_customer_writing_about_an_auto_reply_is_not_one(subject):
    assert "auto_submitted" not in ADAPTER.parse_message(customer_mail(subject)).meta


@pytest.mark.parametrize("status", [Status.resolved, Status.pending])
def test_subject_only_auto_reply_neither_reopens_the_ticket_nor_is_answered(app, smtp_server, status):
    sink, smtp_settings = smtp_server
    inbox = email_inbox(smtp_settings)
    agent = f.agent(inboxes=[inbox])
    adapter = get_adapter(inbox)
    first = mb.receive(inbox, adapter.parse_message(customer_mail(utf8_subject("注文について"),
                                                                  message_id="<m1@customer.jp>"))).message
    ticket = first.ticket
    reply = post_reply(ticket, agent, "確認いたします。")
    db.session.refresh(reply)
    assert reply.delivery is Delivery.sent
    ticket.status = status
    db.session.commit()

    auto = mb.receive(inbox, adapter.parse_message(customer_mail(
        jis_subject(f"自動応答: Re: 注文について [#{ticket.id}]"), "11月5日まで不在にしております。",
        message_id="<auto.1@customer.jp>", in_reply_to=reply.external_id))).message
    db.session.refresh(ticket)
    assert auto.ticket_id == ticket.id and auto.meta["auto_submitted"] is True
    assert ticket.status is status

    post_reply(ticket, agent, "ご不在とのこと、承知しました。")
    assert sink.parsed()["In-Reply-To"] == "<m1@customer.jp>"  # the customer's mail, not the notice


# ------------------------------------------------------------------ plain-text bounces


def qmail_bounce(original_id: str) -> bytes:
    """qmail's bounce: plain text from MAILER-DAEMON, the returned mail's header quoted inline."""
    body = crlf(
        "Hi. This is the qmail-send program at mx.customer.jp.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        "<taro@customer.jp>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
        "--- Below this line is a copy of the message.\n\n"
        "Return-Path: <support@example.jp>\n"
        "Received: (qmail 4711 invoked from network); 3 Nov 2026 01:00:00 -0000\n"
        "From: support@example.jp\nTo: taro@customer.jp\nSubject: Re: =?UTF-8?B?5rOo5paH?= [#5]\n"
        f"Message-ID: {original_id}\nIn-Reply-To: <m1@customer.jp>\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        "56K66KqN44GE44Gf44GX44G+44GZ44CC\n")
    return mail([
        ("Return-Path", "<>"),
        ("From", "MAILER-DAEMON@mx.customer.jp"),
        ("To", "support@example.jp"),
        ("Subject", "failure notice"),
        ("Date", "3 Nov 2026 01:00:01 -0000"),
        ("Message-ID", "<20261103010001.4712.qmail@mx.customer.jp>"),
    ], body.encode())


def sendmail_bounce(original_id: str) -> bytes:
    """sendmail's "Returned mail" from "Mail Delivery Subsystem" <postmaster@...>, with the
    returned mail attached as message/rfc822 in a multipart/mixed (no delivery-status part)."""
    b = b"sm.boundary"
    body = (b"--" + b + b"\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + crlf(
        "The original message was received at Tue, 3 Nov 2026 10:00:00 +0900\n"
        "from mail.example.jp [192.0.2.1]\n\n"
        "   ----- The following addresses had permanent fatal errors -----\n<hanako@customer.jp>\n"
        "    (reason: 550 5.1.1 <hanako@customer.jp>... User unknown)\n\n"
        "   ----- Transcript of session follows -----\n"
        "... while talking to mx.customer.jp.:\n>>> DATA\n"
        "<<< 550 5.1.1 <hanako@customer.jp>... User unknown\n").encode()
        + b"\r\n--" + b + b"\r\nContent-Type: message/rfc822\r\n\r\n"
        + b"From: support@example.jp\r\nTo: hanako@customer.jp\r\nSubject: Re: [#5]\r\n"
        + b"Message-ID: " + original_id.encode() + b"\r\nMIME-Version: 1.0\r\n"
        + b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b"56K66KqN44GE44Gf44GX44G+44GZ44CC\r\n"
        + b"\r\n--" + b + b"--\r\n")
    return mail([
        ("From", "Mail Delivery Subsystem <postmaster@mx.customer.jp>"),
        ("To", "support@example.jp"),
        ("Subject", "Returned mail: see transcript for details"),
        ("Date", "Tue, 3 Nov 2026 10:00:05 +0900"),
        ("Message-ID", "<202611030100.A1B2C3@mx.customer.jp>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", b'multipart/mixed; boundary="' + b + b'"'),
    ], body)


def japanese_isp_bounce(original_id: str) -> bytes:
    """A Japanese ISP's notice from postmaster@, in ISO-2022-JP, quoting the header in the body."""
    body = crlf(
        "このメールはシステムから自動的に送信されています。\n"
        "以下の宛先へのメール配信に失敗しました。\n\n"
        "宛先: jiro@customer.jp\n"
        "理由: 宛先のメールボックスが見つかりません (550 5.1.1 User unknown)\n\n"
        "----- 送信したメール -----\n"
        f"Message-ID:\n {original_id}\n"
        "Subject: Re: 注文について [#5]\n")
    return mail([
        ("From", b'"' + jis_subject("メール管理者") + b'" <postmaster@mail.customer.jp>'),
        ("To", "support@example.jp"),
        ("Subject", jis_subject("【メール配信エラー】")),
        ("Date", "Tue, 3 Nov 2026 10:00:05 +0900"),
        ("Message-ID", "<err.20261103@mail.customer.jp>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=ISO-2022-JP"),
        ("Content-Transfer-Encoding", "7bit"),
    ], jis(body))


@pytest.mark.parametrize("build,error", [
    (qmail_bounce, "bounced: <taro@customer.jp>: Sorry, no mailbox here by that name. (#5.1.1)"),
    (sendmail_bounce, "bounced: (reason: 550 5.1.1 <hanako@customer.jp>... User unknown)"),
    (japanese_isp_bounce, "bounced: 理由: 宛先のメールボックスが見つかりません (550 5.1.1 User unknown)"),
])
def test_plain_text_bounce_names_the_returned_mail_and_the_error(build, error):
    inbound = ADAPTER.parse_message(build(OUR_ID))
    assert inbound.meta["bounce"] == {"message_ids": [OUR_ID], "error": error}


def test_plain_text_delay_warning_announces_no_failure():
    raw = qmail_bounce(OUR_ID).replace(b"Subject: failure notice",
                                       b"Subject: Delivery Status Notification (Delay)")
    assert ADAPTER.parse_message(raw).meta["bounce"]["error"] is None


@pytest.mark.parametrize("subject", [jis_subject("配信エラーについて"), b"Question about undelivered mail"])
def test_postmasters_own_question_is_no_bounce(subject):
    """postmaster@ may be a person: only a delivery report's subject makes a mail from it a bounce."""
    raw = customer_mail(subject, f"弊社から {OUR_ID} のメールが届かないようです。\nMessage-ID: {OUR_ID}",
                        sender="postmaster@customer.jp")
    assert "bounce" not in ADAPTER.parse_message(raw).meta


@pytest.mark.parametrize("build", [qmail_bounce, sendmail_bounce, japanese_isp_bounce])
def test_plain_text_bounce_marks_our_reply_failed_and_opens_no_ticket(app, smtp_server, build):
    _, smtp_settings = smtp_server
    inbox = email_inbox(smtp_settings)
    agent = f.agent(inboxes=[inbox])
    adapter = get_adapter(inbox)
    first = mb.receive(inbox, adapter.parse_message((FIXTURES / "docomo_sjis.eml").read_bytes())).message
    reply = post_reply(first.ticket, agent, "ご確認ください。")
    db.session.refresh(reply)
    assert reply.delivery is Delivery.sent

    assert mb.receive(inbox, adapter.parse_message(build(reply.external_id))) is None
    db.session.expire_all()
    assert reply.delivery is Delivery.failed
    assert reply.delivery_error.startswith("bounced: ") and "5.1.1" in reply.delivery_error
    assert db.session.scalars(select(Ticket)).all() == [first.ticket]
    assert db.session.scalars(select(Message).where(Message.direction == Direction.inbound)).all() == [first]


def test_plain_text_bounce_of_no_mail_of_ours_is_dropped_with_a_log_line(app, caplog):
    inbox = email_inbox()
    adapter = get_adapter(inbox)
    assert mb.receive(inbox, adapter.parse_message(sendmail_bounce("<someone-else@example.org>"))) is None
    assert db.session.scalars(select(Message)).all() == []
    assert "names no mail we sent" in caplog.text
