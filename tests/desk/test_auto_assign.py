"""Automatic assignment: a new ticket goes to the least busy online agent of its inbox."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import AuditLog, Availability, Role, Status, Ticket
from helpdesk.realtime import presence
from helpdesk.realtime.presence import Presence
from helpdesk.services.ingest import ingest
from helpdesk.services.tickets import merge_tickets, update_ticket
from tests import factories as f
from tests.conftest import csrf_token, in_thread, login
from tests.procs import REDIS_URL, redis_available
from tests.supervisor import builders as b


@pytest.fixture
def inbox(app):
    return f.inbox(settings={"auto_assign": True})


def online(agent, inbox_ids, sid=None):
    """The agent has a page of the desk open (as the /agent namespace registers it)."""
    presence.registry().agent_connected(sid or f"sid-{agent.id}", {"id": agent.id, "name": agent.name}, inbox_ids)


def new_ticket(inbox, user_id: str) -> Ticket:
    ticket = ingest(inbox, f.inbound(user_id=user_id)).message.ticket
    db.session.expire_all()
    return db.session.get(Ticket, ticket.id)


def test_new_tickets_go_to_the_least_busy_online_agent(app, inbox):
    busy, idle, away = (f.agent(inboxes=[inbox], name=n) for n in ("忙しい", "空いている", "不在"))
    online(busy, [inbox.id])
    online(idle, [inbox.id])
    b.ticket(inbox, created=b.jst(2026, 3, 9, 9), agent=busy)  # one active ticket already
    b.ticket(inbox, created=b.jst(2026, 3, 9, 9), agent=idle, status=Status.resolved)  # not active: no load
    db.session.commit()
    first = new_ticket(inbox, "c1")
    assert first.assignee_id == idle.id
    second = new_ticket(inbox, "c2")  # 1 each now: the lower id
    assert second.assignee_id == busy.id
    assert away.id not in {first.assignee_id, second.assignee_id}
    audit = db.session.scalars(select(AuditLog).where(AuditLog.object_id == first.id)).all()
    assert [(a.agent_id, a.changes) for a in audit] == [(None, {"assignee_id": [None, idle.id]})]


def test_a_follow_up_keeps_its_ticket_and_nobody_online_leaves_it_waiting(app, inbox):
    agent = f.agent(inboxes=[inbox])
    waiting = new_ticket(inbox, "c1")
    assert waiting.assignee_id is None  # nobody online
    online(agent, [inbox.id])
    assert new_ticket(inbox, "c1").id == waiting.id  # a follow-up message: no new ticket
    assert db.session.get(Ticket, waiting.id).assignee_id is None


def test_admins_and_other_inboxes_agents_are_not_given_tickets(app, inbox):
    other_inbox = f.inbox()
    admin = f.agent(role=Role.admin, email="root@example.com")
    stranger = f.agent(inboxes=[other_inbox])
    online(admin, [inbox.id, other_inbox.id])
    online(stranger, [other_inbox.id])
    assert new_ticket(inbox, "c1").assignee_id is None


def test_an_inbox_without_the_setting_assigns_nobody(app):
    plain = f.inbox()
    online(f.agent(inboxes=[plain]), [plain.id])
    assert new_ticket(plain, "c1").assignee_id is None


@pytest.mark.skipif(not redis_available(), reason="Redis not reachable")
def test_agents_online_on_another_server_count(app, inbox):
    """Several servers: the agent's page is held by another process; presence is in Redis."""
    import uuid

    prefix = f"hd-assign-{uuid.uuid4().hex[:8]}"
    app.config.update(REDIS_URL=REDIS_URL, SOCKETIO_CHANNEL=prefix)
    app.extensions.pop("helpdesk.presence", None)
    agent = f.agent(inboxes=[inbox])
    elsewhere = Presence(REDIS_URL, prefix)
    elsewhere.agent_connected("remote-sid", {"id": agent.id, "name": agent.name}, [inbox.id])
    try:
        assert presence.registry().online_agent_ids(inbox.id) == {agent.id}
        assert new_ticket(inbox, "c1").assignee_id == agent.id
    finally:
        elsewhere.disconnected("remote-sid")
        app.extensions.pop("helpdesk.presence", None)


def test_admins_switch_it_on_the_inbox_page(app, client, inbox):
    login(client, f.agent(role=Role.admin, email="root@example.com").email)
    page = client.get(f"/admin/inboxes/{inbox.id}").get_data(as_text=True)
    assert re.search(r'<input checked id="auto_assign"', page)
    form = {"csrf_token": csrf_token(client, f"/admin/inboxes/{inbox.id}"), "name": inbox.name, "active": "y",
            "settings": "{}"}
    assert client.post(f"/admin/inboxes/{inbox.id}", data=form).status_code == 302
    db.session.refresh(inbox)
    assert inbox.settings == {}
    client.post(f"/admin/inboxes/{inbox.id}", data={**form, "auto_assign": "y"})
    db.session.refresh(inbox)
    assert inbox.settings == {"auto_assign": True}


# ---- availability, the cap on each agent's tickets, and the queue -----------------------

