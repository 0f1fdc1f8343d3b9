"""Escalation rules as the labelling runs them: when an alert is raised, and when it is not."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import Alert, Event, Message, Priority, Status, Ticket
from helpdesk.models._types import utcnow
from helpdesk.services import sentiment
from tests import factories as f
from tests.supervisor import builders as b

# A quick-reply survey answer is labelled from its number (1 of 5: score -1), not by the model,
# so these tests run the real labelling path without loading the model.
pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)


def _alerts() -> int:
    return db.session.scalar(select(func.count()).select_from(Alert))


def test_a_new_strongly_negative_message_raises_one_alert_and_the_priority(app):
    t = b.ticket(f.inbox(), created=b.jst(2026, 3, 2, 9))
    m = b.message(t, at=b.jst(2026, 3, 2, 10), body="満足度：1")
    db.session.commit()
    sentiment.label_messages([m])
    [alert] = db.session.scalars(select(Alert)).all()
    assert (alert.rule, alert.message_id) == ("strongly_negative", m.id)
    assert db.session.get(Ticket, t.id).priority == Priority.high
    assert db.session.scalar(select(func.count()).select_from(Event).where(Event.name == "sentiment.alert")) == 1


def test_relabelling_stored_messages_raises_no_alert_and_leaves_the_priority(app):
    """`flask backfill-sentiment` (a new model) labels every stored message again. Each old
    unhappy message whose alert was acknowledged alerted again, live, and closed tickets from
    months ago went back to high priority: a flood of alerts about nothing new."""
    t = b.ticket(f.inbox(), created=b.jst(2025, 6, 2, 9), status=Status.closed)
    m = b.message(t, at=b.jst(2025, 6, 2, 10), body="満足度：1")
    db.session.commit()
    sentiment.label_messages([m])
    alert = db.session.scalars(select(Alert)).one()
    alert.acknowledged_at = utcnow()
    db.session.get(Ticket, t.id).priority = Priority.normal
    db.session.commit()

    sentiment.label_messages(db.session.scalars(select(Message)).all())
    assert _alerts() == 1
    assert db.session.get(Ticket, t.id).priority == Priority.normal
    assert db.session.scalar(select(func.count()).select_from(Event).where(Event.name == "sentiment.alert")) == 1
