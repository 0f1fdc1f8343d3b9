"""Social feeds: X (CRC, signed Account Activity events, replies/DMs, polling) and
Facebook/Instagram comments through Meta webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging

import pytest
from sqlalchemy import select

from channels import social as social_mod
from helpdesk.extensions import db
from helpdesk.models import Delivery, Inbox, Message, Ticket
from helpdesk.services.replies import post_reply
from tests import factories as f
from tests.procs import embedded_flask

from .conftest import agent_socket, body_of, count, post_hub, received

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)
ME = "3000000001"
CONSUMER_SECRET = "x-consumer-secret"
PAGE = "104000000000001"
IG = "17841400000000001"


@pytest.fixture
def x_inbox(app, xapi):
    return f.inbox(kind="social", settings={"network": "x", "api_base": xapi.url, "account_id": ME},
                   secrets={"consumer_secret": CONSUMER_SECRET, "access_token": "x-user-token"})


@pytest.fixture
def fb_inbox(app, graph):
    return f.inbox(kind="social", settings={"network": "facebook", "graph_base": graph.url, "account_id": PAGE},
                   secrets={"app_secret": "app-secret", "page_token": "page-token", "verify_token": "vt"})


@pytest.fixture
def ig_inbox(app, graph):
    return f.inbox(kind="social", settings={"network": "instagram", "graph_base": graph.url, "account_id": IG},
                   secrets={"app_secret": "app-secret", "page_token": "page-token", "verify_token": "vt"})


def post_x(client, inbox, payload, secret=CONSUMER_SECRET, signature=None):
    raw = body_of(payload)
    sig = signature if signature is not None else social_mod.x_signature(secret, raw)
    return client.post(f"/webhooks/social/{inbox.key}", data=raw, content_type="application/json",
                       headers={"x-twitter-webhooks-signature": sig} if sig else {})


_n = iter(range(10**6))


def tweet(text="@shop 注文した商品が壊れていました", user="4001", name="田中", handle="tanaka", reply_to=None, tid=None):
    t = {"created_at": "Wed Oct 10 20:19:24 +0000 2018", "id_str": tid or str(1850000000000000000 + next(_n)),
         "text": text, "user": {"id_str": user, "name": name, "screen_name": handle},
         "in_reply_to_status_id_str": reply_to, "timestamp_ms": "1539202764000"}
    return t


def tweets(*items):
    return {"for_user_id": ME, "tweet_create_events": list(items)}


def dm(text="注文番号を送ります", sender="4002", eid=None):
    return {"for_user_id": ME,
            "direct_message_events": [{"type": "message_create", "id": eid or str(1860000000000000000 + next(_n)),
                                       "created_timestamp": "1539202764000",
                                       "message_create": {"target": {"recipient_id": ME}, "sender_id": sender,
                                                          "message_data": {"text": text, "entities": {}}}}],
            "users": {sender: {"id": sender, "name": "佐々木", "screen_name": "sasaki"}}}


def only_ticket() -> Ticket:
    return db.session.scalars(select(Ticket)).one()


# ---- X: CRC and signatures ---------------------------------------------------------------------

def test_crc_challenge_answer(client, x_inbox):
    resp = client.get(f"/webhooks/social/{x_inbox.key}", query_string={"crc_token": "abc123"})
    expected = base64.b64encode(hmac.new(CONSUMER_SECRET.encode(), b"abc123", hashlib.sha256).digest()).decode()
    assert resp.status_code == 200 and resp.is_json
    assert resp.json == {"response_token": "sha256=" + expected}


def test_crc_without_token_is_a_400(client, x_inbox):
    assert client.get(f"/webhooks/social/{x_inbox.key}").status_code == 400


@pytest.mark.parametrize("sig", ["", "sha256=AAAA", social_mod.x_signature("wrong", b"{}")])
def test_bad_x_signature_is_refused(client, x_inbox, sig, caplog):
    with caplog.at_level(logging.WARNING):
        assert post_x(client, x_inbox, tweets(tweet()), signature=sig).status_code == 401
    assert "bad signature" in caplog.text and count(Message) == 0


@pytest.mark.parametrize("payload", [b"{", b"[1]", {"something": "else"}])
def test_malformed_x_payload_is_a_400(client, app, xapi, payload):
    box = f.inbox(kind="social", settings={"network": "x", "api_base": xapi.url},
                  secrets={"consumer_secret": CONSUMER_SECRET})
    assert post_x(client, box, payload).status_code == 400


# ---- X: inbound ----------------------------------------------------------------------------------

def test_mention_becomes_a_public_message(client, x_inbox):
    t = tweet()
    assert post_x(client, x_inbox, tweets(t)).json["created"] == 1
    msg = db.session.scalars(select(Message)).one()
    assert msg.body == t["text"] and msg.external_id == f"tweet:{t['id_str']}"
    assert msg.meta["public"] is True and msg.ticket.reply_to == t["id_str"]
    assert msg.ticket.contact.display_name == "田中 (@tanaka)"


def test_public_badge_is_shown_to_the_agent(client, x_inbox):
    from tests.conftest import login

    agent = f.agent(inboxes=[x_inbox])
    post_x(client, x_inbox, tweets(tweet()))
    login(client, agent.email)
    assert 'class="badge public"' in client.get(f"/agent/tickets/{only_ticket().id}").get_data(as_text=True)


def test_own_tweets_and_retweets_are_ignored(client, x_inbox):
    own = tweet(user=ME)
    rt = dict(tweet(), retweeted_status={"id_str": "1"})
    post_x(client, x_inbox, tweets(own, rt))
    assert count(Message) == 0


def test_replayed_event_is_stored_once(client, x_inbox):
    payload = tweets(tweet())
    post_x(client, x_inbox, payload)
    post_x(client, x_inbox, payload)
    assert count(Message) == 1


def test_unknown_x_events_are_acknowledged(client, x_inbox):
    resp = post_x(client, x_inbox, {"for_user_id": ME, "favorite_events": [{"id": "1"}],
                                    "follow_events": [{"type": "follow"}]})
    assert resp.status_code == 200 and count(Message) == 0


def test_dm_becomes_a_private_message(client, x_inbox):
    post_x(client, x_inbox, dm())
    msg = db.session.scalars(select(Message)).one()
    assert not msg.meta.get("public") and msg.meta["x_kind"] == "dm"
    assert msg.ticket.reply_to == "4002"


def test_own_dm_echo_is_ignored(client, x_inbox):
    post_x(client, x_inbox, dm(sender=ME))
    assert count(Message) == 0


def test_deleted_tweet_marks_the_message(client, x_inbox):
    t = tweet()
    post_x(client, x_inbox, tweets(t))
    post_x(client, x_inbox, {"for_user_id": ME, "tweet_delete_events": [
        {"status": {"id": t["id_str"], "user_id": "4001"}, "timestamp_ms": "1539202765000"}]})
    assert db.session.scalars(select(Message)).one().unsent is True


# ---- X: outbound ---------------------------------------------------------------------------------

def test_round_trip_public_reply(app, client, x_inbox, xapi):
    agent = f.agent(inboxes=[x_inbox])
    sio = agent_socket(app, client, agent)
    t = tweet()
    post_x(client, x_inbox, tweets(t))
    assert received(sio, "message.created")[0]["public"] is True
    msg = post_reply(only_ticket(), agent, "ご迷惑をおかけしました。DMでご連絡ください。")
    [call] = xapi.sent("/2/tweets")
    assert call.headers["authorization"] == "Bearer x-user-token"
    assert call.json == {"text": "ご迷惑をおかけしました。DMでご連絡ください。", "reply": {"in_reply_to_tweet_id": t["id_str"]}}
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent and msg.external_id.startswith("tweet:") and msg.meta["public"] is True
    assert received(sio, "message.updated")[-1]["public"] is True


def test_reply_to_our_reply_joins_the_ticket(client, x_inbox, xapi):
    post_x(client, x_inbox, tweets(tweet()))
    out = post_reply(only_ticket(), f.agent(inboxes=[x_inbox]), "確認します")
    db.session.refresh(out)
    post_x(client, x_inbox, tweets(tweet("ありがとうございます", reply_to=out.external_id.split(":")[1])))
    assert count(Ticket) == 1 and count(Message) == 3


def test_agent_can_answer_a_mention_by_dm(client, x_inbox, xapi):
    post_x(client, x_inbox, tweets(tweet(user="4003")))
    post_reply(only_ticket(), f.agent(inboxes=[x_inbox]), "DMで失礼します", meta={"dm": True})
    [call] = xapi.sent("/2/dm_conversations/with/4003/messages")
    assert call.json == {"text": "DMで失礼します"}
    assert not xapi.sent("/2/tweets")


def test_dm_is_answered_by_dm(client, x_inbox, xapi):
    post_x(client, x_inbox, dm(sender="4004"))
    msg = post_reply(only_ticket(), f.agent(inboxes=[x_inbox]), "承知しました")
    assert len(xapi.sent("/2/dm_conversations/with/4004/messages")) == 1
    db.session.refresh(msg)
    assert msg.external_id.startswith("dm:") and not msg.meta.get("public")


def test_too_long_public_reply_is_refused(client, x_inbox, xapi):
    post_x(client, x_inbox, tweets(tweet()))
    msg = post_reply(only_ticket(), f.agent(inboxes=[x_inbox]), "あ" * 141)
    db.session.refresh(msg)
    assert msg.delivery is Delivery.failed and "140" in msg.delivery_error and not xapi.calls


def test_x_rate_limit_is_retried(client, x_inbox, xapi):
    post_x(client, x_inbox, tweets(tweet()))
    xapi.fail("/2/tweets", 429, {"title": "Too Many Requests", "detail": "Too Many Requests"},
              {"x-rate-limit-reset": "0"})
    msg = post_reply(only_ticket(), f.agent(inboxes=[x_inbox]), "再送")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent and len(xapi.sent("/2/tweets")) == 2


def test_x_unauthorized_is_permanent(client, app, xapi):
    box = f.inbox(kind="social", settings={"network": "x", "api_base": xapi.url, "account_id": ME},
                  secrets={"consumer_secret": CONSUMER_SECRET, "access_token": "revoked"})
    post_x(client, box, tweets(tweet()))
    msg = post_reply(only_ticket(), f.agent(inboxes=[box]), "x")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.failed and "X 401" in msg.delivery_error and msg.delivery_attempts == 1


def test_weighted_length_counts_japanese_double():
    assert social_mod.weighted_length("abc") == 3
    assert social_mod.weighted_length("日本語") == 6
    assert social_mod.weighted_length("“ok”") == 4


# ---- X: polling ------------------------------------------------------------------------------------

def _mention(tid: int, text="@shop 質問です", author="4100"):
    return {"id": str(tid), "text": text, "author_id": author, "created_at": "2026-01-05T03:00:00.000Z",
            "referenced_tweets": []}


def test_polling_stores_new_mentions_once_and_moves_the_cursor(app, runner, xapi):
    box = f.inbox(kind="social", settings={"network": "x", "api_base": xapi.url, "account_id": ME, "poll": True},
                  secrets={"access_token": "x-user-token"})
    xapi.users = [{"id": "4100", "name": "中村", "username": "nakamura"}]
    xapi.mentions = [_mention(101), _mention(102), _mention(103)]
    xapi.page_size = 2
    result = runner.invoke(args=["poll-social"])
    assert "stored 3 new posts" in result.output
    db.session.expire_all()
    assert db.session.get(Inbox, box.id).settings["since_id"] == "103"
    bodies = [m.external_id for m in db.session.scalars(select(Message).order_by(Message.id))]
    assert bodies == ["tweet:101", "tweet:102", "tweet:103"]
    xapi.mentions.append(_mention(104))
    assert "stored 1 new posts" in runner.invoke(args=["poll-social"]).output
    calls = xapi.sent("/mentions")
    assert calls[-1].query["since_id"] == "103"
    assert count(Message) == 4


def test_polling_once_labels_what_it_stored_before_the_command_ends(app, db_url, tmp_path, xapi):
    """`flask poll-social` run once on the embedded setup (thread jobs, the shipped model) used
    to end while its job thread loaded the model: the posts' labels stayed pending."""
    f.inbox(kind="social", settings={"network": "x", "api_base": xapi.url, "account_id": ME, "poll": True},
            secrets={"access_token": "x-user-token"})
    xapi.users = [{"id": "4100", "name": "中村", "username": "nakamura"}]
    xapi.mentions = [_mention(201, "@shop 届いた商品が壊れていました。最悪です"), _mention(202)]
    out = embedded_flask("poll-social", db_url, tmp_path, secret_key=app.config["SECRET_KEY"])
    assert "stored 2 new posts" in out.stdout and "wait for sentiment" not in out.stdout, out.stdout
    db.session.remove()
    labels = {m.external_id: m.sentiment_label for m in db.session.scalars(select(Message))}
    assert labels["tweet:201"] == "negative" and labels["tweet:202"] is not None, labels