def capped(limit: int, **settings):
    return f.inbox(settings={"auto_assign": True, "auto_assign_limit": limit, **settings})


def assignee(ticket_id: int) -> int | None:
    db.session.expire_all()
    return db.session.get(Ticket, ticket_id).assignee_id


def test_a_busy_agent_gets_no_new_tickets(app, inbox):
    worker, resting = f.agent(inboxes=[inbox]), f.agent(inboxes=[inbox], availability=Availability.busy)
    online(worker, [inbox.id])
    online(resting, [inbox.id])
    assert [new_ticket(inbox, f"c{i}").assignee_id for i in range(3)] == [worker.id] * 3
    worker.availability = Availability.busy
    db.session.commit()
    assert new_ticket(inbox, "c9").assignee_id is None  # everyone busy: it waits


def test_pending_tickets_are_no_load(app, inbox):
    waiting_on_customer, working = f.agent(inboxes=[inbox]), f.agent(inboxes=[inbox])
    online(waiting_on_customer, [inbox.id])
    online(working, [inbox.id])
    for _ in range(3):
        b.ticket(inbox, created=b.jst(2026, 3, 9, 9), agent=waiting_on_customer, status=Status.pending)
    b.ticket(inbox, created=b.jst(2026, 3, 9, 9), agent=working, status=Status.new)
    db.session.commit()
    assert new_ticket(inbox, "c1").assignee_id == waiting_on_customer.id


def test_the_cap_makes_tickets_wait_until_someone_has_room(app):
    inbox = capped(2)
    agent = f.agent(inboxes=[inbox])
    colleague = f.agent(inboxes=[inbox], availability=Availability.busy)  # takes none by itself
    online(agent, [inbox.id])
    tickets = [new_ticket(inbox, f"c{i}") for i in range(5)]
    assert [t.assignee_id for t in tickets] == [agent.id, agent.id, None, None, None]
    update_ticket(tickets[0], agent, status="pending")  # room for one: the oldest waiting comes
    assert [assignee(t.id) for t in tickets[2:]] == [agent.id, None, None]
    update_ticket(tickets[1], agent, assignee_id=colleague.id)  # handed to a colleague: room again
    assert [assignee(t.id) for t in tickets[3:]] == [agent.id, None]
    update_ticket(tickets[2], agent, status="resolved")
    assert assignee(tickets[4].id) == agent.id
    update_ticket(tickets[0], agent, status="open")  # the customer answered: past the cap, nothing moves
    assert [assignee(t.id) for t in tickets] == [agent.id, colleague.id, agent.id, agent.id, agent.id]
    update_ticket(tickets[3], agent, assignee_id=None)  # given back, and no room: it waits
    assert assignee(tickets[3].id) is None


def test_a_merged_duplicate_makes_room(app):
    inbox = capped(1)
    agent = f.agent(inboxes=[inbox])
    online(agent, [inbox.id])
    first = new_ticket(inbox, "c1")
    duplicate = ingest(inbox, f.inbound(user_id="c1", new_thread=True)).message.ticket_id
    other = new_ticket(inbox, "c2")
    assert (first.assignee_id, assignee(other.id)) == (agent.id, None)
    update_ticket(db.session.get(Ticket, duplicate), agent, assignee_id=agent.id)  # by hand, past the cap
    merge_tickets(first, db.session.get(Ticket, duplicate), agent)
    assert assignee(other.id) is None  # still two tickets to work, the merged one closed: one
    update_ticket(first, agent, status="resolved")
    assert assignee(other.id) == agent.id


def test_waiting_tickets_go_most_urgent_first_then_oldest(app, client):
    inbox = capped(2)
    agent = f.agent(inboxes=[inbox], availability=Availability.busy)
    online(agent, [inbox.id])
    old, newer, urgent, newest = (new_ticket(inbox, f"c{i}") for i in range(4))
    update_ticket(urgent, None, priority="urgent")
    assert {assignee(t.id) for t in (old, newer, urgent, newest)} == {None}
    login(client, agent.email)
    token = csrf_token(client, "/agent/")
    resp = client.post("/account/availability", data={"csrf_token": token, "availability": "available"},
                       headers={"Accept": "application/json"})
    assert resp.get_json() == {"availability": "available"}
    assert [assignee(t.id) for t in (old, newer, urgent, newest)] == [agent.id, None, agent.id, None]


def test_an_agent_opening_the_desk_takes_waiting_tickets_only_under_a_cap(app, client):
    from helpdesk.extensions import socketio

    queueing, plain = capped(5), f.inbox(settings={"auto_assign": True})
    agent = f.agent(inboxes=[queueing, plain])
    queued = [new_ticket(queueing, f"q{i}") for i in range(2)]
    unqueued = new_ticket(plain, "p1")
    assert {t.assignee_id for t in [*queued, unqueued]} == {None}  # nobody online
    login(client, agent.email)
    sio = socketio.test_client(app, namespace="/agent", flask_test_client=client)
    try:
        assert sio.is_connected("/agent")
        assert [assignee(t.id) for t in queued] == [agent.id, agent.id]
        # without a cap, the first agent in is not handed the night's queue
        assert assignee(unqueued.id) is None
    finally:
        sio.disconnect("/agent")


