"""Who may see the dashboards, the JSON/CSV API, and acknowledging alerts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpdesk.extensions import db, socketio
from helpdesk.models import Alert, Event, Role
from tests import factories as f
from tests.conftest import csrf_token, login
from tests.supervisor import builders as b

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)

PAGES = ["/supervisor/", "/supervisor/insight"]
APIS = ["/supervisor/api/sentiment", "/supervisor/api/breakdown?by=agent", "/supervisor/api/operations",
        "/supervisor/api/surveys", "/supervisor/api/keywords", "/supervisor/api/customers?segment=loyal",
        "/supervisor/api/agents", "/supervisor/api/alerts", "/supervisor/api/sentiment?format=csv"]


def _alert() -> Alert:
    inbox = f.inbox()
    t = b.ticket(inbox, created=b.utc(2026, 3, 2, 0), subject="怒りの件")
    m = b.message(t, at=b.utc(2026, 3, 2, 1), label="negative", score=-0.9, body="ふざけるな")
    m.sentiment_anger = 0.9
    db.session.commit()
    with db.session.no_autoflush:
        [alert] = b.escalate(t, [m])
    db.session.commit()
    return alert


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_pages_redirect_to_login(app, client, path):
    r = client.get(path)
    assert r.status_code == 302 and "/login" in r.headers["Location"]


@pytest.mark.parametrize("path", APIS)
def test_anonymous_api_gets_401(app, client, path):
    r = client.get(path)
    assert r.status_code == 401 and r.get_json() == {"error": "login required"}


def test_plain_agent_gets_403_on_every_page_and_api(app, client):
    f.agent(email="plain@example.com")
    login(client, "plain@example.com")
    assert {path: client.get(path).status_code for path in PAGES + APIS} == {path: 403 for path in PAGES + APIS}


def test_plain_agent_cannot_acknowledge(app, client):
    alert = _alert()
    f.agent(email="plain@example.com")
    login(client, "plain@example.com")
    r = client.post(f"/supervisor/alerts/{alert.id}/ack", headers={"X-CSRFToken": csrf_token(client, "/agent/")})
    assert r.status_code == 403
    assert db.session.get(Alert, alert.id).acknowledged_at is None


@pytest.mark.parametrize("role", [Role.supervisor, Role.admin])
def test_supervisor_and_admin_see_the_dashboard(app, client, role):
    f.agent(email="boss@example.com", role=role)
    login(client, "boss@example.com")
    page = client.get("/supervisor/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-report="sentiment"' in html and "chart.js/dist/chart.umd" in html


def test_bad_filters_are_a_400_with_a_message(app, sv_client):
    r = sv_client.get("/supervisor/api/sentiment?from=2026-03-09&to=2026-03-01")
    assert r.status_code == 400 and r.get_json()["error"]
    assert sv_client.get("/supervisor/api/nope").status_code == 404
    assert sv_client.get("/supervisor/api/breakdown?by=planet").status_code == 400
    assert sv_client.get("/supervisor/?from=garbage").status_code == 200  # the page falls back to defaults


def test_csv_export_is_utf8_with_bom_for_excel(app, sv_client):
    inbox = f.inbox()
    t = b.ticket(inbox, created=b.jst(2026, 3, 2, 9))
    b.message(t, at=b.jst(2026, 3, 2, 10), label="negative", score=-0.5)
    db.session.commit()
    r = sv_client.get("/supervisor/api/sentiment?from=2026-03-02&to=2026-03-02&format=csv")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="sentiment-2026-03-02-2026-03-02.csv"' in r.headers["Content-Disposition"]
    raw = r.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = raw.decode("utf-8-sig").split("\r\n")
    assert lines[0].startswith("期間") or lines[0].startswith("Period")
    assert lines[1] == "2026-03-02,1,0,0,1,1.0,-0.5"


def test_csv_cells_cannot_become_formulas(app, sv_client):
    inbox = f.inbox()
    who = b.contact("=HYPERLINK(\"http://x\")", sentiment_latest_label="negative", sentiment_latest_score=-0.9)
    b.ticket(inbox, who=who, created=b.jst(2026, 3, 2, 9), label="negative")
    db.session.commit()
    r = sv_client.get("/supervisor/api/customers?from=2026-03-01&to=2026-03-07&format=csv")
    body = r.get_data().decode("utf-8-sig")
    assert "'=HYPERLINK" in body


def test_acknowledge_sets_who_and_when_and_broadcasts(app, client, supervisor):
    alert = _alert()
    login(client, supervisor.email)
    sio = socketio.test_client(app, namespace="/agent", flask_test_client=client)
    assert sio.is_connected("/agent")
    sio.get_received("/agent")
    token = csrf_token(client, "/supervisor/")
    r = client.post(f"/supervisor/alerts/{alert.id}/ack", headers={"X-CSRFToken": token})
    assert r.status_code == 200 and r.get_json()["changed"] is True, r.get_json()
    db.session.expire_all()
    row = db.session.get(Alert, alert.id)
    assert row.acknowledged_by_id == supervisor.id and row.acknowledged_at is not None
    got = [e for e in sio.get_received("/agent") if e["name"] == "alert.acknowledged"]
    assert got and got[0]["args"][0]["acknowledged_by"]["name"] == supervisor.name
    ev = db.session.scalar(select(Event).where(Event.name == "alert.acknowledged"))
    assert ev.audience == "supervisors"
    again = client.post(f"/supervisor/alerts/{alert.id}/ack", headers={"X-CSRFToken": token})
    assert again.get_json()["changed"] is False
    sio.disconnect("/agent")


def test_acknowledge_without_csrf_is_refused(app, sv_client):
    alert = _alert()
    assert sv_client.post(f"/supervisor/alerts/{alert.id}/ack").status_code == 400
    assert db.session.get(Alert, alert.id).acknowledged_at is None


def test_alert_feed_lists_who_is_on_it(app, sv_client):
    alert = _alert()
    agent = f.agent(name="担当 次郎")
    alert_ticket = alert.ticket_id
    from helpdesk.models import Ticket

    db.session.get(Ticket, alert_ticket).assignee_id = agent.id
    db.session.commit()
    data = sv_client.get("/supervisor/api/alerts").get_json()
    [row] = data["alerts"]
    assert (row["ticket_id"], row["rule"], row["assignee"]["name"]) == (alert_ticket, "angry", "担当 次郎")
    assert row["excerpt"] == "ふざけるな"
