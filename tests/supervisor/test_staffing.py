"""The dashboard's "agents now": who has the desk open, available or busy, with how many
tickets, and how many tickets wait for an agent; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io

import pytest

from helpdesk.extensions import db
from helpdesk.models import Availability, Role, Status
from helpdesk.realtime import presence
from tests import factories as f
from tests.supervisor import builders as b

pytestmark = [pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True),
              pytest.mark.config(SENTIMENT_ENABLED=False)]


def online(agent, inbox):
    presence.registry().agent_connected(f"sid-{agent.id}", {"id": agent.id, "name": agent.name}, [inbox.id])


@pytest.fixture
def desk(app, supervisor):
    inbox, other = f.inbox(), f.inbox()
    working = f.agent(inboxes=[inbox, other], name="青木")
    resting = f.agent(inboxes=[inbox], name="井上", availability=Availability.busy)
    away = f.agent(inboxes=[inbox], name="上田")
    f.agent(inboxes=[inbox], name="江藤", active=False)
    team = f.team(name="二次対応", members=[resting, away])
    when = b.jst(2026, 3, 9, 9)
    for status in (Status.new, Status.open, Status.pending, Status.resolved):
        b.ticket(inbox, created=when, agent=working, status=status)
    b.ticket(other, created=when, agent=working, status=Status.open)
    b.ticket(inbox, created=when, agent=away, status=Status.open)
    for status in (Status.new, Status.open, Status.pending, Status.closed):
        b.ticket(inbox, created=when, status=status)  # unassigned: the new and open ones wait
    b.ticket(inbox, created=when, status=Status.new, team=team)  # waits, for the team
    db.session.commit()
    for agent in (working, resting, supervisor):
        online(agent, inbox)
    return inbox, other, team, working


def test_who_works_now_and_what_waits(app, sv_client, desk):
    d = sv_client.get("/supervisor/api/staffing?from=2020-01-01&to=2020-01-02").get_json()  # the dates do not matter
    assert [(a["name"], a["state"], a["working"], a["pending"]) for a in d["agents"]] == [
        ("青木", "available", 3, 1), ("井上", "busy", 0, 0), ("上長", "online", 0, 0), ("上田", "offline", 1, 0)]
    assert (d["waiting"], d["online"]) == (3, 3)
    assert d["table"]["rows"][:2] == [["青木", "対応可能", 3, 1], ["井上", "取り込み中", 0, 0]]
    assert d["table"]["rows"][3] == ["上田", "オフライン", 1, 0]


def test_the_inbox_filter_counts_its_tickets_and_the_agent_filter_one_agent(app, sv_client, desk):
    inbox, other, _team, working = desk
    d = sv_client.get(f"/supervisor/api/staffing?inbox={other.id}").get_json()
    assert [(a["name"], a["working"]) for a in d["agents"]][:1] == [("青木", 1)]
    assert d["waiting"] == 0
    d = sv_client.get(f"/supervisor/api/staffing?agent={working.id}").get_json()
    assert [a["name"] for a in d["agents"]] == ["青木"]


def test_the_team_filter_shows_its_members_and_its_queue(app, sv_client, desk):
    team = desk[2]
    d = sv_client.get(f"/supervisor/api/staffing?team={team.id}").get_json()
    assert [(a["name"], a["state"]) for a in d["agents"]] == [("井上", "busy"), ("上田", "offline")]
    assert d["waiting"] == 1


def test_as_csv(app, sv_client, desk):
    resp = sv_client.get("/supervisor/api/staffing?format=csv")
    assert resp.status_code == 200
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["エージェント", "状態", "新規・対応中", "保留中"]
    assert rows[1] == ["青木", "対応可能", "3", "1"]


def test_agents_may_not_see_it(app, client, desk):
    from tests.conftest import login

    login(client, f.agent(role=Role.agent).email)
    assert client.get("/supervisor/api/staffing").status_code == 403
