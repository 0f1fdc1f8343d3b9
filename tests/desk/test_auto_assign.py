"""Automatic assignment: a new ticket goes to the least busy online agent of its inbox."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import AuditLog, Role, Status, Ticket
from helpdesk.realtime import presence
from helpdesk.realtime.presence import Presence
from helpdesk.services.ingest import ingest
from tests import factories as f
from tests.conftest import csrf_token, login
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
