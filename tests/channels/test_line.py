"""LINE: signed webhooks in, reply/push out through line-bot-sdk against a LINE stand-in."""

from __future__ import annotations

import json
import logging
import time
import uuid

import pytest
from sqlalchemy import select

from channels import line as line_mod
from helpdesk.extensions import db
from helpdesk.models import Contact, ContactIdentity, Delivery, Message, Ticket
from helpdesk.services.replies import post_reply
from tests import factories as f

from .conftest import agent_socket, body_of, count, received

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)
SECRET = "line-channel-secret"


@pytest.fixture
def inbox(app, line_api, line_data):
    return f.inbox(kind="line", settings={"api_base": line_api.url, "api_data_base": line_data.url},
                   secrets={"channel_secret": SECRET, "channel_token": "line-token"})


def post(client, inbox, payload, secret=SECRET, signature=None):
    raw = body_of(payload)
    headers = {} if signature is False else {"X-Line-Signature": signature or line_mod.signature(secret, raw)}
    return client.post(f"/webhooks/line/{inbox.key}", data=raw, content_type="application/json", headers=headers)


_n = iter(range(10**6))


def event(kind="message", user="U4af4980629", source=None, redelivery=False, ts=None, **fields):
    n = next(_n)
    ev = {"type": kind, "mode": "active", "timestamp": ts if ts is not None else int(time.time() * 1000),
          "source": source or {"type": "user", "userId": user},
          "webhookEventId": f"01HEVENT{n:018d}", "deliveryContext": {"isRedelivery": redelivery}}
    if kind in ("message", "postback", "follow"):
        ev["replyToken"] = f"rt-{n}"
    ev.update(fields)
    return ev


def text_event(text="注文した商品がまだ届きません", mid=None, **kw):
    return event(message={"id": mid or f"4{next(_n):017d}", "type": "text", "text": text,
                          "quoteToken": "q-Sg"}, **kw)


def webhook(*events):
    return {"destination": "Uxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "events": list(events)}


def only_ticket() -> Ticket:
    return db.session.scalars(select(Ticket)).one()


# ---- signatures and bad input ------------------------------------------------------------------

def test_valid_signature_is_accepted(client, inbox):
    assert post(client, inbox, webhook(text_event())).status_code == 200


@pytest.mark.parametrize("signature", ["bad", False, line_mod.signature("other-secret", b"{}")])
def test_bad_or_missing_signature_is_refused_and_logged(client, inbox, caplog, signature):
    with caplog.at_level(logging.WARNING):
        resp = post(client, inbox, webhook(text_event()), signature=signature)
    assert resp.status_code == 401
    assert "bad signature" in caplog.text
    assert count(Message) == 0


def test_signature_over_a_different_body_is_refused(client, inbox):
    raw = body_of(webhook(text_event()))
    sig = line_mod.signature(SECRET, raw + b" ")
    resp = client.post(f"/webhooks/line/{inbox.key}", data=raw, content_type="application/json",
                       headers={"X-Line-Signature": sig})
    assert resp.status_code == 401


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b'{"events": "x"}', "\ufffd".encode() + b"\xff"])
def test_malformed_body_is_a_400(client, inbox, raw):
    assert post(client, inbox, raw).status_code == 400
    assert count(Message) == 0


def test_one_megabyte_body_is_refused(client, inbox):
    raw = b'{"events": [], "pad": "' + b"x" * (1024 * 1024) + b'"}'
    assert post(client, inbox, raw).status_code == 413


def test_empty_events_list_is_the_verify_ping(client, inbox):
    assert post(client, inbox, webhook()).status_code == 200


def test_unknown_event_type_is_acknowledged(client, inbox, caplog):
    with caplog.at_level(logging.INFO):
        resp = post(client, inbox, webhook(event("memberJoined", joined={"members": []}),
                                           event("beacon", beacon={"hwid": "d41d8cd98f", "type": "enter"})))
    assert resp.status_code == 200
    assert count(Message) == 0
    assert "memberJoined" in caplog.text


