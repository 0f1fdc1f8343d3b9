"""Secrets at rest and in logs: API tokens hashed, inbox secrets masked on /admin, and no
inbox secret or token value in any log record of a full webhook -> reply flow at DEBUG."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import ApiToken, Message, Role, Ticket
from helpdesk.services.replies import post_reply
from tests import factories as f
from tests.conftest import csrf_token, login

# Sentiment would load the transformer model inline; these tests are about access.
pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)

LINE_SECRET = "LINEsecret-7f3a9c1e5b2d4f60"
LINE_TOKEN = "LINEtoken-Qx8vN2pLm4Kz7Rt1Yw9"
META_APP_SECRET = "METAappsecret-c0ffee1234abcd"
META_PAGE_TOKEN = "METApagetoken-EAAGm0PX4ZCpsBA"
PAGE = "104000000000001"


def _all_log_text(records) -> str:
    """Every way a record can reach a log file: the formatted message, raw args, exception text."""
    parts = []
    for r in records:
        parts.append(r.getMessage())
        parts.append(repr(r.args))
        if r.exc_info and r.exc_info[1] is not None:
            parts.append(repr(r.exc_info[1]))
        if r.exc_text:
            parts.append(r.exc_text)
    return "\n".join(parts)


# ---- API tokens -------------------------------------------------------------------------------------

def test_api_token_is_stored_only_as_a_hash(app):
    inbox = f.inbox(kind="api")
    secret = f.api_token(inbox)
    row = db.session.scalars(select(ApiToken)).one()
    stored = json.dumps({c.name: str(getattr(row, c.name)) for c in ApiToken.__table__.columns})
    assert secret not in stored and secret[10:] not in stored
    assert row.token_hash == ApiToken.hash(secret) and len(row.prefix) <= 12


def test_admin_sees_a_new_token_once_and_only_its_prefix_after(app, client):
    admin = f.agent(role=Role.admin)
    inbox = f.inbox(kind="api")
    login(client, admin.email)
    token = csrf_token(client, "/admin/")
    first = client.post("/admin/tokens", data={"name": "crm", "inbox_id": str(inbox.id), "csrf_token": token},
                        follow_redirects=True).get_data(as_text=True)
    secret = re.search(r"hd_[A-Za-z0-9_\-]{20,}", first).group(0)
    again = client.get("/admin/").get_data(as_text=True)
    assert secret not in again and secret[:10] in again


def test_revoked_token_is_refused(app, client):
    inbox = f.inbox(kind="api")
    secret = f.api_token(inbox)
    db.session.scalars(select(ApiToken)).one().revoked = True
    db.session.commit()
    resp = client.post("/api/v1/messages", json={"external_id": "1", "user_id": "u", "text": "x"},
                       headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 401


# ---- inbox secrets on /admin ---------------------------------------------------------------------------

def test_admin_page_shows_inbox_secrets_masked(app, client):
    admin = f.agent(role=Role.admin)
    f.inbox(kind="line", secrets={"channel_secret": LINE_SECRET, "channel_token": LINE_TOKEN})
    login(client, admin.email)
    html = client.get("/admin/").get_data(as_text=True)
    for value in (LINE_SECRET, LINE_TOKEN):
        assert value not in html and value[:-4] not in html
        assert value[-4:] in html  # the admin can still tell which credential is set


def test_agent_views_and_api_never_carry_inbox_secrets(app, client):
    inbox = f.inbox(kind="test", secrets={"channel_secret": LINE_SECRET, "channel_token": LINE_TOKEN})
    agent = f.agent(inboxes=[inbox])
    from helpdesk.services.ingest import ingest

    ticket_id = ingest(inbox, f.inbound()).message.ticket_id
    login(client, agent.email)
    pages = [client.get(p).get_data(as_text=True) for p in
             ("/agent/", f"/agent/tickets/{ticket_id}", f"/api/v1/tickets/{ticket_id}", "/api/v1/events")]
    assert not any(v in page for page in pages for v in (LINE_SECRET, LINE_TOKEN))


# ---- logs ---------------------------------------------------------------------------------------------

@pytest.fixture
def line_standin():
    from tests.channels.standins import LineStandIn

    with LineStandIn(token=LINE_TOKEN) as s:
        yield s


@pytest.fixture
def graph_standin():
    from tests.channels.standins import GraphStandIn

    with GraphStandIn(page_token=META_PAGE_TOKEN, app_secret=META_APP_SECRET) as s:
        yield s


@pytest.mark.config(SENTIMENT_ENABLED=False)
def test_line_webhook_and_reply_log_no_secret(app, client, line_standin, caplog):
    line = pytest.importorskip("channels.line")
    inbox = f.inbox(kind="line", settings={"api_base": line_standin.url, "api_data_base": line_standin.url},
                    secrets={"channel_secret": LINE_SECRET, "channel_token": LINE_TOKEN})
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # line-bot-sdk quietens it; an operator may not
    ev = {"type": "message", "mode": "active", "timestamp": int(time.time() * 1000),
          "source": {"type": "user", "userId": "U4af4980629"}, "replyToken": "rt-sec-1",
          "webhookEventId": "01HSECEVENT000000000000001", "deliveryContext": {"isRedelivery": False},
          "message": {"id": "490000000000000001", "type": "text", "text": "届きません", "quoteToken": "q"}}
    raw = json.dumps({"destination": "U" + "x" * 32, "events": [ev]}).encode()
    assert client.post(f"/webhooks/line/{inbox.key}", data=raw, content_type="application/json",
                       headers={"X-Line-Signature": line.signature(LINE_SECRET, raw)}).status_code == 200
    bad = client.post(f"/webhooks/line/{inbox.key}", data=raw, content_type="application/json",
                      headers={"X-Line-Signature": "forged"})
    assert bad.status_code == 401
    ticket = db.session.scalars(select(Ticket)).one()
    msg = post_reply(ticket, None, "確認いたします")
    db.session.refresh(msg)
    assert msg.delivery.value == "sent", msg.delivery_error
    text = _all_log_text(caplog.records)
    assert text, "nothing was logged: the test would prove nothing"
    for value in (LINE_SECRET, LINE_TOKEN):
        assert value not in text


@pytest.mark.config(SENTIMENT_ENABLED=False)
def test_messenger_webhook_and_reply_log_no_secret(app, client, graph_standin, caplog):
    messenger = pytest.importorskip("channels.messenger")
    inbox = f.inbox(kind="messenger", settings={"graph_base": graph_standin.url, "api_version": "v21.0",
                                                "page_id": PAGE},
                    secrets={"app_secret": META_APP_SECRET, "page_token": META_PAGE_TOKEN, "verify_token": "vt"})
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # line-bot-sdk quietens it; an operator may not
    now = int(time.time() * 1000)
    raw = json.dumps({"object": "page", "entry": [{"id": PAGE, "time": now, "messaging": [
        {"sender": {"id": "7001"}, "recipient": {"id": PAGE}, "timestamp": now,
         "message": {"mid": "m_sec_1", "text": "キャンセルしたい"}}]}]}).encode()
    assert client.post(f"/webhooks/messenger/{inbox.key}", data=raw, content_type="application/json",
                       headers={"X-Hub-Signature-256": messenger.hub_signature(META_APP_SECRET, raw)}).status_code == 200
    ticket = db.session.scalars(select(Ticket)).one()
    msg = post_reply(ticket, None, "承知しました")
    db.session.refresh(msg)
    assert msg.delivery.value == "sent", msg.delivery_error
    text = _all_log_text(caplog.records)
    for value in (META_APP_SECRET, META_PAGE_TOKEN):
        assert value not in text


def test_api_channel_and_login_log_no_token_or_password(app, client, caplog):
    inbox = f.inbox(kind="api")
    secret = f.api_token(inbox)
    agent = f.agent()
    caplog.set_level(logging.DEBUG)
    client.post("/api/v1/messages", json={"external_id": "s1", "user_id": "u", "text": "hi"},
                headers={"Authorization": f"Bearer {secret}"})
    client.post("/api/v1/messages", json={"external_id": "s2", "user_id": "u", "text": "hi"},
                headers={"Authorization": f"Bearer {secret}x"})  # refused: logged, without the value
    login(client, agent.email, "my wrong passphrase")
    login(client, agent.email)
    text = _all_log_text(caplog.records)
    assert "API request refused" in text
    assert secret not in text and "my wrong passphrase" not in text and f.PASSWORD not in text
    assert db.session.scalar(select(Message.id).where(Message.external_id == "s1"))
