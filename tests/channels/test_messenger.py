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
          "optin": {"ref": "landing-page", "user_ref": "u-1"}}
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


# ---- edits and reactions (message_edits, message_reactions) ---------------------------------------------

def edit(mid, text, num=1, psid="7040"):
    return {"sender": {"id": psid}, "recipient": {"id": PAGE}, "timestamp": ms(),
            "message_edit": {"mid": mid, "text": text, "num_edit": num}}


def reaction(mid, action="react", emoji="❤️", name="love", psid="7040"):
    r = {"mid": mid, "action": action, "reaction": name}
    if emoji is not None:
        r["emoji"] = emoji
    return {"sender": {"id": psid}, "recipient": {"id": PAGE}, "timestamp": ms(), "reaction": r}


def search_ids(term: str) -> list[int]:
    from nlp.text import search_document

    token = search_document(term)
    return [m.id for m in db.session.scalars(select(Message)) if token in (m.search_text or "")]


def test_edit_replaces_the_text_keeps_the_history_and_reaches_agents(app, client, inbox):
    agent = f.agent(inboxes=[inbox])
    post_hub(client, "messenger", inbox, messaging(message("注文番号は123です", psid="7040", mid="m_ed1")))
    sio = agent_socket(app, client, agent)
    resp = post_hub(client, "messenger", inbox, messaging(edit("m_ed1", "注文番号は124です")))
    assert resp.status_code == 200 and resp.json == {"ok": True, "received": 1, "created": 0}
    msg = db.session.scalars(select(Message)).one()
    sent_at = msg.sent_at
    assert msg.body == "注文番号は124です"
    assert [e["text"] for e in msg.meta["edits"]] == ["注文番号は123です"]
    assert msg.meta["edits"][0]["at"] == sent_at.isoformat() and msg.meta["num_edit"] == 1
    assert "124" in msg.search_text and "123" not in msg.search_text
    [update] = received(sio, "message.updated")
    assert (update["id"], update["body"], update["edited"]) == (msg.id, "注文番号は124です", True)
    assert [e["text"] for e in update["edits"]] == ["注文番号は123です"]
    # a second edit: both earlier texts, oldest first
    post_hub(client, "messenger", inbox, messaging(edit("m_ed1", "注文番号は125です", num=2)))
    db.session.refresh(msg)
    assert msg.body == "注文番号は125です"
    assert [e["text"] for e in msg.meta["edits"]] == ["注文番号は123です", "注文番号は124です"]
    assert count(Message) == 1


def test_redelivered_edit_adds_no_history(client, inbox):
    post_hub(client, "messenger", inbox, messaging(message("住所は東京です", psid="7041", mid="m_ed2")))
    payload = messaging(edit("m_ed2", "住所は大阪です", psid="7041"))
    post_hub(client, "messenger", inbox, payload)
    post_hub(client, "messenger", inbox, payload)  # Meta retries a webhook it thinks failed
    # the same text again under another count, and an older edit arriving late
    post_hub(client, "messenger", inbox, messaging(edit("m_ed2", "住所は大阪です", num=2, psid="7041")))
    post_hub(client, "messenger", inbox, messaging(edit("m_ed2", "住所は京都です", num=1, psid="7041")))
    msg = db.session.scalars(select(Message)).one()
    assert msg.body == "住所は大阪です"
    assert [e["text"] for e in msg.meta["edits"]] == ["住所は東京です"]


def test_history_is_bounded(client, inbox):
    from helpdesk.services.status import MAX_EDITS

    post_hub(client, "messenger", inbox, messaging(message("版0", psid="7042", mid="m_ed3")))
    for n in range(1, MAX_EDITS + 3):
        post_hub(client, "messenger", inbox, messaging(edit("m_ed3", f"版{n}", num=n, psid="7042")))
    msg = db.session.scalars(select(Message)).one()
    assert msg.body == f"版{MAX_EDITS + 2}"
    assert [e["text"] for e in msg.meta["edits"]] == [f"版{n}" for n in range(2, MAX_EDITS + 2)]


def test_edit_of_an_unknown_or_outbound_message_is_logged_and_ignored(client, inbox, graph, caplog):
    post_hub(client, "messenger", inbox, messaging(message("こんにちは", psid="7043", mid="m_ed4")))
    reply = post_reply(only_ticket(), f.agent(inboxes=[inbox]), "ご連絡ありがとうございます")
    db.session.refresh(reply)
    with caplog.at_level(logging.INFO, logger="helpdesk.services.status"):
        assert post_hub(client, "messenger", inbox, messaging(edit("m_never_seen", "別の文", psid="7043"))
                        ).status_code == 200
        post_hub(client, "messenger", inbox, messaging(edit(reply.external_id, "書き換え", psid="7043")))
    assert "m_never_seen" in caplog.text and "never stored" in caplog.text
    assert "not a customer's message" in caplog.text
    db.session.refresh(reply)
    assert reply.body == "ご連絡ありがとうございます" and "edits" not in (reply.meta or {})
    assert [m.body for m in db.session.scalars(select(Message).order_by(Message.id))] == [
        "こんにちは", "ご連絡ありがとうございます"]