def test_events_with_missing_fields_are_skipped_not_500(client, inbox):
    resp = post(client, inbox, webhook({"type": "message"}, {"type": "message", "message": {"type": "text"}},
                                       "not-an-object", {"type": "unsend"}, {"type": "follow"},
                                       text_event("残りは届く")))
    assert resp.status_code == 200
    assert [m.body for m in db.session.scalars(select(Message))] == ["残りは届く"]


# ---- inbound events --------------------------------------------------------------------------------

def test_text_message_opens_ticket_with_reply_token_in_meta(client, inbox):
    ev = text_event("返品したいです", user="U111")
    assert post(client, inbox, webhook(ev)).json["created"] == 1
    msg = db.session.scalars(select(Message)).one()
    assert msg.external_id == ev["message"]["id"]
    assert msg.meta["line_reply_token"] == ev["replyToken"]
    assert msg.meta["line_timestamp"] == ev["timestamp"]
    assert msg.meta["line_event_id"] == ev["webhookEventId"]
    assert msg.ticket.reply_to == "U111"
    ident = db.session.scalars(select(ContactIdentity)).one()
    assert (ident.kind, ident.external_id) == ("line", "U111")


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_half_an_emoji_keeps_its_message_and_the_rest_of_the_batch(client, inbox):
    """A lone surrogate (half an emoji, as JSON's \\ud83d) once made the whole webhook a 500:
    LINE redelivered it for ever and the valid event after it was never stored."""
    raw = json.dumps(webhook(text_event("絵文字が半分 \ud83d"), text_event("二通目です"))).encode()
    assert "\\ud83d" in raw.decode()
    resp = client.post(f"/webhooks/line/{inbox.key}", data=raw, content_type="application/json",
                       headers={"X-Line-Signature": line_mod.signature(SECRET, raw)})
    assert resp.status_code == 200
    assert db.session.scalars(select(Message.body).order_by(Message.id)).all() == ["絵文字が半分 \ufffd", "二通目です"]


def test_redelivered_event_is_stored_once(client, inbox):
    ev = text_event("一回だけ")
    assert post(client, inbox, webhook(ev)).json["created"] == 1
    again = dict(ev, deliveryContext={"isRedelivery": True})
    resp = post(client, inbox, webhook(again))
    assert resp.status_code == 200 and resp.json["created"] == 0
    assert count(Message) == 1


def test_replayed_identical_request_is_stored_once(client, inbox):
    payload = webhook(text_event("同じリクエスト"))
    post(client, inbox, payload)
    post(client, inbox, payload)
    assert count(Message) == 1


def test_sticker_shown_as_sticker_and_keywords_feed_sentiment(client, inbox):
    from helpdesk.services.sentiment import _text_for

    ev = event(message={"id": "325708", "type": "sticker", "packageId": "446", "stickerId": "1988",
                        "stickerResourceType": "ANIMATION", "keywords": ["angry", "怒り", "ぷんぷん"]})
    post(client, inbox, webhook(ev))
    msg = db.session.scalars(select(Message)).one()
    assert msg.body == "[スタンプ]"
    assert msg.meta["line_sticker"] == {"packageId": "446", "stickerId": "1988", "resourceType": "ANIMATION",
                                        "keywords": ["angry", "怒り", "ぷんぷん"]}
    assert "怒り" in _text_for(msg)


def test_image_content_is_fetched_from_the_data_host_and_stored(client, inbox, line_data, line_api):
    line_data.contents["325709"] = b"\xff\xd8\xff\xe0JPEGDATA"
    ev = event(message={"id": "325709", "type": "image", "contentProvider": {"type": "line"}})
    post(client, inbox, webhook(ev))
    msg = db.session.scalars(select(Message)).one()
    assert msg.body == "[画像]"
    [att] = msg.attachments
    assert att["stored"] and att["size"] == len(b"\xff\xd8\xff\xe0JPEGDATA")
    assert [c.path for c in line_data.sent("/content")] == ["/v2/bot/message/325709/content"]
    assert line_data.calls[0].headers["authorization"] == "Bearer line-token"
    assert not line_api.sent("/content")


