"""The away message (営業時間外の自動応答): a customer who writes while the desk is closed is
told, once per ticket and closed spell, when to expect an answer.

An inbox has one when its settings hold ``away_message`` (the admin's inbox page), where
``{next_open}`` says when the desk opens next. It goes out
on the customer's channel as a system message, through the one outbound path; email marks it
``Auto-Submitted: auto-replied`` (RFC 3834), so that the customer's own responder does not answer
it. It is no first response, and it does not change the ticket's status.
"""

from __future__ import annotations

import logging
from datetime import datetime

from babel.dates import format_skeleton
from flask import current_app
from sqlalchemy import select

from channels.base import Inbound

from ..extensions import db
from ..models import Direction, Inbox, Message
from . import sla

log = logging.getLogger(__name__)

# The ticket's latest system messages looked at for an earlier away message.
_LOOK_BACK = 20


def text_for(inbox: Inbox) -> str:
    return str((inbox.settings or {}).get("away_message") or "").strip()


def wanted(inbox: Inbox, inbound: Inbound) -> bool:
    """Whether a message just stored may get the away message (the job decides, by the clock).
    Never for an automatic message (an out-of-office mail): two responders would answer each
    other."""
    return bool(text_for(inbox)) and not inbound.meta.get("auto_submitted")


def render(text: str, clock: sla.BusinessClock, now: datetime) -> str:
    """The text with ``{next_open}`` as the customer reads it: when the desk opens next, in the
    desk's language and time zone (「3月10日(火) 9:00」)."""
    if "{next_open}" not in text:
        return text
    opens = clock.next_open(now)
    if opens is None:
        return text.replace("{next_open}", "")
    locale = current_app.config.get("BABEL_DEFAULT_LOCALE") or "ja"
    when = " ".join(format_skeleton(skeleton, opens, tzinfo=clock.tz, locale=locale) for skeleton in ("MMMEd", "Hm"))
    return text.replace("{next_open}", when)


def send_if_closed(message_id: int) -> Message | None:
    """The away message for this customer message, if the desk is closed now and the ticket
    has had none since it closed. Safe to run twice."""
    from .replies import post_reply

    msg = db.session.get(Message, message_id)
    if msg is None or msg.direction is not Direction.inbound:
        return None
    ticket = msg.ticket
    text = text_for(ticket.inbox)
    clock = sla.BusinessClock.from_config(current_app.config)
    now = sla.now_utc()
    if not text or not ticket.reply_to or ticket.merged_into_id or clock.is_open(now):
        return None
    recent = db.session.execute(
        select(Message.sent_at, Message.meta)
        .where(Message.ticket_id == ticket.id, Message.direction == Direction.outbound, Message.agent_id.is_(None))
        .order_by(Message.id.desc()).limit(_LOOK_BACK)).all()
    last = next((sent_at for sent_at, meta in recent if (meta or {}).get("auto_reply") == "away"), None)
    if last is not None and clock.seconds_between(last, now) == 0:
        return None  # told already in this closed spell
    reply = post_reply(ticket, None, render(text, clock, now), meta={"auto_reply": "away"})
    log.info("away message %s sent on ticket %s (the desk is closed)", reply.id, ticket.id)
    return reply
