"""The resolution clock stops while a ticket waits for its customer (pending)."""

from __future__ import annotations

import pytest

from helpdesk.extensions import db
from helpdesk.models import Status, Ticket
from helpdesk.services import reports
from helpdesk.services.ingest import ingest
from helpdesk.services.tickets import update_ticket
from tests import factories as f
from tests.supervisor import builders as b

pytestmark = [pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True),
              pytest.mark.config(SENTIMENT_ENABLED=False), pytest.mark.usefixtures("request_ctx")]

HOUR = 3600


@pytest.fixture
def at(monkeypatch):
    """at(datetime): what the desk takes for now, from here on."""
    def set_now(when):
        for module in ("helpdesk.models.ticket", "helpdesk.services.tickets", "helpdesk.services.ingest"):
            monkeypatch.setattr(f"{module}.utcnow", lambda: when)
    return set_now


def test_a_wait_ends_when_the_customer_writes_and_its_business_time_is_kept(app, at):
    inbox, agent = f.inbox(), f.agent()
    at(b.jst(2026, 3, 9, 9))  # Monday
    ticket = ingest(inbox, f.inbound(user_id="u-wait")).message.ticket
    at(b.jst(2026, 3, 9, 10))
    update_ticket(ticket, agent, status="pending")
    assert (ticket.pending_since, ticket.paused_seconds) == (b.jst(2026, 3, 9, 10), 0)
    at(b.jst(2026, 3, 10, 11, 30))  # Tuesday: 8 h on Monday, 2.5 h on Tuesday
    ingest(inbox, f.inbound(user_id="u-wait", text="お返事が遅くなりました。写真を送ります"))
    db.session.expire_all()
    ticket = db.session.get(Ticket, ticket.id)
    assert ticket.status is Status.open
    assert (ticket.pending_since, ticket.paused_seconds) == (None, 10 * HOUR + 30 * 60)


def test_every_wait_adds_up_through_the_agents_changes(app, at):
    inbox, agent = f.inbox(), f.agent()
    at(b.jst(2026, 3, 9, 9))
    ticket = ingest(inbox, f.inbound(user_id="u-twice")).message.ticket
    at(b.jst(2026, 3, 9, 10))
    update_ticket(ticket, agent, status="pending")
    at(b.jst(2026, 3, 9, 12))
    update_ticket(ticket, agent, status="resolved")  # the customer never came back: 2 h
    assert (ticket.pending_since, ticket.paused_seconds) == (None, 2 * HOUR)
    at(b.jst(2026, 3, 13, 17))  # Friday 17:00, reopened and waiting again
    update_ticket(ticket, agent, status="open")
    update_ticket(ticket, agent, status="pending")
    update_ticket(ticket, agent, priority="high")  # no status change: the wait goes on
    at(b.jst(2026, 3, 16, 10))  # Monday 10:00: 1 h on Friday, 1 h on Monday
    update_ticket(ticket, agent, status="open")
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).paused_seconds == 4 * HOUR


def _waited_ticket(inbox, agent, at) -> Ticket:
    """Created Mon 9:00, answered 9:30, pending Mon 10:00 -> Tue 10:00 (9 business hours),
    resolved Tue 12:00: 12 business hours in all, 3 of them the desk's."""
    t = b.ticket(inbox, created=b.jst(2026, 3, 9, 9), first_response=b.jst(2026, 3, 9, 9, 30), agent=agent)
    for when, status in (((2026, 3, 9, 10), "pending"), ((2026, 3, 10, 10), "open"), ((2026, 3, 10, 12), "resolved")):
        at(b.jst(*when))
        update_ticket(t, agent, status=status)
    return t


def test_resolution_times_leave_out_the_customers_waits(app, filters, at):
    inbox, agent = f.inbox(), f.agent(name="担当B")
    _waited_ticket(inbox, agent, at)
    fl = filters("2026-03-09", "2026-03-10")
    ops = reports.operations(fl, now=b.jst(2026, 3, 11, 9))
    assert ops["resolution"]["median_min"] == 180
    assert ops["resolution"]["within_target"] == 1
    (card,) = reports.agent_scorecard(fl)["agents"]
    assert (card["name"], card["rt_median_min"]) == ("担当B", 180)


@pytest.mark.config(SLA_PAUSE_WHEN_PENDING=False)
def test_a_desk_may_count_the_waits_as_working_time(app, filters, at):
    _waited_ticket(f.inbox(), f.agent(), at)
    assert reports.operations(filters("2026-03-09", "2026-03-10"), now=b.jst(2026, 3, 11, 9))[
        "resolution"]["median_min"] == 12 * 60


def test_a_waiting_ticket_does_not_run_towards_its_breach(app, filters, at):
    inbox, agent = f.inbox(), f.agent()
    now = b.jst(2026, 3, 11, 15)  # Wednesday; all began Monday 9:00, answered at 9:30; target 18 h
    waiting, back, working = (b.ticket(inbox, created=b.jst(2026, 3, 9, 9), first_response=b.jst(2026, 3, 9, 9, 30),
                                       agent=agent) for _ in range(3))
    at(b.jst(2026, 3, 9, 11))
    update_ticket(waiting, agent, status="pending")  # 2 h worked, then waiting still
    update_ticket(back, agent, status="pending")
    at(b.jst(2026, 3, 10, 11))
    update_ticket(back, agent, status="open")  # waited 9 h: 24 - 9 = 15 h, past 80 % of 18
    db.session.commit()
    ops = reports.operations(filters("2026-03-09", "2026-03-11"), now=now)
    rows = {r["id"]: (r["clock"], r["state"], r["elapsed_min"]) for r in ops["breaching"]["tickets"]}
    assert rows == {back.id: ("resolution", "at_risk", 15 * 60), working.id: ("resolution", "breached", 24 * 60)}


def test_tickets_pending_at_the_upgrade_wait_since_an_agent_set_them_so(app):
    import importlib

    from sqlalchemy import select, update

    from helpdesk.models import AuditLog

    inbox, agent = f.inbox(), f.agent()
    by_agent = b.ticket(inbox, created=b.jst(2026, 3, 9, 9))
    update_ticket(by_agent, agent, status="pending")
    update_ticket(by_agent, agent, priority="high")  # a later change that is not the wait's
    other = b.ticket(inbox, created=b.jst(2026, 3, 9, 9), status=Status.pending)  # no audit row
    b.ticket(inbox, created=b.jst(2026, 3, 9, 9))  # open: no wait
    db.session.execute(update(Ticket).values(pending_since=None))  # as the desk kept them before
    db.session.execute(update(Ticket).where(Ticket.id == other.id).values(updated_at=b.jst(2026, 3, 9, 12)))
    db.session.commit()
    set_pending = db.session.scalars(select(AuditLog.created_at).where(AuditLog.object_id == by_agent.id)
                                     .order_by(AuditLog.id)).first()
    migration = importlib.import_module("helpdesk.migrations.versions.6959061a840b_pending_clock")
    with db.engine.begin() as conn:
        migration.backfill_pending_since(conn)
    db.session.expire_all()
    assert [t.pending_since for t in db.session.scalars(select(Ticket).order_by(Ticket.id))] == [
        set_pending, b.jst(2026, 3, 9, 12), None]