def test_content_over_the_size_limit_is_not_stored(client, app, line_api, line_data, caplog):
    box = f.inbox(kind="line", settings={"api_base": line_api.url, "api_data_base": line_data.url,
                                         "max_content_bytes": 10},
                  secrets={"channel_secret": SECRET, "channel_token": "line-token"})
    line_data.contents["999"] = b"x" * 11
    with caplog.at_level(logging.WARNING):
        post(client, box, webhook(event(message={"id": "999", "type": "video", "duration": 6000,
                                                 "contentProvider": {"type": "line"}})))
    att = db.session.scalars(select(Message)).one().attachments[0]
    assert not att.get("stored")
    assert "over the 10 limit" in caplog.text


def test_file_message_keeps_its_name(client, inbox, line_data):
    line_data.contents["777"] = b"%PDF-1.4"
    post(client, inbox, webhook(event(message={"id": "777", "type": "file", "fileName": "領収書.pdf",
                                               "fileSize": 8})))
    msg = db.session.scalars(select(Message)).one()
    assert msg.body == "[ファイル] 領収書.pdf"
    assert msg.attachments[0]["filename"] == "領収書.pdf"
    assert msg.attachments[0]["content_type"] == "application/pdf"


def test_external_media_keeps_its_url(client, inbox, line_data):
    ev = event(message={"id": "778", "type": "image", "contentProvider": {
        "type": "external", "originalContentUrl": "https://example.jp/a.jpg"}})
    post(client, inbox, webhook(ev))
    assert db.session.scalars(select(Message)).one().attachments[0]["url"] == "https://example.jp/a.jpg"
    assert not line_data.calls


def test_location_becomes_text(client, inbox):
    ev = event(message={"id": "779", "type": "location", "title": "渋谷店", "address": "東京都渋谷区",
                        "latitude": 35.658, "longitude": 139.7016})
    post(client, inbox, webhook(ev))
    body = db.session.scalars(select(Message)).one().body
    assert "渋谷店" in body and "東京都渋谷区" in body and "35.658, 139.7016" in body


def test_follow_and_unfollow_update_the_contact(client, inbox):
    post(client, inbox, webhook(text_event(user="U222")))
    post(client, inbox, webhook(event("unfollow", user="U222")))
    contact = db.session.scalars(select(Contact)).one()
    assert contact.attributes["line_following"] is False
    post(client, inbox, webhook(event("follow", user="U222", follow={"isUnblocked": True})))
    db.session.refresh(contact)
    assert contact.attributes["line_following"] is True
    assert count(Message) == 1


def test_a_new_follower_is_a_customer_before_their_first_message(client, inbox, caplog):
    post(client, inbox, webhook(event("unfollow", user="U-never")))
    assert count(Contact) == 0  # nobody to remember
    post(client, inbox, webhook(event("follow", user="U-new", follow={"isUnblocked": False})))
    ident = db.session.scalars(select(ContactIdentity)).one()
    assert (ident.kind, ident.external_id) == ("line", "U-new")
    assert ident.contact.attributes["line_following"] is True and count(Ticket) == 0
    post(client, inbox, webhook(text_event(user="U-new")))
    assert count(Contact) == 1 and count(Ticket) == 1  # their message lands on the same customer


def test_postback_becomes_a_message_with_its_label(client, inbox):
    ev = event("postback", postback={"data": "action=survey&label=とても満足"})
    post(client, inbox, webhook(ev))
    msg = db.session.scalars(select(Message)).one()
    assert msg.body == "とても満足"
    assert msg.external_id == ev["webhookEventId"]


