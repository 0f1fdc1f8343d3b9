"""Which ticket an email joins: Message-ID headers, the [#id] token, or a new ticket."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from channels import get_adapter
from helpdesk.extensions import db
from helpdesk.models import Direction, Message, Status, Ticket
from helpdesk.services.ingest import ingest
from helpdesk.services.tickets import update_ticket
from tests import factories as f
from tests.email.conftest import email_inbox

pytestmark = [pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True),
              # threading is under test here, not sentiment (model inference is slow on CI)
              pytest.mark.config(SENTIMENT_ENABLED=False)]


def raw_mail(subject: str, body: str = "本文です。", *, sender: str = "taro@customer.jp", message_id: str,
             in_reply_to: str | None = None, references: str | None = None) -> bytes:
    lines = [f"From: 山田 <{sender}>", "To: support@example.jp", f"Subject: {subject}",
             f"Message-ID: {message_id}", "Date: Sun, 1 Nov 2026 10:00:00 +0900", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
    if in_reply_to:
        lines.append(f"In-Reply-To: {in_reply_to}")
    if references:
        lines.append(f"References: {references}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


def deliver(inbox, raw: bytes):
    return ingest(inbox, get_adapter(inbox).parse_message(raw))


def tickets() -> int:
    return db.session.scalar(select(func.count()).select_from(Ticket))


def test_reply_joins_by_in_reply_to(app):
    inbox = email_inbox()
    first = deliver(inbox, raw_mail("注文について", message_id="<m1@customer.jp>"))
    reply = deliver(inbox, raw_mail("Re: 注文について", message_id="<m2@customer.jp>", in_reply_to="<m1@customer.jp>"))
    assert reply.message.ticket_id == first.message.ticket_id and tickets() == 1


def test_reply_joins_by_any_id_in_references(app):
    inbox = email_inbox()
    first = deliver(inbox, raw_mail("注文について", message_id="<m1@customer.jp>"))
    # a client that replies to a message the desk never saw, but keeps the chain
    reply = deliver(inbox, raw_mail("Re: 注文について", message_id="<m3@customer.jp>", in_reply_to="<unknown@elsewhere>",
                                    references="<m1@customer.jp> <unknown@elsewhere>"))
    assert reply.message.ticket_id == first.message.ticket_id


def test_reply_to_our_outbound_message_id_joins(app):
    inbox = email_inbox()
    first = deliver(inbox, raw_mail("注文について", message_id="<m1@customer.jp>"))
    ticket = first.message.ticket
    ours = Message(ticket=ticket, inbox_id=inbox.id, direction=Direction.outbound, body="回答",
                   external_id="<helpdesk.1.2.x@example.jp>")
    db.session.add(ours)
    db.session.commit()
    reply = deliver(inbox, raw_mail("Re: 注文について [#%d]" % ticket.id, message_id="<m4@customer.jp>",
                                    in_reply_to="<helpdesk.1.2.x@example.jp>"))
    assert reply.message.ticket_id == ticket.id


def test_subject_token_joins_when_headers_are_missing(app):
    inbox = email_inbox()
    ticket = deliver(inbox, raw_mail("注文について", message_id="<m1@customer.jp>")).message.ticket
    deliver(inbox, raw_mail("別件です", message_id="<m1b@customer.jp>"))  # a newer open ticket exists
    reply = deliver(inbox, raw_mail(f"ＲＥ： 注文について ［＃{ticket.id}］", message_id="<m5@customer.jp>"))
    assert reply.message.ticket_id == ticket.id


def test_subject_token_of_another_customers_ticket_is_ignored(app):
    inbox = email_inbox()
    ticket = deliver(inbox, raw_mail("注文について", message_id="<m1@customer.jp>")).message.ticket
    stranger = deliver(inbox, raw_mail(f"Re: 注文について [#{ticket.id}]", sender="evil@example.com",
                                       message_id="<x1@example.com>"))
    assert stranger.message.ticket_id != ticket.id
    assert ticket.reply_to == "taro@customer.jp"
    assert stranger.message.ticket.thread_key is None  # the token never becomes a thread key


def test_new_subject_from_same_customer_opens_new_ticket(app):
    inbox = email_inbox()
    a = deliver(inbox, raw_mail("注文について", message_id="<m1@customer.jp>"))
    b = deliver(inbox, raw_mail("請求書の再発行", message_id="<m6@customer.jp>"))
    assert a.message.ticket_id != b.message.ticket_id and tickets() == 2
    assert b.message.ticket.subject == "請求書の再発行"


def test_re_subject_without_threading_headers_continues_open_ticket(app):
    inbox = email_inbox()
    a = deliver(inbox, raw_mail("注文について", message_id="<m1@customer.jp>"))
    b = deliver(inbox, raw_mail("返信： 注文について", message_id="<m7@customer.jp>"))
    assert b.message.ticket_id == a.message.ticket_id


def test_reply_reopens_resolved_ticket(app):
    inbox = email_inbox()
    agent = f.agent(inboxes=[inbox])
    ticket = deliver(inbox, raw_mail("注文について", message_id="<m1@customer.jp>")).message.ticket
    update_ticket(ticket, agent, status="resolved")
    deliver(inbox, raw_mail("Re: 注文について", message_id="<m8@customer.jp>", in_reply_to="<m1@customer.jp>"))
    assert ticket.status is Status.open and tickets() == 1


def test_same_mail_twice_is_stored_once(app):
    inbox = email_inbox()
    raw = raw_mail("注文について", message_id="<m1@customer.jp>")
    assert deliver(inbox, raw).created
    assert not deliver(inbox, raw).created
    assert db.session.scalar(select(func.count()).select_from(Message)) == 1


def test_ticket_subject_is_the_normalised_topic(app):
    inbox = email_inbox()
    ticket = deliver(inbox, raw_mail("Fwd: 転送: 見積もりの件", message_id="<m9@customer.jp>")).message.ticket
    assert ticket.subject == "見積もりの件"
    assert ticket.reply_to == "taro@customer.jp"


def test_nul_and_control_bytes_in_a_body_do_not_break_storage(app):
    inbox = email_inbox()
    raw = raw_mail("制御文字", body="前\x00後\x1b[31m赤\x07", message_id="<nul@customer.jp>")
    result = deliver(inbox, raw)
    assert result.message.body == "前後[31m赤"