def test_the_availability_switch(app, client, caplog):
    from helpdesk.extensions import socketio

    inbox = f.inbox()
    agent = f.agent(inboxes=[inbox])
    login(client, agent.email)
    page = client.get("/agent/").get_data(as_text=True)
    assert re.search(r'<option value="available" selected>対応可能</option>', page)
    other_page = socketio.test_client(app, namespace="/agent", flask_test_client=client)
    other_page.get_received("/agent")
    token = csrf_token(client, "/agent/")
    # without JavaScript: the form posts and comes back to the page it was on
    resp = client.post("/account/availability", data={"csrf_token": token, "availability": "busy",
                                                     "next": "/contacts?q=1"})
    assert (resp.status_code, resp.headers["Location"]) == (302, "/contacts?q=1")
    db.session.refresh(agent)
    assert agent.availability is Availability.busy
    assert [e["args"][0] for e in other_page.get_received("/agent") if e["name"] == "agent.availability"] \
        == [{"agent_id": agent.id, "availability": "busy"}]
    other_page.disconnect("/agent")
    assert 'data-state="busy"' in client.get("/agent/").get_data(as_text=True)
    audit = db.session.scalars(select(AuditLog).where(AuditLog.action == "account.update")).all()
    assert [(a.agent_id, a.changes) for a in audit] == [(agent.id, {"availability": ["available", "busy"]})]
    # the same again changes nothing and logs nothing
    client.post("/account/availability", data={"csrf_token": token, "availability": "busy"})
    assert db.session.scalar(select(func.count()).select_from(AuditLog)) == 1
    with caplog.at_level("WARNING", logger="helpdesk.views.auth"):
        bad = client.post("/account/availability", data={"csrf_token": token, "availability": "<b>lunch</b>"},
                          headers={"Accept": "application/json"})
    assert bad.status_code == 400 and "available, busy" in bad.get_json()["error"]
    assert "unknown availability" in caplog.text
    assert client.post("/account/availability", data={"availability": "available"}).status_code == 400  # no CSRF
    db.session.refresh(agent)
    assert agent.availability is Availability.busy


def test_admins_and_supervisors_have_no_switch(app, client):
    login(client, f.agent(role=Role.supervisor, email="boss@example.com").email)
    assert 'id="availability"' not in client.get("/agent/").get_data(as_text=True)


def test_admins_set_the_cap_on_the_inbox_page(app, client):
    inbox = capped(3)
    admin = f.agent(role=Role.admin, email="root@example.com")
    agent = f.agent(inboxes=[inbox])
    online(agent, [inbox.id])
    waiting = [new_ticket(inbox, f"c{i}") for i in range(5)]
    assert [t.assignee_id for t in waiting].count(agent.id) == 3
    login(client, admin.email)
    path = f"/admin/inboxes/{inbox.id}"
    assert re.search(r'id="auto_assign_limit"[^>]*value="3"', client.get(path).get_data(as_text=True))
    form = {"csrf_token": csrf_token(client, path), "name": inbox.name, "active": "y", "settings": "{}",
            "auto_assign": "y", "members": [agent.id]}
    for bad in ("0", "-1", "abc", "1000"):
        assert client.post(path, data={**form, "auto_assign_limit": bad}).status_code == 400
    db.session.refresh(inbox)
    assert inbox.settings == {"auto_assign": True, "auto_assign_limit": 3}
    assert client.post(path, data={**form, "auto_assign_limit": "4"}).status_code == 302
    db.session.refresh(inbox)
    assert inbox.settings == {"auto_assign": True, "auto_assign_limit": 4}
    assert [assignee(t.id) for t in waiting].count(agent.id) == 4  # raised: one more given out at once
    assert client.post(path, data=form).status_code == 302  # empty: no cap
    db.session.refresh(inbox)
    assert inbox.settings == {"auto_assign": True}


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_two_runs_at_once_give_no_ticket_twice_and_no_agent_past_the_cap(app):
    """As two RQ workers would: each run in a thread (and session) of its own."""
    import threading

    from helpdesk.services.assign import assign_waiting

    inbox = capped(2)
    agents = [f.agent(inboxes=[inbox]) for _ in range(2)]
    tickets = [b.ticket(inbox, created=b.jst(2026, 3, 9, 9, i), status=Status.new).id for i in range(8)]
    db.session.commit()
    for agent in agents:
        online(agent, [inbox.id])
    start = threading.Barrier(2)
    given = []

    def run():
        start.wait()
        given.append(assign_waiting(inbox.id))

    threads = [threading.Thread(target=in_thread, args=(app, run)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(given) == 4
    owners = [assignee(t) for t in tickets]
    assert sorted(owners, key=str) == sorted([agents[0].id] * 2 + [agents[1].id] * 2 + [None] * 4, key=str)
    assert owners[:4].count(None) == 0  # the oldest first
    audit = db.session.scalars(select(AuditLog).where(AuditLog.action == "ticket.update")).all()
    assert len(audit) == 4  # one assignment each, none replaced