def test_unsend_marks_the_message(client, inbox):
    ev = text_event("間違えました", mid="325710")
    post(client, inbox, webhook(ev))
    post(client, inbox, webhook(event("unsend", unsend={"messageId": "325710"})))
    assert db.session.scalars(select(Message)).one().unsent is True


def test_group_is_one_conversation_with_a_contact_per_speaker(client, inbox, line_api):
    line_api.profiles["Ua"] = {"displayName": "佐藤", "userId": "Ua", "pictureUrl": "https://p/a"}
    line_api.profiles["Ub"] = {"displayName": "鈴木", "userId": "Ub"}
    group = {"type": "group", "groupId": "Cgroup1"}
    post(client, inbox, webhook(text_event("Aです", source={**group, "userId": "Ua"})))
    post(client, inbox, webhook(text_event("Bです", source={**group, "userId": "Ub"})))
    ticket = only_ticket()
    assert ticket.reply_to == "Cgroup1"
    assert ticket.thread_key == "line-group:Cgroup1"
    names = sorted(i.display_name for i in db.session.scalars(select(ContactIdentity)))
    assert names == ["佐藤", "鈴木"]
    assert {c.path for c in line_api.sent("/member/")} == {"/v2/bot/group/Cgroup1/member/Ua",
                                                           "/v2/bot/group/Cgroup1/member/Ub"}


def test_profile_name_and_picture_are_fetched_once(client, inbox, line_api):
    line_api.profiles["U333"] = {"displayName": "山田 花子", "userId": "U333", "pictureUrl": "https://p/333"}
    post(client, inbox, webhook(text_event(user="U333")))
    post(client, inbox, webhook(text_event(user="U333")))
    contact = db.session.scalars(select(Contact)).one()
    assert (contact.name, contact.avatar_url) == ("山田 花子", "https://p/333")
    assert len(line_api.sent("/v2/bot/profile/U333")) == 1


def test_a_profile_that_arrives_after_the_message_renames_the_customer_on_open_pages(app, client, inbox, line_api):
    line_api.profiles["U555"] = {"displayName": "佐々木 次郎", "userId": "U555"}
    agent = f.agent(inboxes=[inbox])
    sio = agent_socket(app, client, agent)
    post(client, inbox, webhook(text_event(user="U555")))
    events = sio.get_received("/agent")
    names = [(e["name"], e["args"][0]["ticket"]["contact"]["name"] if e["name"] == "message.created"
              else e["args"][0]["contact"]["name"]) for e in events if e["name"] in ("message.created", "ticket.updated")]
    contact_id = db.session.scalars(select(Contact)).one().id
    # The message's event comes first, before the profile is fetched; then the name, once.
    assert names == [("message.created", f"#{contact_id}"), ("ticket.updated", "佐々木 次郎")]
    post(client, inbox, webhook(text_event(user="U555")))  # known now: no second rename
    assert received(sio, "ticket.updated") == []


def test_missing_profile_leaves_the_contact_unnamed(client, inbox):
    assert post(client, inbox, webhook(text_event(user="Unobody"))).status_code == 200
    assert db.session.scalars(select(Contact)).one().display_name == "#1"


# ---- outbound ------------------------------------------------------------------------------------

def _ticket_with_message(client, inbox, ts=None, **kw):
    post(client, inbox, webhook(text_event(ts=ts, **kw)))
    return only_ticket()


