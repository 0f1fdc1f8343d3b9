"""Escalation rules: turn sentiment into action.

Rules (thresholds in config):
- ``angry``: a message whose anger probability >= ESCALATE_ANGER_PROB -> priority urgent + alert.
- ``strongly_negative``: a message with score <= ESCALATE_SCORE -> priority at least high + alert.
- ``negative_streak``: the customer's last two messages are both negative -> alert.
Each rule alerts at most once per message, and only when the message gets its first label
(re-labelling stored messages raises nothing); alerts go to the ``supervisors`` room.

A ticket whose alert no one has acknowledged yet alerts again only when it gets worse (a
rule above every open one: angry > strongly_negative > negative_streak). An angry customer
writing ten messages in a chat is one alert, not ten; the priority still follows each one.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import inspect, select

from ..extensions import db
from ..models import Alert, Message, Priority, Ticket
from ..realtime import events
from ..realtime.serializers import agent_json


# How bad each rule's news is: an open alert holds back new ones of its rule and below.
SEVERITY = {"negative_streak": 1, "strongly_negative": 2, "angry": 3}


def open_alert_rules(ticket_ids) -> dict[int, set[str]]:
    """The rules of each ticket's alerts that no one has acknowledged yet."""
    found: dict[int, set[str]] = {}
    for ticket_id, rule in db.session.execute(select(Alert.ticket_id, Alert.rule).where(
            Alert.ticket_id.in_(list(ticket_ids)), Alert.acknowledged_at.is_(None))):
        found.setdefault(ticket_id, set()).add(rule)
    return found


def raised_by(messages: list[Message]) -> dict[int, int]:
    """The severity of the worst alert each edited message has raised, acknowledged or not. A
    customer's edit is labelled again (services/status.py): an angry message edited into
    another angry one is no new news, and raised a second alert once its first had been
    acknowledged. Only edited messages can have one, so a batch without them asks nothing."""
    edited = [m.id for m in messages if m.id is not None and (m.meta or {}).get("edits")]
    worst: dict[int, int] = {}
    if edited:
        for message_id, rule in db.session.execute(select(Alert.message_id, Alert.rule)
                                                   .where(Alert.message_id.in_(edited))):
            worst[message_id] = max(worst.get(message_id, 0), SEVERITY.get(rule, 0))
    return worst


def evaluate(ticket: Ticket, new_messages: list[Message], rows: list[tuple], open_rules: set[str],
             raised: dict[int, int] | None = None) -> list[Alert]:
    """The rules, without writing: the priority is raised on the object and the alerts are
    new objects, not yet added. ``rows``: the ticket's labelled customer messages as
    ``sentiment.labelled_rows`` gives them (oldest first, ``new_messages`` counted);
    ``open_rules``: those of its unacknowledged alerts (``open_alert_rules``), to which the
    new alerts are added; ``raised``: what the messages raised before an edit (``raised_by``)."""
    cfg = current_app.config
    alerts: list[Alert] = []
    raised = raised or {}

    def alert(msg: Message, rule: str, detail: str) -> None:
        if SEVERITY[rule] <= raised.get(msg.id, 0):
            return
        if SEVERITY[rule] > max((SEVERITY.get(r, 0) for r in open_rules), default=0):
            alerts.append(Alert(ticket=ticket, message_id=msg.id, rule=rule, detail=detail))
            open_rules.add(rule)

    recent = [(id_, label) for _, id_, label, _ in reversed(rows[-2:])]  # the newest two, newest first
    for msg in new_messages:
        if _relabelled(msg):
            continue
        if msg.sentiment_anger is not None and msg.sentiment_anger >= cfg["ESCALATE_ANGER_PROB"]:
            _raise_priority(ticket, Priority.urgent)
            alert(msg, "angry", f"anger={msg.sentiment_anger:.2f}")
        elif msg.sentiment_score is not None and msg.sentiment_score <= cfg["ESCALATE_SCORE"]:
            _raise_priority(ticket, Priority.high)
            alert(msg, "strongly_negative", f"score={msg.sentiment_score:.2f}")
        elif len(recent) == 2 and msg.id == recent[0][0] and all(label == "negative" for _, label in recent):
            alert(msg, "negative_streak", "two negative messages in a row")
    return alerts


def _relabelled(msg: Message) -> bool:
    """Whether this run replaces a label the message already had (``flask backfill-sentiment``
    after a model change labels every stored message again). That is no news about the
    customer: it raised an alert for every old unhappy message whose alert was acknowledged,
    and put closed tickets back to high priority. Read from the unflushed attribute history,
    which holds while the labelling evaluates its batch (it sets the labels under no_autoflush):
    this run set a new labelling time, and the label before it was not NULL (pending)."""
    state = inspect(msg).attrs
    label = state.sentiment_label.history
    before = label.deleted or label.unchanged
    return bool(state.sentiment_at.history.deleted) and any(old is not None for old in before)


def _raise_priority(ticket: Ticket, at_least: Priority) -> None:
    if ticket.priority.rank < at_least.rank:
        ticket.priority = at_least


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