@pytest.mark.parametrize("bad", [{"text": "新しい文"}, {"mid": "m_x"}, {"mid": "m_x", "text": ""},
                                 {"mid": "m_x", "text": ["a"]}, "junk"])
def test_partial_edit_is_skipped_with_a_warning(client, inbox, bad, caplog):
    post_hub(client, "messenger", inbox, messaging(message("元の文", psid="7044", mid="m_x")))
    ev = {"sender": {"id": "7044"}, "recipient": {"id": PAGE}, "timestamp": ms(), "message_edit": bad}
    with caplog.at_level(logging.WARNING):
        assert post_hub(client, "messenger", inbox, messaging(ev)).status_code == 200
    assert "message_edit" in caplog.text
    assert db.session.scalars(select(Message)).one().body == "元の文"


def test_instagram_edit_is_applied_too(client, ig_inbox):
    post_hub(client, "messenger", ig_inbox, messaging(message("Mサイズ", psid="17850", mid="aWdfZAG1"),
                                                      obj="instagram"))
    post_hub(client, "messenger", ig_inbox, messaging(edit("aWdfZAG1", "Lサイズ", psid="17850"), obj="instagram"))
    assert db.session.scalars(select(Message)).one().body == "Lサイズ"


@pytest.mark.config(SENTIMENT_ENABLED=True)
def test_edit_is_labelled_again_and_the_aggregates_follow(client, inbox):
    from helpdesk.models import Contact

    happy = "ありがとうございます。とても助かりました"
    angry = "何度も問い合わせているのに返事がない。いい加減にしてください"
    post_hub(client, "messenger", inbox, messaging(message(happy, psid="7045", mid="m_ed5")))
    msg = db.session.scalars(select(Message)).one()
    assert msg.sentiment_label == "positive" and only_ticket().sentiment_label == "positive"
    first_model = msg.sentiment_model
    post_hub(client, "messenger", inbox, messaging(edit("m_ed5", angry, psid="7045")))
    db.session.expire_all()
    msg = db.session.scalars(select(Message)).one()
    assert msg.body == angry and msg.sentiment_label == "negative" and msg.sentiment_model == first_model
    assert msg.keywords and msg.sentiment_at is not None
    ticket = only_ticket()
    assert ticket.sentiment_label == "negative" and ticket.sentiment_worst_score < 0
    assert db.session.scalars(select(Contact)).one().sentiment_latest_label == "negative"


@pytest.mark.config(SENTIMENT_ENABLED=True)
def test_an_angry_message_edited_into_another_raises_no_second_alert(client, inbox):
    """A calm message edited into an angry one is news, and alerts; an angry one edited into
    another angry one is not, even once its alert was acknowledged (it alerted again)."""
    from helpdesk.models import Alert
    from helpdesk.models._types import utcnow

    post_hub(client, "messenger", inbox, messaging(message("商品について質問があります", psid="7049", mid="m_ed9")))
    assert db.session.scalars(select(Alert)).all() == []
    post_hub(client, "messenger", inbox, messaging(edit("m_ed9", "ふざけるな！何度言えばわかるんだ！", psid="7049")))
    (first,) = db.session.scalars(select(Alert)).all()
    first.acknowledged_at = utcnow()
    db.session.commit()
    post_hub(client, "messenger", inbox, messaging(edit("m_ed9", "ふざけるな！！何度言えばわかるんだ！！最悪！",
                                                        psid="7049", num=2)))
    db.session.expire_all()
    msg = db.session.scalars(select(Message)).one()
    assert msg.body.endswith("最悪！") and msg.sentiment_label == "negative"  # labelled again
    assert [a.id for a in db.session.scalars(select(Alert))] == [first.id]


def test_edit_is_pending_for_the_labelling_job(client, inbox):
    """With labelling off here the message stays pending: a NULL label is what label_pending takes."""
    post_hub(client, "messenger", inbox, messaging(message("元の文", psid="7046", mid="m_ed6")))
    msg = db.session.scalars(select(Message)).one()
    msg.sentiment_label, msg.sentiment_score, msg.keywords = "positive", 0.9, ["元"]
    db.session.commit()
    post_hub(client, "messenger", inbox, messaging(edit("m_ed6", "新しい文", psid="7046")))
    db.session.refresh(msg)
    assert (msg.sentiment_label, msg.sentiment_score, msg.keywords) == (None, None, None)