def test_polling_failure_keeps_the_cursor(app, xapi, caplog):
    from helpdesk.tasks import poll_social

    box = f.inbox(kind="social", settings={"network": "x", "api_base": xapi.url, "account_id": ME, "poll": True,
                                           "since_id": "50"}, secrets={"access_token": "x-user-token"})
    xapi.fail("/mentions", 503, {"title": "Service Unavailable"})
    with caplog.at_level(logging.WARNING):
        assert poll_social() == 0
    assert db.session.get(Inbox, box.id).settings["since_id"] == "50"
    assert "polling social inbox" in caplog.text


def test_inboxes_without_poll_are_not_polled(app, xapi):
    from helpdesk.tasks import poll_social

    f.inbox(kind="social", settings={"network": "x", "api_base": xapi.url, "account_id": ME},
            secrets={"access_token": "x-user-token"})
    assert poll_social() == 0 and not xapi.calls


# ---- Facebook and Instagram comments -------------------------------------------------------------------

def fb_comment(text="この商品の在庫はありますか？", user="5001", post="104_900", cid=None, verb="add"):
    return {"object": "page", "entry": [{"id": PAGE, "time": 1700000000, "changes": [{"field": "feed", "value": {
        "from": {"id": user, "name": "高橋"}, "post": {"status_type": "added_photos", "id": post},
        "message": text, "post_id": post, "comment_id": cid or f"900_{next(_n)}", "created_time": 1700000000,
        "item": "comment", "parent_id": post, "verb": verb}}]}]}


