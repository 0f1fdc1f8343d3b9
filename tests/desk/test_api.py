"""The API channel: token auth, validation, dedupe, and the missed-events feed."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import ApiToken, ContactIdentity, Message
from tests import factories as f
from tests.conftest import login


@pytest.fixture
def api(app, client):
    inbox = f.inbox(kind="api")
    token = f.api_token(inbox)
    return inbox, {"Authorization": f"Bearer {token}"}


def post(client, headers, **body):
    return client.post("/api/v1/messages", json=body, headers=headers)


def test_post_message_creates_ticket(app, client, api):
    inbox, headers = api
    resp = post(client, headers, external_id="e1", user_id="crm-7", text="請求書の再発行をお願いします", name="高橋")
    assert resp.status_code == 201
    assert resp.json["message"]["body"] == "請求書の再発行をお願いします"
    assert resp.json["duplicate"] is False


def test_same_message_twice_is_one_message(app, client, api):
    inbox, headers = api
    first = post(client, headers, external_id="e1", user_id="u", text="a")
    second = post(client, headers, external_id="e1", user_id="u", text="a")
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json["duplicate"] is True
    assert db.session.scalar(select(func.count()).select_from(Message)) == 1


def test_token_stored_hashed(app, api):
    inbox, headers = api
    secret = headers["Authorization"][7:]
    row = db.session.scalar(select(ApiToken))
    assert secret not in (row.token_hash, row.prefix) and row.token_hash == ApiToken.hash(secret)


def test_token_use_is_recorded_coarsely(app, client, api):
    """The admin page shows when a token was last used; it is written at most every five
    minutes, not once per message."""
    from datetime import timedelta

    inbox, headers = api
    assert post(client, headers, external_id="u1", user_id="u", text="a").status_code == 201
    db.session.expire_all()
    first = db.session.scalar(select(ApiToken.last_used_at))
    assert first is not None
    assert post(client, headers, external_id="u2", user_id="u", text="b").status_code == 201
    db.session.expire_all()
    assert db.session.scalar(select(ApiToken.last_used_at)) == first
    db.session.execute(ApiToken.__table__.update().values(last_used_at=first - timedelta(minutes=6)))
    db.session.commit()
    assert post(client, headers, external_id="u3", user_id="u", text="c").status_code == 201
    db.session.expire_all()
    assert db.session.scalar(select(ApiToken.last_used_at)) > first


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eA=="},
                                     {"Authorization": "Bearer "}])
def test_bad_token_is_401(app, client, api, headers, caplog):
    resp = post(client, headers, external_id="e1", user_id="u", text="a")
    assert resp.status_code == 401
    assert "API request refused" in caplog.text


@pytest.mark.parametrize("body,needle", [
    ({"user_id": "u", "text": "a"}, "external_id"),
    ({"external_id": "e", "user_id": "u", "text": 5}, "text"),
    ({"external_id": "e", "user_id": "u", "text": "x" * 20_001}, "longer"),
    ({"external_id": "e", "user_id": "u", "text": "a", "sent_at": "yesterday"}, "ISO"),
    ({"external_id": "e", "user_id": "u", "text": "a", "sent_at": "2026-01-01T00:00:00"}, "timezone"),
    ({"external_id": "e", "user_id": "u", "text": " \n\u3000 "}, "text"),  # blank, full-width space included
    ({"external_id": "e", "user_id": "u", "text": "a", "email": "not an email\r\nBcc: a@example.com"}, "email"),
])
def test_invalid_body_is_400_with_reason(app, client, api, body, needle):
    inbox, headers = api
    resp = client.post("/api/v1/messages", json=body, headers=headers)
    assert resp.status_code == 400 and needle in resp.json["error"]


@pytest.mark.parametrize("data", ["not json", '{"a":' * 100_000 + "1" + "}" * 100_000], ids=["text", "nested"])
def test_non_json_is_400_with_a_log_line(app, client, api, data, caplog):
    inbox, headers = api
    resp = client.post("/api/v1/messages", data=data, headers={**headers, "Content-Type": "application/json"})
    assert resp.status_code == 400 and "JSON" in resp.json["error"]
    assert f"API message refused for inbox {inbox.id}: the body is not JSON" in caplog.text


def test_the_bearer_scheme_is_case_insensitive(app, client, api):
    inbox, headers = api
    token = headers["Authorization"].split(" ", 1)[1]
    resp = post(client, {"Authorization": f"bearer {token}"}, external_id="e1", user_id="u", text="a")
    assert resp.status_code == 201


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)  # PostgreSQL refuses NUL
def test_text_no_database_can_store_is_kept_with_a_replacement_character(app, client, api, caplog):
    """Half an emoji (a lone surrogate, from a client slicing UTF-16) or a NUL in a message:
    the message is stored, those characters replaced, where a 500 would have the provider
    retry it for ever."""
    inbox, headers = api
    resp = client.post("/api/v1/messages", headers={**headers, "Content-Type": "application/json"},
                       data='{"external_id": "e1", "user_id": "u", "name": "\\ud83d\\u0000", '
                            '"text": "\\ud83d \\u5c4a\\u304d\\u307e\\u305b\\u3093\\u0000"}')
    assert resp.status_code == 201, resp.json
    msg = db.session.scalar(select(Message))
    assert msg.body == "\ufffd 届きません\ufffd"
    assert db.session.scalar(select(ContactIdentity.display_name)) == "\ufffd\ufffd"
    assert "replaced characters no database can store" in caplog.text


def test_a_sender_clock_in_the_future_is_taken_as_now(app, client, api):
    inbox, headers = api
    resp = post(client, headers, external_id="e1", user_id="u", text="a", sent_at="2099-01-01T00:00:00+09:00")
    assert resp.status_code == 201
    assert datetime.fromisoformat(resp.json["message"]["sent_at"]) <= datetime.now(timezone.utc)


def test_missed_events_need_login(app, client):
    assert client.get("/api/v1/events?since=0").status_code == 401


def test_missed_events_return_exactly_the_gap_and_respect_inboxes(app, client, api):
    inbox, headers = api
    hidden = f.inbox(kind="api")
    hidden_headers = {"Authorization": f"Bearer {f.api_token(hidden)}"}
    agent = f.agent(inboxes=[inbox])
    login(client, agent.email)
    post(client, headers, external_id="a", user_id="u", text="一")
    since = client.get("/api/v1/events/latest").json["last_event_id"]
    post(client, headers, external_id="b", user_id="u", text="二")
    post(client, hidden_headers, external_id="x", user_id="v", text="見えない")
    post(client, headers, external_id="c", user_id="u", text="三")
    data = client.get(f"/api/v1/events?since={since}").json
    bodies = [e["payload"]["body"] for e in data["events"] if e["name"] == "message.created"]
    assert bodies == ["二", "三"]
    assert all(e["payload"].get("inbox_id") in (inbox.id, None) for e in data["events"])
    assert all(e["event_id"] > since for e in data["events"])
    assert client.get("/api/v1/events?since=abc").status_code == 400
