"""The one outbound path: agent replies and notes.

post_reply stores the message (pending), commits, emits, and queues the send;
``deliver`` (the send_message job) calls the adapter and records the outcome.
"""

from __future__ import annotations

import logging

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from channels import get_adapter
from channels.base import Outbound, TransientSendError

from ..extensions import db
from ..jobs import jobs
from ..models import Agent, Delivery, Direction, Message, Status, Ticket
from ..models._types import utcnow
from ..realtime import events
from ..realtime.serializers import message_json, ticket_json

log = logging.getLogger(__name__)


class ReplyError(ValueError):
    """A reply the desk refuses (empty, too long, channel window closed...)."""


def post_reply(ticket: Ticket, agent: Agent | None, body: str, *, private: bool = False,
               meta: dict | None = None, sent_at=None, record_only: bool = False) -> Message:
    """Store an agent reply (or a system message such as a survey when agent is None).

    ``record_only`` stores a reply that was already delivered elsewhere (history
    imported from another desk, demo data): it is marked sent and never sent again.
    """
    body = (body or "").strip()
    if not body:
        raise ReplyError(_l("The reply is empty."))
    if len(body) > current_app.config["MAX_MESSAGE_CHARS"]:
        raise ReplyError(_l("The reply is too long."))
    now = sent_at or utcnow()
    msg = Message(
        ticket=ticket,
        inbox_id=ticket.inbox_id,
        agent_id=agent.id if agent else None,
        meta=dict(meta or {}),
        direction=Direction.note if private else Direction.outbound,
        body=body,
        delivery=Delivery.none if private else Delivery.sent if record_only else Delivery.pending,
        sent_at=now,
        created_at=now,
    )
    db.session.add(msg)
    if not private:
        ticket.last_message_at = now
        if agent is not None:
            if ticket.first_response_at is None:
                ticket.first_response_at = now
            if ticket.status is Status.new:
                ticket.status = Status.open
            if ticket.assignee_id is None:
                ticket.assignee_id = agent.id  # whoever answers first owns the ticket
    db.session.flush()
    events.publish(events.MESSAGE_CREATED, message_json(msg), inbox_id=ticket.inbox_id, ticket_id=ticket.id)
    if not private:
        events.publish(events.TICKET_UPDATED, ticket_json(ticket), inbox_id=ticket.inbox_id, ticket_id=ticket.id)
    db.session.commit()
    if not private and not record_only:
        jobs.enqueue("send_message", msg.id)
    return msg


def deliver(message_id: int) -> None:
    """Send one pending outbound message; idempotent (a sent message is never resent)."""
    # The row lock makes a second worker wait, then see "sent" and skip (no double send).
    msg = db.session.get(Message, message_id, with_for_update=True)
    if msg is None or msg.direction is not Direction.outbound or msg.delivery is not Delivery.pending:
        return
    ticket = msg.ticket
    adapter = get_adapter(ticket.inbox)
    outbound = Outbound(
        text=msg.body,
        ticket_id=ticket.id,
        message_id=msg.id,
        subject=ticket.subject,
        context=_context(ticket, msg),
        meta=dict(msg.meta or {}),
    )
    msg.delivery_attempts += 1
    try:
        result = adapter.send(ticket.reply_to, outbound)
    except TransientSendError as exc:
        max_attempts = current_app.config["SEND_MAX_ATTEMPTS"]
        if msg.delivery_attempts < max_attempts:
            delay = exc.retry_after if exc.retry_after is not None else (
                current_app.config["SEND_BACKOFF_SECONDS"] * 2 ** (msg.delivery_attempts - 1))
            log.warning("send of message %s failed (%s); retry %s in %.1fs", msg.id, exc,
                        msg.delivery_attempts, delay)
            msg.delivery_error = str(exc)
            db.session.commit()
            jobs.enqueue("send_message", msg.id, delay=delay)
            return
        log.error("send of message %s failed for good after %s attempts: %s", msg.id, msg.delivery_attempts, exc)
        msg.delivery, msg.delivery_error = Delivery.failed, str(exc)
    except Exception as exc:  # an adapter bug must show up on the message, not vanish
        log.exception("adapter %s crashed sending message %s", ticket.inbox.kind, msg.id)
        msg.delivery, msg.delivery_error = Delivery.failed, f"internal error: {exc.__class__.__name__}"
    else:
        if result.ok:
            msg.delivery, msg.delivery_error = Delivery.sent, None
            if result.external_id:
                msg.external_id = result.external_id
            if result.meta:
                msg.meta = {**(msg.meta or {}), **result.meta}
        else:
            log.warning("send of message %s refused: %s", msg.id, result.error)
            msg.delivery, msg.delivery_error = Delivery.failed, result.error or "refused by provider"
    events.publish(events.MESSAGE_UPDATED, message_json(msg), inbox_id=msg.inbox_id, ticket_id=ticket.id)
    db.session.commit()


def _context(ticket: Ticket, msg: Message) -> dict:
    """What an adapter may need from the conversation: last inbound facts and thread ids."""
    last_in = db.session.scalar(
        select(Message)
        .where(Message.ticket_id == ticket.id, Message.direction == Direction.inbound)
        .order_by(Message.id.desc())
        .limit(1)
    )
    external_ids = db.session.scalars(
        select(Message.external_id)
        .where(Message.ticket_id == ticket.id, Message.external_id.is_not(None),
               Message.direction != Direction.note)
        .order_by(Message.id)
    ).all()
    return {
        "thread_key": ticket.thread_key,
        "external_ids": list(external_ids),
        "last_inbound_external_id": last_in.external_id if last_in else None,
        "last_inbound_meta": dict(last_in.meta or {}) if last_in else {},
        "last_inbound_at": last_in.sent_at.isoformat() if last_in else None,
        "agent_name": msg.agent.name if msg.agent else "",
        "contact_email": ticket.contact.email,
        "contact_name": ticket.contact.display_name,
    }


def mark_delivery(inbox_id: int, external_ids: list[str], status: Delivery) -> int:
    """Provider receipts (delivered/read) move outbound messages forward, never back."""
    order = [Delivery.pending, Delivery.sent, Delivery.delivered, Delivery.read]
    rows = db.session.scalars(
        select(Message).where(Message.inbox_id == inbox_id, Message.external_id.in_(external_ids),
                              Message.direction == Direction.outbound)
    ).all()
    changed = 0
    for msg in rows:
        if msg.delivery in order and order.index(status) > order.index(msg.delivery):
            msg.delivery = status
            events.publish(events.MESSAGE_UPDATED, message_json(msg), inbox_id=inbox_id, ticket_id=msg.ticket_id)
            changed += 1
    db.session.commit()
    return changed
