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


def apply_rules(ticket: Ticket, new_messages: list[Message],
                recent: list[tuple[int, str]] | None = None) -> list[Alert]:
    """Raise the ticket's priority and alert supervisors as the rules say; returns the alerts."""
    if recent is None:
        recent = newest_labelled(ticket, pending=new_messages)
    alerts = evaluate(ticket, new_messages, recent)
    publish_alerts(alerts, new_messages)
    return alerts


def evaluate(ticket: Ticket, new_messages: list[Message], recent: list[tuple[int, str]]) -> list[Alert]:
    """The rules, without writing: the priority is raised on the object and the alerts are
    new objects, not yet added. ``recent``: (id, label) of the ticket's two newest labelled
    customer messages, newest first, ``new_messages`` counted (``newest_labelled``)."""
    cfg = current_app.config
    alerts: list[Alert] = []
    for msg in new_messages:
        if msg.sentiment_anger is not None and msg.sentiment_anger >= cfg["ESCALATE_ANGER_PROB"]:
            _raise_priority(ticket, Priority.urgent)
            alerts.append(_alert(ticket, msg, "angry", f"anger={msg.sentiment_anger:.2f}"))
        elif msg.sentiment_score is not None and msg.sentiment_score <= cfg["ESCALATE_SCORE"]:
            _raise_priority(ticket, Priority.high)
            alerts.append(_alert(ticket, msg, "strongly_negative", f"score={msg.sentiment_score:.2f}"))
    newest = next((m for m in new_messages if recent and m.id == recent[0][0]), None)
    if (newest is not None and len(recent) == 2 and all(label == "negative" for _, label in recent)
            and not any(a.message_id == newest.id for a in alerts)):
        alerts.append(_alert(ticket, newest, "negative_streak", "two negative messages in a row"))
    return alerts


def newest_labelled(ticket: Ticket, pending: Iterable[Message] = ()) -> list[tuple[int, str]]:
    """(id, label) of the ticket's two newest labelled customer messages, newest first;
    ``pending`` ones (labelled in memory, not yet written) count with their new labels."""
    stored = db.session.execute(
        select(Message.sent_at, Message.id, Message.sentiment_label)
        .where(Message.ticket_id == ticket.id, Message.direction == Direction.inbound,
               Message.sentiment_label.is_not(None))
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(2)
    ).all()
    rows = {row[1]: tuple(row) for row in stored}
    rows.update({m.id: (m.sent_at, m.id, m.sentiment_label) for m in pending if m.sentiment_label is not None})
    return [(id_, label) for _, id_, label in sorted(rows.values(), reverse=True)[:2]]


def _raise_priority(ticket: Ticket, at_least: Priority) -> None:
    if ticket.priority.rank < at_least.rank:
        ticket.priority = at_least


def _alert(ticket: Ticket, msg: Message, rule: str, detail: str) -> Alert:
    return Alert(ticket=ticket, message_id=msg.id, rule=rule, detail=detail)


def publish_alerts(alerts: list[Alert], messages: list[Message]) -> None:
    """Store the alerts (one INSERT) and send them to the supervisors after commit.
    ``messages``: those the alerts are about."""
    if not alerts:
        return
    db.session.add_all(alerts)
    db.session.flush()
    by_id = {m.id: m for m in messages}
    events.publish_many([(events.SENTIMENT_ALERT, _alert_json(a, by_id[a.message_id]),
                          {"ticket_id": a.ticket_id, "supervisors_only": True}) for a in alerts])


def _alert_json(alert: Alert, msg: Message) -> dict:
    ticket = alert.ticket
    return {"id": alert.id, "ticket_id": ticket.id, "message_id": msg.id, "rule": alert.rule,
            "detail": alert.detail, "subject": ticket.subject, "contact": ticket.contact.display_name,
            "inbox_id": ticket.inbox_id, "assignee": agent_json(ticket.assignee), "excerpt": (msg.body or "")[:140],
            "created_at": alert.created_at.isoformat()}
