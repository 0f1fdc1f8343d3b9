"""Rows with exact timestamps and labels, so report numbers are known in advance."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from helpdesk.extensions import db
from helpdesk.models import Alert, Contact, Delivery, Direction, Message, Status, Tag, Ticket
from helpdesk.models.survey import Survey, SurveyAnswer
from helpdesk.services import escalation, sentiment

TOKYO = ZoneInfo("Asia/Tokyo")
_n = itertools.count(1)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def jst(*args) -> datetime:
    return datetime(*args, tzinfo=TOKYO).astimezone(timezone.utc)


def contact(name: str | None = None, **kw) -> Contact:
    c = Contact(name=name or f"顧客{next(_n)}", **kw)
    db.session.add(c)
    db.session.flush()
    return c


def ticket(inbox, *, created: datetime, who: Contact | None = None, agent=None, team=None,
           status: Status = Status.open, first_response: datetime | None = None, resolved: datetime | None = None,
           first_score: float | None = None, score: float | None = None, label: str | None = None,
           tags: tuple[str, ...] = (), subject: str = "件名") -> Ticket:
    t = Ticket(inbox=inbox, contact=who or contact(), channel=inbox.kind, subject=subject, status=status,
               assignee_id=agent.id if agent else None, team_id=team.id if team else None, created_at=created,
               last_message_at=created, first_response_at=first_response, resolved_at=resolved,
               sentiment_first_score=first_score, sentiment_score=score, sentiment_label=label)
    for name in tags:
        tag = db.session.query(Tag).filter_by(name=name).one_or_none() or Tag(name=name)
        t.tags.append(tag)
    db.session.add(t)
    db.session.flush()
    return t


def message(t: Ticket, *, at: datetime, label: str | None = None, score: float | None = None,
            keywords: list[str] | None = None, body: str = "問い合わせ") -> Message:
    m = Message(ticket=t, inbox_id=t.inbox_id, contact_id=t.contact_id, direction=Direction.inbound, body=body,
                sent_at=at, created_at=at, delivery=Delivery.none, sentiment_label=label, sentiment_score=score,
                keywords=keywords, external_id=f"gen-{next(_n)}")
    db.session.add(m)
    if at > t.last_message_at:
        t.last_message_at = at
    db.session.flush()
    return m


def answer(t: Ticket, kind: str, score: int, at: datetime) -> SurveyAnswer:
    s = Survey(ticket_id=t.id, kind=kind, inbox_id=t.inbox_id, channel=t.channel, contact_id=t.contact_id,
               agent_id=t.assignee_id, team_id=t.team_id, created_at=at)
    db.session.add(s)
    db.session.flush()
    a = SurveyAnswer(survey_id=s.id, score=score, via="link", answered_at=at)
    db.session.add(a)
    db.session.flush()
    return a


def escalate(t: Ticket, new_messages: list[Message]) -> list[Alert]:
    """The escalation rules for messages whose labels were set by hand (as the labelling runs
    them for a batch of predictions): the ticket's priority, the alerts and their events."""
    rows = sentiment.labelled_rows(Message.ticket_id, {t.id}, pending=new_messages).get(t.id, [])
    open_rules = escalation.open_alert_rules({t.id}).get(t.id, set())
    alerts = escalation.evaluate(t, new_messages, rows, open_rules)
    escalation.publish_alerts(alerts, new_messages)
    return alerts
