"""Messenger and Instagram messaging: hub verification, signed webhooks, the Send API and its windows."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from channels import messenger as messenger_mod
from helpdesk.extensions import db
from helpdesk.models import ContactIdentity, Delivery, Message, Ticket
from helpdesk.services.replies import post_reply
from tests import factories as f

from .conftest import agent_socket, body_of, count, post_hub, received

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)
PAGE = "104000000000001"


@pytest.fixture
def inbox(app, graph):
    return f.inbox(kind="messenger", settings={"graph_base": graph.url, "api_version": "v21.0", "page_id": PAGE},
                   secrets={"app_secret": "app-secret", "page_token": "page-token", "verify_token": "vt-123"})


@pytest.fixture
def ig_inbox(app, graph):
    return f.inbox(kind="messenger", settings={"graph_base": graph.url, "platform": "instagram"},
                   secrets={"app_secret": "app-secret", "page_token": "page-token", "verify_token": "vt-123"})


_n = iter(range(10**6))


def ms(dt: datetime | None = None) -> int:
    return int((dt or datetime.now(timezone.utc)).timestamp() * 1000)


def messaging(*events, obj="page"):
    return {"object": obj, "entry": [{"id": PAGE, "time": ms(), "messaging": list(events)}]}


def message(text="注文をキャンセルしたい", psid="7001", mid=None, at=None, **extra):
    msg = {"mid": mid or f"m_in{next(_n)}", "text": text, **extra}
    return {"sender": {"id": psid}, "recipient": {"id": PAGE}, "timestamp": ms(at), "message": msg}


def only_ticket() -> Ticket:
    return db.session.scalars(select(Ticket)).one()


# ---- verification ----------------------------------------------------------------------------------

def test_hub_challenge_is_echoed_for_the_right_token(client, inbox):
    resp = client.get(f"/webhooks/messenger/{inbox.key}",
                      query_string={"hub.mode": "subscribe", "hub.verify_token": "vt-123", "hub.challenge": "1158201444"})
    assert resp.status_code == 200 and resp.get_data(as_text=True) == "1158201444"


@pytest.mark.parametrize("args", [{"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
                                  {"hub.mode": "unsubscribe", "hub.verify_token": "vt-123", "hub.challenge": "1"},
                                  {}])
def test_hub_challenge_is_refused_otherwise(client, inbox, args):
    assert client.get(f"/webhooks/messenger/{inbox.key}", query_string=args).status_code == 403


@pytest.mark.parametrize("headers", [{}, {"X-Hub-Signature-256": "sha256=00"}, {"X-Hub-Signature-256": "abc"},
                                     {"X-Hub-Signature": "sha1=00"}])
def test_bad_signature_is_refused(client, inbox, headers, caplog):
    with caplog.at_level(logging.WARNING):
        resp = client.post(f"/webhooks/messenger/{inbox.key}", data=body_of(messaging(message())),
                           content_type="application/json", headers=headers)
    assert resp.status_code == 401 and "bad signature" in caplog.text


def test_signature_with_another_secret_is_refused(client, inbox):
    assert post_hub(client, "messenger", inbox, messaging(message()), secret="other").status_code == 401


@pytest.mark.parametrize("payload", [b"nope", {"object": "user", "entry": []}, {"object": "page"},
                                     {"object": "page", "entry": "x"}])
def test_malformed_payload_is_a_400(client, inbox, payload):
    assert post_hub(client, "messenger", inbox, payload).status_code == 400


# ---- inbound -------------------------------------------------------------------------------------------

def test_message_opens_ticket(client, inbox):
    resp = post_hub(client, "messenger", inbox, messaging(message("返金はいつですか", psid="7002", mid="m_abc")))
    assert resp.status_code == 200 and resp.json["created"] == 1
    msg = db.session.scalars(select(Message)).one()
    assert (msg.body, msg.external_id, msg.ticket.reply_to) == ("返金はいつですか", "m_abc", "7002")
    ident = db.session.scalars(select(ContactIdentity)).one()
    assert (ident.kind, ident.external_id) == ("messenger", "7002")


def test_same_mid_twice_is_stored_once(client, inbox):
    payload = messaging(message(mid="m_dup"))
    post_hub(client, "messenger", inbox, payload)
    assert post_hub(client, "messenger", inbox, payload).json["created"] == 0
    assert count(Message) == 1


def test_echo_is_ignored(client, inbox):
    echo = message(mid="m_echo", is_echo=True, app_id=1517776481860111)
    echo["sender"], echo["recipient"] = {"id": PAGE}, {"id": "7003"}
    post_hub(client, "messenger", inbox, messaging(echo))
    assert count(Message) == 0


def test_attachments_keep_url_and_type(client, inbox):
    ev = message(text=None, attachments=[{"type": "image", "payload": {"url": "https://scontent.example/1.jpg"}}])
    ev["message"].pop("text")
    post_hub(client, "messenger", inbox, messaging(ev))
    msg = db.session.scalars(select(Message)).one()
    assert msg.body == "[画像]"
    assert msg.attachments[0]["url"] == "https://scontent.example/1.jpg"
    assert msg.attachments[0]["content_type"] == "image/jpeg"


def test_postback_becomes_message(client, inbox):
    ev = {"sender": {"id": "7004"}, "recipient": {"id": PAGE}, "timestamp": ms(),
          "postback": {"mid": "m_pb1", "title": "注文状況を確認", "payload": "ORDER_STATUS"}}
    post_hub(client, "messenger", inbox, messaging(ev))
    msg = db.session.scalars(select(Message)).one()
    assert (msg.body, msg.meta["postback_payload"]) == ("注文状況を確認", "ORDER_STATUS")


def test_unknown_events_are_acknowledged(client, inbox):
    ev = {"sender": {"id": "7005"}, "recipient": {"id": PAGE}, "timestamp": ms(),
          "reaction": {"mid": "m_x", "action": "react", "reaction": "love"}}
    resp = post_hub(client, "messenger", inbox, messaging(ev, {"sender": {}}, "junk"))
    assert resp.status_code == 200 and count(Message) == 0


def test_instagram_messages_use_instagram_identities(client, ig_inbox):
    post_hub(client, "messenger", ig_inbox, messaging(message("サイズ交換できますか", psid="17841"), obj="instagram"))
    ident = db.session.scalars(select(ContactIdentity)).one()
    assert ident.kind == "instagram"
    assert db.session.scalars(select(Message)).one().meta["messenger_platform"] == "instagram"


# ---- outbound -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_round_trip_reply_then_delivered_and_read(app, client, inbox, graph):
    agent = f.agent(inboxes=[inbox])
    sio = agent_socket(app, client, agent)
    post_hub(client, "messenger", inbox, messaging(message("配送状況を教えてください", psid="7010")))
    assert [m["body"] for m in received(sio, "message.created")] == ["配送状況を教えてください"]
    msg = post_reply(only_ticket(), agent, "明日お届け予定です。")
    [call] = graph.sent("/me/messages")
    assert call.path == "/v21.0/me/messages"
    assert call.headers["authorization"] == "Bearer page-token" and call.query["appsecret_proof"]
    assert "access_token" not in call.query  # never in a URL, where it would be logged
    assert call.json == {"recipient": {"id": "7010"}, "message": {"text": "明日お届け予定です。"},
                         "messaging_type": "RESPONSE"}
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent and msg.external_id.startswith("m_out")
    delivery = {"sender": {"id": "7010"}, "recipient": {"id": PAGE}, "timestamp": ms(),
                "delivery": {"mids": [msg.external_id], "watermark": ms()}}
    post_hub(client, "messenger", inbox, messaging(delivery))
    db.session.refresh(msg)
    assert msg.delivery is Delivery.delivered
    read = {"sender": {"id": "7010"}, "recipient": {"id": PAGE}, "timestamp": ms(), "read": {"watermark": ms() + 1000}}
    post_hub(client, "messenger", inbox, messaging(read))
    db.session.refresh(msg)
    assert msg.delivery is Delivery.read
    assert [u["delivery"] for u in received(sio, "message.updated")] == ["sent", "delivered", "read"]
    assert count(Message) == 2


def test_after_24_hours_the_human_agent_tag_is_used(client, inbox, graph):
    post_hub(client, "messenger", inbox, messaging(message(psid="7011", at=datetime.now(timezone.utc) - timedelta(hours=30))))
    msg = post_reply(only_ticket(), f.agent(inboxes=[inbox]), "遅くなり申し訳ありません")
    [call] = graph.sent("/me/messages")
    assert call.json["messaging_type"] == "MESSAGE_TAG" and call.json["tag"] == "HUMAN_AGENT"
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent and msg.meta["messenger_window"] == "human_agent"


def test_after_7_days_the_reply_is_refused_with_a_clear_error(client, inbox, graph):
    post_hub(client, "messenger", inbox, messaging(message(psid="7012", at=datetime.now(timezone.utc) - timedelta(days=8))))
    msg = post_reply(only_ticket(), f.agent(inboxes=[inbox]), "まだお困りですか")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.failed
    assert "返信期限切れ" in msg.delivery_error and "window closed" in msg.delivery_error
    assert not graph.calls


def test_meta_window_error_is_shown_too(client, inbox, graph):
    post_hub(client, "messenger", inbox, messaging(message(psid="7013")))
    graph.fail("/me/messages", 400, {"error": {"message": "(#10) This message is sent outside of allowed window.",
                                               "type": "OAuthException", "code": 10, "error_subcode": 2018278}})
    msg = post_reply(only_ticket(), f.agent(inboxes=[inbox]), "返信")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.failed and "window closed" in msg.delivery_error


def test_rate_limit_is_retried_with_backoff(client, inbox, graph):
    post_hub(client, "messenger", inbox, messaging(message(psid="7014")))
    graph.fail("/me/messages", 400, {"error": {"message": "(#613) Calls to this api have exceeded the rate limit.",
                                               "code": 613}}, times=1)
    graph.fail("/me/messages", 429, {"error": {"message": "Too many", "code": 4}}, {"Retry-After": "0"}, times=1)
    msg = post_reply(only_ticket(), f.agent(inboxes=[inbox]), "再送されます")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent and msg.delivery_attempts == 3
    assert len(graph.sent("/me/messages")) == 3


@pytest.mark.config(SENTIMENT_ENABLED=False, SEND_MAX_ATTEMPTS=2)
def test_server_errors_end_in_failed_with_the_error(client, inbox, graph):
    post_hub(client, "messenger", inbox, messaging(message(psid="7015")))
    graph.fail("/me/messages", 500, {"error": {"message": "An unexpected error has occurred.", "code": 2}}, times=5)
    msg = post_reply(only_ticket(), f.agent(inboxes=[inbox]), "失敗します")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.failed and "unexpected error" in msg.delivery_error


def test_bad_page_token_is_permanent(app, client, graph):
    box = f.inbox(kind="messenger", settings={"graph_base": graph.url},
                  secrets={"app_secret": "app-secret", "page_token": "expired", "verify_token": "v"})
    post_hub(client, "messenger", box, messaging(message(psid="7016")))
    msg = post_reply(only_ticket(), f.agent(inboxes=[box]), "x")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.failed and msg.delivery_attempts == 1 and "invalid page token" in msg.delivery_error


def test_quick_replies_become_messenger_quick_replies(client, inbox, graph):
    post_hub(client, "messenger", inbox, messaging(message(psid="7017")))
    post_reply(only_ticket(), None, "満足度を教えてください", meta={"quick_replies": [{"label": "満足", "text": "5"}]})
    assert graph.sent("/me/messages")[0].json["message"]["quick_replies"] == [
        {"content_type": "text", "title": "満足", "payload": "5"}]


def test_too_long_reply_is_refused_before_sending(client, inbox, graph):
    post_hub(client, "messenger", inbox, messaging(message(psid="7018")))
    msg = post_reply(only_ticket(), f.agent(inboxes=[inbox]), "長" * 2001)
    db.session.refresh(msg)
    assert msg.delivery is Delivery.failed and "2000" in msg.delivery_error and not graph.calls


def test_instagram_reply_goes_to_the_same_send_api(client, ig_inbox, graph):
    post_hub(client, "messenger", ig_inbox, messaging(message(psid="17842"), obj="instagram"))
    post_reply(only_ticket(), f.agent(inboxes=[ig_inbox]), "ありがとうございます")
    [call] = graph.sent("/me/messages")
    assert call.json["recipient"] == {"id": "17842"} and call.json["messaging_type"] == "RESPONSE"


# ---- the composer's window notice -----------------------------------------------------------------

@pytest.mark.parametrize("age,state", [(timedelta(hours=21), "standard"), (timedelta(days=2), "human_agent"),
                                       (timedelta(days=8), "closed")])
def test_window_state(age, state):
    now = datetime(2026, 1, 10, tzinfo=timezone.utc)
    w = messenger_mod.window_state(now - age, now)
    assert w["state"] == state
    if state == "standard":
        assert w["hours_left"] == 3


def test_composer_shows_the_window(client, inbox):
    from tests.conftest import login

    agent = f.agent(inboxes=[inbox])
    post_hub(client, "messenger", inbox, messaging(message(psid="7019", at=datetime.now(timezone.utc) - timedelta(hours=21))))
    login(client, agent.email)
    html = client.get(f"/agent/tickets/{only_ticket().id}").get_data(as_text=True)
    assert 'data-state="standard"' in html and ("あと" in html or "left" in html)


def test_composer_has_no_window_on_other_channels(app, client):
    from tests.conftest import login
    from helpdesk.services.ingest import ingest

    box = f.inbox()
    agent = f.agent(inboxes=[box])
    ticket = ingest(box, f.inbound()).message.ticket
    login(client, agent.email)
    assert 'id="reply-window"' not in client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)


def test_typing_sends_typing_on(app, client, inbox, graph):
    agent = f.agent(inboxes=[inbox])
    post_hub(client, "messenger", inbox, messaging(message(psid="7020")))
    sio = agent_socket(app, client, agent)
    sio.emit("typing", {"ticket_id": only_ticket().id, "typing": True}, namespace="/agent")
    assert graph.sent("/me/messages")[0].json == {"recipient": {"id": "7020"}, "sender_action": "typing_on"}


def test_webhook_answers_fast(client, inbox):
    start = time.perf_counter()
    post_hub(client, "messenger", inbox, messaging(*[message(psid=f"80{i}") for i in range(20)]))
    assert time.perf_counter() - start < 5
    assert count(Ticket) == 20


# ---- QA round: standby channel, temporary send failures ------------------------------------------------

def test_standby_messages_are_kept_not_lost(client, inbox):
    """Under the handover protocol another app (a bot, Meta's Page inbox) may own the thread:
    the customer's messages then come in ``standby``, not ``messaging``."""
    echo = message("ボットの返事", psid=PAGE, mid="m_bot", is_echo=True, app_id=263902037430900)
    echo["recipient"] = {"id": "7030"}
    payload = {"object": "page", "entry": [{"id": PAGE, "time": ms(),
                                            "standby": [message("人と話したいです", psid="7030", mid="m_sb1"), echo]}]}
    resp = post_hub(client, "messenger", inbox, payload)
    assert resp.status_code == 200 and resp.json["created"] == 1
    msg = db.session.scalars(select(Message)).one()
    assert (msg.body, msg.external_id, msg.meta["messenger_standby"]) == ("人と話したいです", "m_sb1", True)
    assert post_hub(client, "messenger", inbox, payload).json["created"] == 0  # redelivery: once


def test_temporary_send_failure_code_1200_is_retried(client, inbox, graph):
    post_hub(client, "messenger", inbox, messaging(message(psid="7031")))
    graph.fail("/me/messages", 400, {"error": {"message": "(#1200) Temporary send message failure. Please try "
                                                          "again later", "type": "OAuthException", "code": 1200}})
    msg = post_reply(only_ticket(), f.agent(inboxes=[inbox]), "再送されます")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent and msg.delivery_attempts == 2
