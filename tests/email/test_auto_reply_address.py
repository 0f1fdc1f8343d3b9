"""An automatic reply must not change where the agent's answers go."""

from __future__ import annotations

import pytest

from channels import get_adapter
from channels.email import EmailAdapter
from helpdesk.extensions import db
from helpdesk.services import mailbox as mb
from helpdesk.services.replies import post_reply
from tests import factories as f
from tests.email.conftest import email_inbox
from tests.email.make_fixtures import b64word, crlf, jis, mail

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)


def customer_mail(subject: str, body: str, *, sender: str, message_id: str, in_reply_to: str | None = None,
                  extra: list[tuple[str, str]] | None = None) -> bytes:
    headers: list[tuple[str, bytes | str]] = [
        ("From", b'"' + b64word("ISO-2022-JP", jis("山田 太郎")) + b'" <' + sender.encode() + b">"),
        ("To", "support@example.jp"),
        ("Subject", b64word("UTF-8", subject.encode())),
        ("Date", "Tue, 3 Nov 2026 09:00:00 +0900"),
        ("Message-ID", message_id),
    ]
    if in_reply_to:
        headers.append(("In-Reply-To", in_reply_to))
    headers += (extra or []) + [("MIME-Version", "1.0"), ("Content-Type", 'text/plain; charset="ISO-2022-JP"'),
                                ("Content-Transfer-Encoding", "7bit")]
    return mail(headers, jis(crlf(body)))


@pytest.mark.parametrize("auto", [
    [("Auto-Submitted", "auto-replied")],
    [],  # known only by its subject
])
def test_acknowledgement_from_a_noreply_address_does_not_take_over_the_reply_address(app, smtp_server, auto):
    sink, smtp_settings = smtp_server
    inbox = email_inbox(smtp_settings)
    agent = f.agent(inboxes=[inbox])
    adapter = get_adapter(inbox)
    first = mb.receive(inbox, adapter.parse_message(customer_mail(
        "注文について", "届いていません。", sender="taro@customer.jp", message_id="<m1@customer.jp>"))).message
    ticket = first.ticket
    reply = post_reply(ticket, agent, "確認いたします。")
    db.session.refresh(reply)
    # the customer's company system acknowledges our mail from its own no-reply address
    ack = mb.receive(inbox, adapter.parse_message(customer_mail(
        "自動返信: Re: 注文について", "このメールは送信専用です。", sender="noreply@customer.jp",
        message_id="<ack.1@customer.jp>", in_reply_to=reply.external_id, extra=auto))).message
    assert ack.ticket_id == ticket.id and ack.meta["auto_submitted"] is True
    db.session.refresh(ticket)
    assert ticket.reply_to == "taro@customer.jp"
    post_reply(ticket, agent, "発送いたしました。")
    assert sink.parsed()["To"] == "taro@customer.jp"


def test_automatic_mail_with_an_explicit_reply_to_keeps_it():
    # a web form's notification: sent by the site, answered to the person who filled it in
    raw = customer_mail("お問い合わせ", "フォームからのお問い合わせです。", sender="noreply@shop.example.jp",
                        message_id="<form.1@shop.example.jp>",
                        extra=[("Auto-Submitted", "auto-generated"), ("Reply-To", "hanako@customer.jp")])
    inbound = EmailAdapter({"address": "support@example.jp"}).parse_message(raw)
    assert inbound.meta["reply_to"] == "hanako@customer.jp"


def test_a_persons_mail_still_moves_the_reply_address():
    raw = customer_mail("Re: 注文について", "こちらに返信してください。", sender="taro@customer.jp",
                        message_id="<m9@customer.jp>", extra=[("Reply-To", "taro.home@customer.jp")])
    inbound = EmailAdapter({"address": "support@example.jp"}).parse_message(raw)
    assert inbound.meta["reply_to"] == "taro.home@customer.jp"
