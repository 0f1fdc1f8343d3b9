"""Escalation rules: turn sentiment into action.

Rules (thresholds in config):
- ``angry``: a message whose anger probability >= ESCALATE_ANGER_PROB -> priority urgent + alert.
- ``strongly_negative``: a message with score <= ESCALATE_SCORE -> priority at least high + alert.
- ``negative_streak``: the customer's last two messages are both negative -> alert.
Each rule alerts at most once per message; alerts go to the ``supervisors`` room.
"""

from __future__ import annotations

from typing import Iterable

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..models import Alert, Direction, Message, Priority, Ticket
from ..realtime import events
from ..realtime.serializers import agent_json


def apply_rules(ticket: Ticket, new_messages: list[Message], recent: list[Message] | None = None) -> list[Alert]:
    """``recent``: the ticket's two newest labelled customer messages (``newest_labelled``),
    when the caller read them before it started writing."""
    cfg = current_app.config
    if recent is None:
        recent = newest_labelled(ticket, pending=new_messages)
    alerts: list[Alert] = []
    for msg in new_messages:
        if msg.sentiment_anger is not None and msg.sentiment_anger >= cfg["ESCALATE_ANGER_PROB"]:
            _raise_priority(ticket, Priority.urgent)
            alerts.append(_alert(ticket, msg, "angry", f"anger={msg.sentiment_anger:.2f}"))
        elif msg.sentiment_score is not None and msg.sentiment_score <= cfg["ESCALATE_SCORE"]:
            _raise_priority(ticket, Priority.high)
            alerts.append(_alert(ticket, msg, "strongly_negative", f"score={msg.sentiment_score:.2f}"))
    newest = recent[0] if recent else None
    if (len(recent) == 2 and all(m.sentiment_label == "negative" for m in recent)
            and newest in new_messages and not any(a.message_id == newest.id for a in alerts)):
        alerts.append(_alert(ticket, newest, "negative_streak", "two negative messages in a row"))
    return alerts


def newest_labelled(ticket: Ticket, pending: Iterable[Message] = ()) -> list[Message]:
    """The ticket's two newest labelled customer messages, newest first; ``pending`` ones
    (labelled in memory, not yet written) count with their new labels."""
    stored = db.session.scalars(
        select(Message)
        .where(Message.ticket_id == ticket.id, Message.direction == Direction.inbound,
               Message.sentiment_label.is_not(None))
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(2)
    ).all()
    candidates = {m.id: m for m in [*stored, *pending] if m.sentiment_label is not None}
    return sorted(candidates.values(), key=lambda m: (m.sent_at, m.id), reverse=True)[:2]


def _raise_priority(ticket: Ticket, at_least: Priority) -> None:
    if ticket.priority.rank < at_least.rank:
        ticket.priority = at_least


def _alert(ticket: Ticket, msg: Message, rule: str, detail: str) -> Alert:
    alert = Alert(ticket_id=ticket.id, message_id=msg.id, rule=rule, detail=detail)
    db.session.add(alert)
    db.session.flush()
    events.publish(
        events.SENTIMENT_ALERT,
        {"id": alert.id, "ticket_id": ticket.id, "message_id": msg.id, "rule": rule, "detail": detail,
         "subject": ticket.subject, "contact": ticket.contact.display_name, "inbox_id": ticket.inbox_id,
         "assignee": agent_json(ticket.assignee), "excerpt": (msg.body or "")[:140],
         "created_at": alert.created_at.isoformat()},
        ticket_id=ticket.id, supervisors_only=True,
    )
    return alert