def test_round_trip_reply_uses_the_reply_token(app, client, inbox, line_api):
    agent = f.agent(inboxes=[inbox])
    sio = agent_socket(app, client, agent)
    ev = text_event("いつ届きますか", user="U444")
    line_api.reply_tokens.add(ev["replyToken"])
    post(client, inbox, webhook(ev))
    assert [m["body"] for m in received(sio, "message.created")] == ["いつ届きますか"]
    msg = post_reply(only_ticket(), agent, "本日発送いたしました。")
    [call] = line_api.sent("/v2/bot/message/reply")
    assert call.json["replyToken"] == ev["replyToken"]
    assert call.json["messages"] == [{"type": "text", "text": "本日発送いたしました。"}]
    assert call.headers["authorization"] == "Bearer line-token"
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent and msg.external_id.startswith("5")
    assert msg.meta["line_sent_via"] == "reply"
    assert not line_api.sent("/push")
    updates = received(sio, "message.updated")
    assert updates[-1]["delivery"] == "sent"


def test_reply_token_is_used_once_then_push(app, client, inbox, line_api):
    agent = f.agent(inboxes=[inbox])
    ev = text_event(user="U445")
    line_api.reply_tokens.add(ev["replyToken"])
    post(client, inbox, webhook(ev))
    post_reply(only_ticket(), agent, "一通目")
    second = post_reply(only_ticket(), agent, "二通目")
    assert len(line_api.sent("/reply")) == 1
    [push] = line_api.sent("/push")
    assert push.json["to"] == "U445" and push.json["messages"][0]["text"] == "二通目"
    assert push.headers["x-line-retry-key"] == line_mod.retry_key(second.id)


def test_expired_reply_token_falls_back_to_push(app, client, inbox, line_api):
    agent = f.agent(inboxes=[inbox])
    ev = text_event(user="U446", ts=int((time.time() - 120) * 1000))
    line_api.reply_tokens.add(ev["replyToken"])
    post(client, inbox, webhook(ev))
    msg = post_reply(only_ticket(), agent, "お待たせしました")
    assert not line_api.sent("/reply")
    [push] = line_api.sent("/push")
    assert uuid.UUID(push.headers["x-line-retry-key"]).version == 5
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent and msg.meta["line_sent_via"] == "push"


def test_rejected_reply_token_falls_back_to_push(app, client, inbox, line_api):
    agent = f.agent(inboxes=[inbox])
    post(client, inbox, webhook(text_event(user="U447")))  # the stand-in does not know this token
    msg = post_reply(only_ticket(), agent, "ご連絡ありがとうございます")
    assert len(line_api.sent("/reply")) == 1 and len(line_api.sent("/push")) == 1
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent


def test_redelivered_event_token_is_not_used(client, inbox, line_api):
    ev = text_event(user="U448", redelivery=True)
    line_api.reply_tokens.add(ev["replyToken"])
    post(client, inbox, webhook(ev))
    assert "line_reply_token" not in db.session.scalars(select(Message)).one().meta
    post_reply(only_ticket(), f.agent(inboxes=[inbox]), "返信")
    assert not line_api.sent("/reply") and line_api.sent("/push")


def test_rate_limited_push_is_retried_then_sent_once(app, client, inbox, line_api):
    agent = f.agent(inboxes=[inbox])
    _ticket_with_message(client, inbox, user="U449", ts=0)
    line_api.fail("/push", 429, {"message": "The API rate limit has been exceeded. Try again later."},
                  {"Retry-After": "0"}, times=2)
    msg = post_reply(only_ticket(), agent, "少々お待ちください")
    pushes = line_api.sent("/push")
    assert len(pushes) == 3
    assert len({p.headers["x-line-retry-key"] for p in pushes}) == 1
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent and msg.delivery_attempts == 3


@pytest.mark.config(SENTIMENT_ENABLED=False, SEND_MAX_ATTEMPTS=3)
def test_server_errors_fail_the_message_with_the_error_shown(app, client, inbox, line_api):
    agent = f.agent(inboxes=[inbox])
    sio = agent_socket(app, client, agent)
    _ticket_with_message(client, inbox, user="U450", ts=0)
    line_api.fail("/push", 500, {"message": "Internal server error"}, times=10)
    msg = post_reply(only_ticket(), agent, "送れません")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.failed
    assert "LINE 500" in msg.delivery_error and msg.delivery_attempts == 3
    assert received(sio, "message.updated")[-1]["delivery_error"] == msg.delivery_error
    page = client.get(f"/agent/tickets/{msg.ticket_id}").get_data(as_text=True)
    assert "LINE 500: Internal server error" in page