def ig_comment(text="色違いはありますか", user="6001", media="18000000001", cid=None):
    return {"object": "instagram", "entry": [{"id": IG, "time": 1700000000, "changes": [{"field": "comments", "value": {
        "from": {"id": user, "username": "hana_jp"}, "media": {"id": media, "media_product_type": "FEED"},
        "id": cid or f"1790{next(_n)}", "text": text}}]}]}


def test_meta_verification_for_comment_inboxes(client, fb_inbox):
    resp = client.get(f"/webhooks/social/{fb_inbox.key}",
                      query_string={"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "42"})
    assert resp.get_data(as_text=True) == "42"


def test_fb_comment_signature_is_checked(client, fb_inbox):
    assert post_hub(client, "social", fb_inbox, fb_comment(), secret="nope").status_code == 401


def test_fb_comments_one_ticket_per_post_and_commenter(client, fb_inbox):
    post_hub(client, "social", fb_inbox, fb_comment(user="5001", post="104_1"))
    post_hub(client, "social", fb_inbox, fb_comment("追加の質問です", user="5001", post="104_1"))
    post_hub(client, "social", fb_inbox, fb_comment(user="5002", post="104_1"))
    post_hub(client, "social", fb_inbox, fb_comment(user="5001", post="104_2"))
    keys = sorted(t.thread_key for t in db.session.scalars(select(Ticket)))
    assert keys == ["facebook-post:104_1:5001", "facebook-post:104_1:5002", "facebook-post:104_2:5001"]
    assert all(m.meta["public"] for m in db.session.scalars(select(Message)))


def test_page_own_comments_and_reactions_are_ignored(client, fb_inbox):
    reaction = fb_comment()
    reaction["entry"][0]["changes"][0]["value"]["item"] = "reaction"
    post_hub(client, "social", fb_inbox, fb_comment(user=PAGE))
    post_hub(client, "social", fb_inbox, reaction)
    assert count(Message) == 0


def test_removed_comment_is_marked(client, fb_inbox):
    post_hub(client, "social", fb_inbox, fb_comment(cid="900_77"))
    post_hub(client, "social", fb_inbox, fb_comment(cid="900_77", verb="remove"))
    assert db.session.scalars(select(Message)).one().unsent is True


def test_round_trip_fb_comment_reply(app, client, fb_inbox, graph):
    agent = f.agent(inboxes=[fb_inbox])
    sio = agent_socket(app, client, agent)
    post_hub(client, "social", fb_inbox, fb_comment(cid="900_5"))
    assert received(sio, "message.created")[0]["public"] is True
    msg = post_reply(only_ticket(), agent, "在庫ございます！")
    [call] = graph.sent("/comments")
    assert call.path == "/v21.0/900_5/comments" and call.form == {"message": "在庫ございます！"}
    assert call.headers["authorization"] == "Bearer page-token"
    assert "access_token" not in call.query  # never in a URL, where it would be logged
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent and msg.external_id.startswith("fb-comment:900_5_r")


def test_ig_comment_reply_uses_replies_edge(client, ig_inbox, graph):
    post_hub(client, "social", ig_inbox, ig_comment(cid="17901"))
    ticket = only_ticket()
    assert ticket.thread_key == "instagram-post:18000000001:6001" and ticket.contact.display_name == "@hana_jp"
    post_reply(ticket, f.agent(inboxes=[ig_inbox]), "ございます")
    [call] = graph.sent("/replies")
    assert call.path == "/v21.0/17901/replies" and call.form == {"message": "ございます"}


def test_reply_goes_to_the_latest_comment(client, ig_inbox, graph):
    post_hub(client, "social", ig_inbox, ig_comment(cid="17910"))
    post_hub(client, "social", ig_inbox, ig_comment("もう一つ", cid="17911"))
    post_reply(only_ticket(), f.agent(inboxes=[ig_inbox]), "はい")
    assert graph.sent("/replies")[0].path == "/v21.0/17911/replies"


def test_comment_send_500_is_retried_then_failed(app, client, ig_inbox, graph):
    post_hub(client, "social", ig_inbox, ig_comment())
    graph.fail("/replies", 500, {"error": {"message": "Service temporarily unavailable", "code": 2}}, times=99)
    msg = post_reply(only_ticket(), f.agent(inboxes=[ig_inbox]), "x")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.failed and "temporarily unavailable" in msg.delivery_error
    assert len(graph.sent("/replies")) == app.config["SEND_MAX_ATTEMPTS"]


def test_messenger_payload_on_comment_inbox_is_ignored(client, fb_inbox):
    payload = {"object": "page", "entry": [{"id": PAGE, "messaging": [{"sender": {"id": "1"}, "message": {"mid": "m"}}]}]}
    assert post_hub(client, "social", fb_inbox, payload).status_code == 200
    assert count(Message) == 0


def test_crc_response_matches_the_documented_example_shape():
    token = social_mod.crc_response("secret", "token")
    assert token.startswith("sha256=") and len(base64.b64decode(token[7:])) == 32
    assert json.loads(json.dumps({"response_token": token}))


# ---- QA round: public/private separation, CRC as a signing oracle ------------------------------------

def test_a_new_mention_never_joins_the_customers_dm_ticket(client, x_inbox, xapi):
    """A customer who DMs their order details and then tweets "@shop まだですか" once had the tweet
    land on the DM ticket: the agent's answer there went out as a public reply, details and all."""
    post_x(client, x_inbox, dm("注文番号 A-1234、住所は東京都…", sender="4010"))
    dm_ticket = only_ticket()
    post_x(client, x_inbox, tweets(tweet("@shop まだですか", user="4010")))
    assert count(Ticket) == 2
    post_reply(dm_ticket, f.agent(inboxes=[x_inbox]), "ご注文 A-1234 は本日発送します")
    assert len(xapi.sent("/2/dm_conversations/with/4010/messages")) == 1
    assert not xapi.sent("/2/tweets")
    post_x(client, x_inbox, dm("ありがとう", sender="4010"))  # DMs keep to the DM ticket
    assert count(Ticket) == 2 and count(Message, Message.ticket_id == dm_ticket.id) == 3


def test_crc_cannot_be_used_to_sign_a_forged_webhook(client, x_inbox):
    """The CRC answer is the HMAC the POST signature uses: answering any crc_token let anyone
    get a valid signature for a body of their choosing."""
    forged = json.dumps(tweets(tweet("偽の問い合わせ", user="666")), separators=(",", ":"))
    resp = client.get(f"/webhooks/social/{x_inbox.key}", query_string={"crc_token": forged})
    assert resp.status_code == 400
    token = (resp.get_json(silent=True) or {}).get("response_token")
    if token:  # what a forger would do with it
        post_x(client, x_inbox, forged.encode(), signature=token)
    assert count(Message) == 0