def test_edited_html_is_shown_escaped_with_its_history(client, inbox):
    from tests.conftest import login

    agent = f.agent(inboxes=[inbox])
    post_hub(client, "messenger", inbox, messaging(message("<b>最初</b>の文", psid="7047", mid="m_ed7")))
    post_hub(client, "messenger", inbox, messaging(edit("m_ed7", "<script>alert(1)</script><img src=x>", psid="7047")))
    login(client, agent.email)
    html = client.get(f"/agent/tickets/{only_ticket().id}").get_data(as_text=True)
    assert "<script>alert(1)" not in html and "<img src=x>" not in html and "<b>最初" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x&gt;" in html
    assert "&lt;b&gt;最初&lt;/b&gt;の文" in html  # the earlier version, in the history
    assert 'class="badge edited"' in html and 'class="edit-history"' in html
    assert ">編集済み<" in html and "お客様のリアクション" not in html


def test_reaction_is_set_replaced_and_cleared(app, client, inbox, graph):
    agent = f.agent(inboxes=[inbox])
    post_hub(client, "messenger", inbox, messaging(message("届きません", psid="7048")))
    reply = post_reply(only_ticket(), agent, "本日発送いたしました")
    db.session.refresh(reply)
    sio = agent_socket(app, client, agent)
    post_hub(client, "messenger", inbox, messaging(reaction(reply.external_id, psid="7048")))
    db.session.refresh(reply)
    assert reply.meta["reaction"] == "❤️"
    post_hub(client, "messenger", inbox, messaging(reaction(reply.external_id, psid="7048")))  # redelivered
    # Meta named the reaction only: its emoji all the same
    post_hub(client, "messenger", inbox, messaging(reaction(reply.external_id, emoji=None, name="like", psid="7048")))
    db.session.refresh(reply)
    assert reply.meta["reaction"] == "👍"
    html = client.get(f"/agent/tickets/{reply.ticket_id}").get_data(as_text=True)
    assert '<span class="emoji">👍</span>' in html
    post_hub(client, "messenger", inbox, messaging(reaction(reply.external_id, action="unreact", emoji=None,
                                                            psid="7048")))
    db.session.refresh(reply)
    assert "reaction" not in reply.meta and reply.body == "本日発送いたしました"
    assert [(u["id"], u["reaction"]) for u in received(sio, "message.updated")] == [
        (reply.id, "❤️"), (reply.id, "👍"), (reply.id, None)]
    assert 'class="reaction"' not in client.get(f"/agent/tickets/{reply.ticket_id}").get_data(as_text=True)


def test_reaction_on_an_unknown_message_or_without_an_action_is_ignored(client, inbox, caplog):
    with caplog.at_level(logging.INFO):
        post_hub(client, "messenger", inbox, messaging(reaction("m_unknown", psid="7049")))
        post_hub(client, "messenger", inbox, messaging(reaction("m_unknown", action="poke", psid="7049")))
    assert "never stored" in caplog.text and "reaction without" in caplog.text
    assert count(Message) == 0


@pytest.mark.browser
@pytest.mark.config(JOBS="thread", SENTIMENT_ENABLED=False)
def test_open_ticket_page_shows_an_edit_live(app, tmp_path):
    from tests.live import chromium, live_server, open_desk_page

    box = f.inbox(kind="messenger", secrets={"app_secret": "app-secret", "page_token": "t", "verify_token": "v"})
    agent = f.agent(inboxes=[box], name="田中")
    hooks = app.test_client()
    post_hub(hooks, "messenger", box, messaging(message("注文番号は123です", psid="7050", mid="m_live")))
    msg = db.session.scalars(select(Message)).one()
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.goto(f"{server.url}/agent/tickets/{msg.ticket_id}")
        page.wait_for_selector("body[data-live=ready]")
        assert page.locator(f"#m{msg.id} .badge.edited").count() == 0
        edited = page.evaluate("() => JSON.parse(document.getElementById('desk-config').textContent).i18n.edited")
        assert edited == "編集済み"
        post_hub(hooks, "messenger", box, messaging(edit("m_live", "注文番号は124です<b>!</b>", psid="7050")))
        page.wait_for_function(f"() => document.querySelector('#m{msg.id} .body').textContent"
                               " === '注文番号は124です<b>!</b>'", timeout=10000)
        li = page.locator(f"#m{msg.id}")
        assert li.locator(".badge.edited").inner_text() == edited
        assert li.locator(".body b").count() == 0  # text, never markup
        li.locator(".edit-history summary").click()
        assert li.locator(".edit-history .edit-text").all_inner_texts() == ["注文番号は123です"]
        assert page.errors == []