def test_lost_answer_then_409_counts_as_sent_once(app, client, inbox, line_api):
    """LINE accepted the first push but we saw a 500: the retry with the same key gets 409."""
    agent = f.agent(inboxes=[inbox])
    _ticket_with_message(client, inbox, user="U451", ts=0)
    msg = post_reply(only_ticket(), agent, "最初")
    key = line_mod.retry_key(msg.id)
    assert key in line_api.retry_keys
    # Simulate the lost answer: mark pending again and deliver again with the same key.
    msg.delivery = Delivery.pending
    db.session.commit()
    from helpdesk.services.replies import deliver

    deliver(msg.id)
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent and msg.meta.get("line_retry_conflict") is True
    assert [p.headers["x-line-retry-key"] for p in line_api.sent("/push")] == [key, key]


def test_invalid_channel_token_fails_with_a_clear_error(app, client, line_api, line_data):
    box = f.inbox(kind="line", settings={"api_base": line_api.url, "api_data_base": line_data.url},
                  secrets={"channel_secret": SECRET, "channel_token": "revoked"})
    post(client, box, webhook(text_event(user="U452", ts=0)))
    msg = post_reply(only_ticket(), f.agent(inboxes=[box]), "届かない")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.failed and "LINE 401" in msg.delivery_error
    assert msg.delivery_attempts == 1


def test_quick_replies_are_sent_as_message_actions(client, inbox, line_api):
    _ticket_with_message(client, inbox, user="U453", ts=0)
    post_reply(only_ticket(), None, "今回の対応はいかがでしたか？",
               meta={"quick_replies": [{"label": "満足", "text": "満足"}, {"label": "不満", "text": "不満"}]})
    [push] = line_api.sent("/push")
    items = push.json["messages"][0]["quickReply"]["items"]
    assert items == [{"type": "action", "action": {"type": "message", "label": "満足", "text": "満足"}},
                     {"type": "action", "action": {"type": "message", "label": "不満", "text": "不満"}}]


def test_long_reply_is_split_into_one_request(client, inbox, line_api):
    _ticket_with_message(client, inbox, user="U454", ts=0)
    post_reply(only_ticket(), f.agent(inboxes=[inbox]), "あ" * 12000)
    [push] = line_api.sent("/push")
    assert [len(m["text"]) for m in push.json["messages"]] == [5000, 5000, 2000]


def test_typing_agent_shows_the_loading_animation(app, client, inbox, line_api):
    agent = f.agent(inboxes=[inbox])
    ticket = _ticket_with_message(client, inbox, user="U455")
    sio = agent_socket(app, client, agent)
    sio.emit("typing", {"ticket_id": ticket.id, "typing": True}, namespace="/agent")
    sio.emit("typing", {"ticket_id": ticket.id, "typing": True}, namespace="/agent")  # throttled
    sio.emit("typing", {"ticket_id": ticket.id, "typing": True, "private": True}, namespace="/agent")
    [call] = line_api.sent("/v2/bot/chat/loading/start")
    assert call.json == {"chatId": "U455", "loadingSeconds": 20}


def test_no_loading_animation_in_groups(client, inbox, line_api):
    adapter = line_mod.LineAdapter(inbox.settings, inbox.secrets)
    assert adapter.show_typing("Cgroup") is False
    assert not line_api.sent("/loading")


# ---- QA round: threading, UTF-16 length, monthly limit ---------------------------------------------

