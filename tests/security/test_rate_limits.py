"""Rate limits (Flask-Limiter; Redis-backed in production) on webhooks, the API channel and
the widget: a flood gets 429 and a log line, and legitimate traffic under the limit passes."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import func, select

from helpdesk.extensions import db, socketio
from helpdesk.models import Message
from tests import factories as f

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)


def test_production_webhook_limit_is_600_per_minute(app):
    """The default: one provider IP may post 10 webhooks a second before 429."""
    from helpdesk.views.webhooks import receive

    limits = [str(lim.limit) for lim in _route_limits(app, receive)]
    assert limits == ["600 per 1 minute"]


def test_production_api_limit_is_1200_per_minute(app):
    from helpdesk.views.api import post_message

    assert [str(lim.limit) for lim in _route_limits(app, post_message)] == ["1200 per 1 minute"]


def _route_limits(app, view):
    from helpdesk.extensions import limiter

    prefix = f"{view.__module__}.{view.__name__}"
    # Flask-Limiter keys decorated limits by the view's dotted name (plus its own suffix).
    names = [k for k in limiter.limit_manager._decorated_limits if k == prefix or k.startswith(prefix + ".")]
    assert names, f"no rate limit on {prefix}"
    with app.test_request_context():
        return [lim for n in names for lim in limiter.limit_manager.decorated_limits(n)]


@pytest.mark.config(SENTIMENT_ENABLED=False, RATELIMIT_ENABLED=True, WEBHOOK_RATE_LIMIT="3 per minute")
def test_webhook_flood_gets_429(app, client, caplog):
    inbox = f.inbox(kind="test")
    caplog.set_level(logging.INFO, logger="flask-limiter")
    codes = [client.post(f"/webhooks/test/{inbox.key}", data=b"{}", content_type="application/json").status_code
             for _ in range(4)]
    assert codes[:3] != [429] * 3 and codes[3] == 429
    assert "ratelimit 3 per 1 minute" in caplog.text


@pytest.mark.config(SENTIMENT_ENABLED=False, RATELIMIT_ENABLED=True, WEBHOOK_RATE_LIMIT="2 per minute")
def test_webhook_limit_counts_bad_signatures_too(app, client):
    """Forged posts must not get unlimited tries at the signature check."""
    inbox = f.inbox(kind="test")
    for _ in range(2):
        client.post(f"/webhooks/test/{inbox.key}", data=b"not json", content_type="application/json")
    assert client.post(f"/webhooks/test/{inbox.key}", data=b"{}").status_code == 429


@pytest.mark.config(SENTIMENT_ENABLED=False, RATELIMIT_ENABLED=True, API_RATE_LIMIT="2 per minute")
def test_api_channel_flood_gets_429_and_keeps_what_came_before(app, client):
    inbox = f.inbox(kind="api")
    token = f.api_token(inbox)
    hdr = {"Authorization": f"Bearer {token}"}
    codes = [client.post("/api/v1/messages", headers=hdr, json={"external_id": f"r{i}", "user_id": "u",
                                                                "text": "こんにちは"}).status_code for i in range(3)]
    assert codes == [201, 201, 429]


@pytest.mark.config(SENTIMENT_ENABLED=False, RATELIMIT_ENABLED=True, WIDGET_RATE_LIMIT="2 per minute")
def test_widget_visitor_flood_is_refused(app):
    pytest.importorskip("channels.chat")
    inbox = f.inbox(kind="chat")
    c = socketio.test_client(app, namespace="/widget", auth={"inbox": inbox.key})
    assert c.is_connected("/widget")
    answers = [c.emit("message", {"text": f"hi {i}", "email": "visitor@example.com", "client_id": f"c{i:030d}"}, namespace="/widget",
                      callback=True) for i in range(3)]
    c.disconnect(namespace="/widget")
    assert [a.get("ok") for a in answers[:2]] == [True, True]
    assert answers[2].get("ok") is False and answers[2].get("error") == "rate_limited"


@pytest.mark.config(SENTIMENT_ENABLED=False, RATELIMIT_ENABLED=True)
def test_rate_limited_webhook_answers_without_a_500(app, client, caplog):
    """The limit counts refused posts only (a forger's, a wrong address): a provider's own posts
    are never throttled, since LINE redelivers nothing unless the account turned redelivery on.
    Once it is reached, 429 is the cue to retry later, and nothing is half-stored."""
    app.config["WEBHOOK_RATE_LIMIT"] = "2 per minute"
    inbox = f.inbox(kind="test")

    def send(key: str, n: int):
        return client.post(f"/webhooks/test/{key}", data=json.dumps(
            {"external_id": f"w{n}", "user_id": "u", "text": "x"}).encode(), content_type="application/json")

    assert [send(inbox.key, n).status_code for n in range(5)] == [200] * 5
    assert [send("no-such-inbox", n).status_code for n in range(5, 7)] == [404, 404]
    with caplog.at_level(logging.INFO):
        again = send(inbox.key, 7)
    assert again.status_code == 429
    assert db.session.scalar(select(func.count(Message.id))) == 5
