"""Bulk changes from the inbox list: tick tickets, apply one change to all of them."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import AuditLog, Event, Priority, Status, Ticket
from helpdesk.services.ingest import ingest
from tests import factories as f
from tests.conftest import csrf_token, login


@pytest.fixture
def desk(app, client):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="佐藤")
    other = f.agent(inboxes=[inbox], name="同僚")
    login(client, agent.email)
    tickets = [ingest(inbox, f.inbound(user_id=f"cust-{i}", text=f"問い合わせ{i}")).message.ticket for i in range(3)]
    return inbox, agent, other, [t.id for t in tickets]


def _post(client, data, next_path="/agent/?status=all"):
    token = csrf_token(client, "/agent/")
    return client.post("/agent/tickets/bulk", data={**data, "csrf_token": token, "next": next_path})


def _tickets(ids):
    db.session.expire_all()
    return [db.session.get(Ticket, i) for i in ids]


def test_inbox_rows_have_checkboxes_for_the_bulk_form(app, client, desk):
    *_, ids = desk
    html = client.get("/agent/").get_data(as_text=True)
    assert 'id="bulk"' in html and 'action="/agent/tickets/bulk"' in html
    for i in ids:
        assert re.search(rf'<input type="checkbox" name="ticket_ids" value="{i}" form="bulk"', html)
    assert "選択したチケットに適用" in html


def test_status_priority_assignee_and_tag_applied_to_selected_only(app, client, desk):
    inbox, agent, other, ids = desk
    picked, untouched = ids[:2], ids[2]
    resp = _post(client, {"ticket_ids": [str(i) for i in picked], "status": "pending", "priority": "high",
                          "assignee": str(other.id), "add_tag": "返金"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/agent/?status=all")
    for t in _tickets(picked):
        assert (t.status, t.priority, t.assignee_id) == (Status.pending, Priority.high, other.id)
        assert [tag.name for tag in t.tags] == ["返金"]
    (rest,) = _tickets([untouched])
    assert (rest.status, rest.priority, rest.assignee_id, rest.tags) == (Status.new, Priority.normal, None, [])
    # Each ticket is audited and announced like a single change.
    logs = db.session.scalars(select(AuditLog.object_id).where(AuditLog.action == "ticket.update")).all()
    assert sorted(logs) == picked
    assigned = db.session.scalars(select(Event.ticket_id).where(Event.name == "ticket.assigned")).all()
    assert sorted(assigned) == picked
    page = client.get("/agent/").get_data(as_text=True)
    assert "2 件のチケットを更新しました" in page


def test_add_tag_keeps_existing_tags_and_assign_to_me(app, client, desk):
    inbox, agent, other, ids = desk
    _post(client, {"ticket_ids": [str(ids[0])], "add_tag": "至急"})
    _post(client, {"ticket_ids": [str(ids[0])], "add_tag": "返金", "assignee": "me"})
    (t,) = _tickets([ids[0]])
    assert sorted(tag.name for tag in t.tags) == ["至急", "返金"]
    assert t.assignee_id == agent.id
    _post(client, {"ticket_ids": [str(ids[0])], "assignee": "none"})
    (t,) = _tickets([ids[0]])
    assert t.assignee_id is None


def test_refused_ticket_does_not_stop_the_others(app, client, desk):
    inbox, agent, other, ids = desk
    elsewhere = f.inbox(kind="test")
    elsewhere.members.append(agent)
    db.session.commit()
    foreign = ingest(elsewhere, f.inbound(user_id="x", text="別の受信箱")).message.ticket.id
    # `other` cannot see `elsewhere`: that ticket is refused, the rest are assigned and closed.
    _post(client, {"ticket_ids": [str(ids[0]), str(foreign)], "assignee": str(other.id), "status": "closed"})
    first, refused = _tickets([ids[0], foreign])
    assert (first.assignee_id, first.status) == (other.id, Status.closed)
    assert (refused.assignee_id, refused.status) == (None, Status.new)  # nothing half-applied
    page = client.get("/agent/").get_data(as_text=True)
    assert f"#{foreign}" in page and "1 件のチケットを更新しました" in page


def test_tickets_the_agent_cannot_see_are_untouched(app, client, desk, caplog):
    *_, ids = desk
    hidden_inbox = f.inbox(kind="test")
    hidden = ingest(hidden_inbox, f.inbound(user_id="y", text="見えない")).message.ticket.id
    _post(client, {"ticket_ids": [str(ids[0]), str(hidden)], "status": "closed"})
    shown, secret = _tickets([ids[0], hidden])
    assert shown.status is Status.closed and secret.status is Status.new
    assert "bulk-edited tickets they cannot see" in caplog.text


def test_selected_tickets_move_to_a_team_and_back_to_none(app, client, desk):
    *_, ids = desk
    billing = f.team(name="請求")
    assert f'<option value="{billing.id}">請求</option>' in client.get("/agent/").get_data(as_text=True)
    assert _post(client, {"ticket_ids": [str(i) for i in ids[:2]], "team": str(billing.id)}).status_code == 302
    assert [t.team_id for t in _tickets(ids)] == [billing.id, billing.id, None]
    _post(client, {"ticket_ids": [str(ids[0])], "team": "none"})
    assert [t.team_id for t in _tickets(ids)] == [None, billing.id, None]
    _post(client, {"ticket_ids": [str(ids[1])], "priority": "high"})  # team unchanged
    assert _tickets(ids)[1].team_id == billing.id
    resp = _post(client, {"ticket_ids": [str(ids[2])], "team": "999999"})  # deleted meanwhile
    assert resp.status_code == 302 and _tickets(ids)[2].team_id is None
    assert "そのチームはありません。" in client.get("/agent/").get_data(as_text=True)
    assert _post(client, {"ticket_ids": [str(ids[2])], "team": "billing"}).status_code == 400


def test_bad_input_is_refused_clearly(app, client, desk):
    *_, ids = desk
    assert client.post("/agent/tickets/bulk", data={"ticket_ids": [str(ids[0])], "status": "closed"}).status_code == 400
    assert _post(client, {"ticket_ids": [str(ids[0])], "status": "exploded"}).status_code == 400
    assert _post(client, {"ticket_ids": [str(ids[0])], "assignee": "everyone"}).status_code == 400
    resp = _post(client, {"status": "closed"})
    assert resp.status_code == 302
    assert "チケットを選択してください" in client.get("/agent/").get_data(as_text=True)
    assert [t.status for t in _tickets(ids)] == [Status.new] * 3
    # The way back is always a path on this site.
    resp = _post(client, {"ticket_ids": [str(ids[0])], "status": "open"}, next_path="//evil.example/")
    assert resp.headers["Location"].endswith("/agent/")