def test_a_group_message_never_joins_the_speakers_private_ticket(client, inbox, line_api):
    """Ua's first words in a group once landed on Ua's one-to-one ticket and moved its reply
    address to the group: the agent's next answer to the private question went to everyone."""
    agent = f.agent(inboxes=[inbox])
    post(client, inbox, webhook(text_event("注文番号は 123-456 です", user="Ua", ts=0)))
    private = only_ticket()
    group = {"type": "group", "groupId": "Cfriends"}
    post(client, inbox, webhook(text_event("この店どう？", source={**group, "userId": "Ua"}, ts=0)))
    post(client, inbox, webhook(text_event("住所も送ります", user="Ua", ts=0)))
    post(client, inbox, webhook(text_event("いいね", source={**group, "userId": "Ub"}, ts=0)))
    tickets = db.session.scalars(select(Ticket).order_by(Ticket.id)).all()
    assert [(t.reply_to, t.thread_key) for t in tickets] == [("Ua", "line-user:Ua"),
                                                             ("Cfriends", "line-group:Cfriends")]
    assert [m.body for m in db.session.scalars(select(Message).where(Message.ticket_id == private.id)
                                               .order_by(Message.id))] == ["注文番号は 123-456 です", "住所も送ります"]
    post_reply(private, agent, "ご住所を確認しました")
    assert [p.json["to"] for p in line_api.sent("/push")] == ["Ua"]


def test_a_closed_group_ticket_opens_a_new_group_ticket(client, inbox):
    from helpdesk.models import Status

    post(client, inbox, webhook(text_event("個人の相談", user="Ua", ts=0)))
    group = {"type": "room", "roomId": "Rroom1", "userId": "Ua"}
    post(client, inbox, webhook(text_event("一回目", source=group, ts=0)))
    room_ticket = db.session.scalars(select(Ticket).where(Ticket.thread_key == "line-room:Rroom1")).one()
    room_ticket.status = Status.closed
    db.session.commit()
    post(client, inbox, webhook(text_event("二回目", source=group, ts=0)))
    assert [t.reply_to for t in db.session.scalars(select(Ticket).order_by(Ticket.id))] == ["Ua", "Rroom1", "Rroom1"]


def last_message() -> Message:
    return db.session.scalars(select(Message).order_by(Message.id.desc()).limit(1)).one()


def test_a_private_message_never_joins_the_speakers_open_group_ticket(client, inbox, line_api):
    """The other way round: Ua is talked to in a group first, then writes one-to-one."""
    agent = f.agent(inboxes=[inbox])
    group = {"type": "group", "groupId": "Cfriends", "userId": "Ua"}
    post(client, inbox, webhook(text_event("この店どう？", source=group, ts=0)))
    post(client, inbox, webhook(text_event("個人的に相談があります", user="Ua", ts=0)))
    tickets = db.session.scalars(select(Ticket).order_by(Ticket.id)).all()
    assert [(t.reply_to, t.thread_key) for t in tickets] == [("Cfriends", "line-group:Cfriends"),
                                                             ("Ua", "line-user:Ua")]
    post_reply(tickets[1], agent, "ご相談内容を伺います")
    assert [p.json["to"] for p in line_api.sent("/push")] == ["Ua"]


def test_a_one_to_one_ticket_from_before_chat_keys_goes_on_after_the_migration(app, client, inbox):
    """Tickets made before one-to-one chats had keys are keyed by e5a9c2d7f310: a customer's
    next message continues their open conversation, not a second ticket."""
    import importlib

    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    post(client, inbox, webhook(text_event("以前からの相談", user="Uold", ts=0)))
    group = {"type": "group", "groupId": "Cold", "userId": "Uold"}
    post(client, inbox, webhook(text_event("グループの話", source=group, ts=0)))
    before = db.session.scalars(select(Ticket).order_by(Ticket.id)).all()
    before[0].thread_key = None  # as the adapter left it then
    db.session.commit()
    migration = importlib.import_module("helpdesk.migrations.versions.e5a9c2d7f310_line_one_to_one_thread_keys")
    with db.engine.begin() as conn:
        migration.op._proxy = Operations(MigrationContext.configure(conn))
        try:
            migration.upgrade()
        finally:
            del migration.op._proxy
    db.session.expire_all()
    assert [t.thread_key for t in before] == ["line-user:Uold", "line-group:Cold"]
    post(client, inbox, webhook(text_event("続きです", user="Uold", ts=0)))
    assert count(Ticket) == 2 and last_message().ticket_id == before[0].id


def test_a_chat_goes_on_in_the_ticket_a_duplicate_was_merged_into(client, inbox):
    """Two tickets with one chat's key (a duplicate merged, and closed, into the older one): the
    customer's next message goes to the one still open, not to the newer closed one."""
    from helpdesk.models import Status
    from helpdesk.services.tickets import merge_tickets, update_ticket

    agent = f.agent(inboxes=[inbox])
    post(client, inbox, webhook(text_event("一件目", user="Udup", ts=0)))
    kept = only_ticket()
    update_ticket(kept, agent, status="closed")
    post(client, inbox, webhook(text_event("二件目", user="Udup", ts=0)))  # a closed chat: a new ticket
    duplicate = db.session.scalars(select(Ticket).where(Ticket.id != kept.id)).one()
    update_ticket(kept, agent, status="open")  # the agent goes on in the first one
    merge_tickets(kept, duplicate, agent)
    assert duplicate.status is Status.closed and duplicate.thread_key == kept.thread_key == "line-user:Udup"
    post(client, inbox, webhook(text_event("三件目", user="Udup", ts=0)))
    assert count(Ticket) == 2 and last_message().ticket_id == kept.id and last_message().body == "三件目"


def test_emoji_count_twice_toward_the_5000_limit_and_split_at_a_line(client, inbox, line_api):
    """LINE counts UTF-16 code units: 900 lines of 「お詫び🙇」 are 4500 characters but 5400
    units, which LINE refuses as one message."""
    _ticket_with_message(client, inbox, user="U460", ts=0)
    body = "\n".join(["お詫び申し上げます🙇"] * 450)
    msg = post_reply(only_ticket(), f.agent(inboxes=[inbox]), body)
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent, msg.delivery_error
    [push] = line_api.sent("/push")
    texts = [m["text"] for m in push.json["messages"]]
    assert len(texts) == 2 and all(line_mod.utf16_units(t) <= 5000 for t in texts)
    assert "\n".join(texts) == body  # cut at a line break, nothing lost


@pytest.mark.parametrize("text", ["👨‍👩‍👧" * 2000, "が" * 6000, "a" + "🇯🇵" * 1300, "👍🏽" * 1300])
def test_split_never_breaks_a_character(text):
    import unicodedata

    text = unicodedata.normalize("NFD", text)
    pieces = line_mod.split_text(text)
    assert len(pieces) > 1 and "".join(pieces) == text
    assert all(line_mod.utf16_units(p) <= 5000 for p in pieces)
    assert not any(line_mod._joins_previous(p[0]) for p in pieces)
    # every piece after the first starts where a whole emoji, flag or kana starts in the text
    unit = {"👨": "👨‍👩‍👧", "か": "が", "🇯": "🇯🇵", "👍": "👍🏽"}
    assert all(p.startswith(unicodedata.normalize("NFD", unit[p[0]])) for p in pieces[1:])


def test_monthly_message_limit_fails_at_once_with_a_clear_error(client, inbox, line_api):
    _ticket_with_message(client, inbox, user="U461", ts=0)
    line_api.fail("/push", 429, {"message": "You have reached your monthly limit."}, times=5)
    msg = post_reply(only_ticket(), f.agent(inboxes=[inbox]), "お返事です")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.failed and msg.delivery_attempts == 1
    assert "上限" in msg.delivery_error and "monthly limit" in msg.delivery_error
    assert len(line_api.sent("/push")) == 1
