"""The /widget namespace: visitors, history, live replies, identity, bad input."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from channels import testing
from helpdesk.extensions import db
from helpdesk.models import Contact, ContactIdentity, Delivery, Direction, Message, Ticket
from helpdesk.services.replies import post_reply
from helpdesk.services.tickets import merge_contacts
from tests import factories as f
from tests.widget.helpers import NS, hello, received, say, signed


both_databases = pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def only_ticket() -> Ticket:
    db.session.expire_all()
    (ticket,) = db.session.scalars(select(Ticket).where(Ticket.channel == "chat")).all()
    return ticket


# ---- connecting ---------------------------------------------------------------------

def test_unknown_inbox_key_is_refused_and_logged(app, sockets, caplog):
    caplog.set_level(logging.WARNING)
    c = sockets.visitor(f.inbox(kind="chat"), inbox="no-such-key")
    assert not c.is_connected(NS)
    assert "unknown inbox" in caplog.text


def test_inbox_of_another_channel_is_not_a_widget(app, sockets):
    c = sockets.visitor(f.inbox(kind="test"))
    assert not c.is_connected(NS)


def test_new_visitor_gets_a_token_and_an_empty_history(app, sockets, chat_inbox):
    c = sockets.visitor(chat_inbox)
    r = hello(c)
    assert r["ok"] and len(r["token"]) >= 32
    assert r["history"] == [] and r["verified"] is False


def test_same_token_after_reload_keeps_the_history(app, sockets, chat_inbox, agent):
    sockets.agent(agent)  # an agent is online, so no email is asked for
    first = sockets.visitor(chat_inbox)
    token = hello(first)["token"]
    assert say(first, "注文番号を教えてください")["ok"]
    first.disconnect(namespace=NS)

    again = sockets.visitor(chat_inbox, token=token)  # what the widget does after a reload
    r = hello(again)
    assert r["token"] == token
    assert [m["body"] for m in r["history"]] == ["注文番号を教えてください"]


# ---- messages in -----------------------------------------------------------------------

@both_databases
def test_message_goes_through_ingest_into_a_chat_ticket(app, sockets, chat_inbox, agent):
    sockets.agent(agent)
    c = sockets.visitor(chat_inbox, name="山田", page_url="https://shop.example/cart")
    token = hello(c)["token"]
    r = say(c, "返品できますか？")
    assert r["ok"] and r["message"]["direction"] == "in"
    ticket = only_ticket()
    assert ticket.channel == "chat" and ticket.contact.display_name == "山田"
    msg = db.session.scalar(select(Message))
    assert msg.meta["page_url"] == "https://shop.example/cart"
    ident = db.session.scalar(select(ContactIdentity))
    # The token itself is a credential: only its hash is stored.
    assert token not in ident.external_id and ticket.reply_to == ident.external_id
    assert received(c, "message.created")[0]["body"] == "返品できますか？"


def test_resent_message_with_same_client_id_is_stored_once(app, sockets, chat_inbox, agent):
    sockets.agent(agent)
    c = sockets.visitor(chat_inbox)
    hello(c)
    first = say(c, "一度だけ", client_id="resend-after-reconnect")
    again = say(c, "一度だけ", client_id="resend-after-reconnect")
    assert first["message"]["id"] == again["message"]["id"]
    assert count(Message) == 1


# ---- replies out ----------------------------------------------------------------------

def test_agent_reply_reaches_the_visitor_live_with_agent_name(app, sockets, chat_inbox, agent):
    sockets.agent(agent)
    c = sockets.visitor(chat_inbox)
    hello(c)
    say(c, "配送状況を知りたいです")
    c.get_received(NS)
    msg = post_reply(only_ticket(), agent, "確認いたします。少々お待ちください。")
    (event,) = received(c, "message.created")
    assert event == {"id": msg.id, "direction": "out", "body": "確認いたします。少々お待ちください。",
                     "agent_name": "佐藤 花子", "sent_at": event["sent_at"], "attachments": []}
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent


def test_private_note_never_reaches_the_visitor(app, sockets, chat_inbox, agent):
    sockets.agent(agent)
    c = sockets.visitor(chat_inbox)
    token = hello(c)["token"]
    say(c, "質問です")
    c.get_received(NS)
    post_reply(only_ticket(), agent, "社内メモ: この顧客は要注意", private=True)
    post_reply(only_ticket(), agent, "お答えします")
    assert [e["body"] for e in received(c, "message.created")] == ["お答えします"]
    later = sockets.visitor(chat_inbox, token=token)
    assert [m["body"] for m in hello(later)["history"]] == ["質問です", "お答えします"]


@both_databases
def test_visitors_only_ever_see_their_own_conversation(app, sockets, chat_inbox, agent):
    sockets.agent(agent)
    alice, bob = sockets.visitor(chat_inbox), sockets.visitor(chat_inbox)
    alice_token = hello(alice)["token"]
    hello(bob)
    say(alice, "アリスの住所は東京都…")
    say(bob, "ボブです")
    alice_ticket = db.session.scalar(select(Ticket).where(Ticket.subject.like("アリス%")))
    post_reply(alice_ticket, agent, "アリスさんへの回答")
    post_reply(alice_ticket, agent, "アリスさんのメモ", private=True)
    bodies = [e.get("body") for e in received(bob)]
    assert bodies == ["ボブです"]
    # Guessing: a near-miss token and a made-up one open fresh, empty conversations.
    for guess in (alice_token[:-1] + ("A" if alice_token[-1] != "A" else "B"), "x" * 43):
        intruder = sockets.visitor(chat_inbox, token=guess)
        assert hello(intruder)["history"] == []
    assert count(Ticket) == 2


# ---- bad input ------------------------------------------------------------------------

def test_message_of_100kb_is_refused_with_a_clear_error(app, sockets, chat_inbox, agent, caplog):
    sockets.agent(agent)
    c = sockets.visitor(chat_inbox)
    hello(c)
    r = say(c, "あ" * 35_000)  # about 100 KB of UTF-8
    assert r == {"ok": False, "error": "too_long", "message": "The message is too long."}
    assert received(c, "widget.error") == [{"code": "too_long", "message": "The message is too long."}]
    assert count(Message) == 0
    assert "too_long" in caplog.text


@pytest.mark.parametrize("payload", [None, "text", {"text": 5, "client_id": "abcdefgh"},
                                     {"text": "hi", "client_id": "../../etc"}, {"text": "  ", "client_id": "abcdefgh"}])
def test_malformed_messages_get_an_error_not_a_crash(app, sockets, chat_inbox, agent, payload):
    sockets.agent(agent)
    c = sockets.visitor(chat_inbox)
    hello(c)
    r = c.emit("message", payload, namespace=NS, callback=True)
    assert r["ok"] is False and r["error"] in {"bad_payload", "bad_client_id", "empty"}
    assert count(Message) == 0


@pytest.mark.config(WIDGET_RATE_LIMIT="3 per minute")
def test_flood_from_one_visitor_is_rate_limited(app, sockets, chat_inbox, agent):
    sockets.agent(agent)
    flooder, other = sockets.visitor(chat_inbox), sockets.visitor(chat_inbox)
    hello(flooder), hello(other)
    answers = [say(flooder, f"スパム{i}") for i in range(5)]
    assert [a["ok"] for a in answers] == [True, True, True, False, False]
    assert answers[3]["error"] == "rate_limited"
    assert {"code": "rate_limited", "message": "Too many messages; please wait a moment."} in received(flooder)
    assert say(other, "普通の質問")["ok"]  # the limit is per visitor
    assert count(Message) == 4


@pytest.mark.config(WIDGET_RATE_LIMIT="3 per minute", RATELIMIT_STORAGE_URI="redis://127.0.0.1:9/0")
def test_the_limit_storage_down_loses_no_message_and_still_limits(app, sockets, chat_inbox, agent, caplog):
    """Redis (the production limit storage) unreachable: the flood control raised, and the
    visitor's message was lost. It counts in the process's memory meanwhile."""
    sockets.agent(agent)
    c = sockets.visitor(chat_inbox)
    hello(c)
    answers = [say(c, f"質問{i}") for i in range(4)]
    assert [a["ok"] for a in answers] == [True, True, True, False]
    assert count(Message) == 3
    assert "widget rate limit storage unreachable" in caplog.text


def test_script_in_name_and_message_is_kept_as_text(app, sockets, chat_inbox, agent):
    sockets.agent(agent)
    c = sockets.visitor(chat_inbox, name='<img src=x onerror="alert(1)">')
    hello(c)
    say(c, "<script>alert('x')</script>")
    ticket = only_ticket()
    assert ticket.contact.display_name == '<img src=x onerror="alert(1)">'
    http = app.test_client()
    from tests.conftest import login
    login(http, agent.email)
    html = http.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert "<script>alert('x')</script>" not in html and "&lt;script&gt;" in html
    assert '<img src=x onerror' not in html


def test_chat_webhook_route_cannot_be_used_to_speak_as_a_visitor(app, client, chat_inbox):
    r = client.post(f"/webhooks/chat/{chat_inbox.key}", json={"key": "v:abc", "text": "偽物", "client_id": "abcdefgh"})
    assert r.status_code == 401
    assert count(Message) == 0


# ---- identity verification ------------------------------------------------------------

@both_databases
def test_verified_identity_links_a_verified_contact(app, sockets, chat_inbox, agent):
    sockets.agent(agent)
    c = sockets.visitor(chat_inbox, identifier="user-42", identity_hash=signed("user-42"), name="会員 太郎",
                        email="taro@example.jp")
    r = hello(c)
    assert r["verified"] is True and r["token"] is None
    say(c, "会員です")
    ident = db.session.scalar(select(ContactIdentity))
    assert ident.verified and ident.external_id == f"u:{chat_inbox.key}:user-42"
    assert ident.contact.email == "taro@example.jp"
    # The same user on another device sees the same conversation.
    other_device = sockets.visitor(chat_inbox, identifier="user-42", identity_hash=signed("user-42"))
    assert [m["body"] for m in hello(other_device)["history"]] == ["会員です"]


@pytest.mark.parametrize("given", ["", "deadbeef", "0" * 64, None])
def test_invalid_identity_hmac_is_refused(app, sockets, chat_inbox, caplog, given):
    c = sockets.visitor(chat_inbox, identifier="user-42", identity_hash=given)
    assert not c.is_connected(NS)
    assert "bad signature" in caplog.text


def test_hmac_from_another_inbox_secret_is_refused(app, sockets, chat_inbox):
    from channels.chat import identity_hash

    c = sockets.visitor(chat_inbox, identifier="user-42", identity_hash=identity_hash("other-secret", "user-42"))
    assert not c.is_connected(NS)


@both_databases
def test_unverified_visitor_cannot_read_a_verified_contacts_history(app, sockets, chat_inbox, agent):
    sockets.agent(agent)
    member = sockets.visitor(chat_inbox, identifier="user-7", identity_hash=signed("user-7"))
    hello(member)
    say(member, "会員の秘密の相談")
    post_reply(only_ticket(), agent, "会員様への回答")
    anon = sockets.visitor(chat_inbox)
    anon_token = hello(anon)["token"]
    say(anon, "匿名です")
    # Even when an agent merges the anonymous contact into the member's contact...
    idents = {i.external_id: i for i in db.session.scalars(select(ContactIdentity))}
    member_contact = idents[f"u:{chat_inbox.key}:user-7"].contact
    anon_contact = next(i.contact for k, i in idents.items() if k.startswith("v:"))
    merge_contacts(member_contact, anon_contact, agent)
    db.session.commit()
    anon.disconnect(namespace=NS)
    # ...the anonymous browser still sees only what it wrote itself.
    again = sockets.visitor(chat_inbox, token=anon_token)
    assert [m["body"] for m in hello(again)["history"]] == ["匿名です"]


# ---- presence, pre-chat, offline ------------------------------------------------------

def test_agents_online_only_when_an_agent_who_sees_the_inbox_is_connected(app, sockets, chat_inbox, agent):
    c = sockets.visitor(chat_inbox)
    assert hello(c)["agents_online"] is False
    sockets.agent(f.agent(inboxes=[f.inbox(kind="test")]))  # online, but for another inbox
    assert c.emit("presence", {}, namespace=NS, callback=True)["agents_online"] is False
    sockets.agent(agent)
    assert c.emit("presence", {}, namespace=NS, callback=True)["agents_online"] is True


def test_offline_visitor_must_leave_an_email_which_is_kept_on_the_contact(app, sockets, chat_inbox, caplog):
    caplog.set_level("INFO", logger="helpdesk.realtime.widget_ns")
    c = sockets.visitor(chat_inbox)
    hello(c)
    assert say(c, "誰かいますか")["error"] == "email_required"
    assert say(c, "誰かいますか", email="not-an-email")["error"] == "bad_email"
    assert f"widget message held on inbox {chat_inbox.id}" in caplog.text and "email asked first" in caplog.text
    assert f"widget message refused on inbox {chat_inbox.id}" in caplog.text and "bad email" in caplog.text
    r = say(c, "誰かいますか", email="kyaku@example.jp")
    assert r["ok"] and r["agents_online"] is False
    ticket = only_ticket()
    assert ticket.contact.email == "kyaku@example.jp"
    assert db.session.scalar(select(Message)).meta["offline"] is True
    assert say(c, "追伸")["ok"]  # the email is known now


def test_prechat_form_is_required_when_the_inbox_asks_for_it(app, sockets, agent, caplog):
    caplog.set_level("INFO", logger="helpdesk.realtime.widget_ns")
    inbox = f.inbox(kind="chat", settings={"prechat": True})
    inbox.members.append(agent)
    db.session.commit()
    sockets.agent(agent)
    c = sockets.visitor(inbox)
    assert hello(c)["prechat"] is True
    assert say(c, "こんにちは")["error"] == "prechat_required"
    bad = c.emit("identify", {"name": "鈴木", "email": "nope"}, namespace=NS, callback=True)
    assert bad["error"] == "bad_email"
    assert "pre-chat form first" in caplog.text and "gave a bad email" in caplog.text
    assert c.emit("identify", {"name": "鈴木", "email": "suzuki@example.jp"}, namespace=NS, callback=True)["ok"]
    assert say(c, "こんにちは")["ok"]
    contact = db.session.scalar(select(Contact))
    assert (contact.display_name, contact.email) == ("鈴木", "suzuki@example.jp")


def test_agent_typing_shows_to_the_visitor_but_not_for_notes(app, sockets, chat_inbox, agent):
    desk = sockets.agent(agent)
    c = sockets.visitor(chat_inbox)
    hello(c)
    say(c, "質問")
    ticket = only_ticket()
    c.get_received(NS)
    desk.emit("typing", {"ticket_id": ticket.id, "typing": True, "private": True}, namespace="/agent", callback=True)
    assert received(c, "agent.typing") == []
    desk.emit("typing", {"ticket_id": ticket.id, "typing": True}, namespace="/agent", callback=True)
    assert received(c, "agent.typing") == [{"agent_name": "佐藤 花子", "typing": True}]


# ---- conversation continuity by email -------------------------------------------------

def _offline_visitor_with_ticket(sockets, inbox, email="kyaku@example.jp"):
    c = sockets.visitor(inbox)
    hello(c)
    assert say(c, "営業時間外ですが質問です", email=email)["ok"]
    c.disconnect(namespace=NS)
    return only_ticket()


@both_databases
def test_reply_to_a_visitor_who_left_is_also_sent_by_email(app, sockets, agent):
    testing.SENT.clear()
    mail = f.inbox(kind="test", name="メール")
    chat = f.inbox(kind="chat", settings={"email_inbox_id": mail.id})
    ticket = _offline_visitor_with_ticket(sockets, chat)
    reply = post_reply(ticket, agent, "メールでもお送りします")
    db.session.expire_all()
    assert db.session.get(Message, reply.id).meta["visitor_offline"] is True
    copy = db.session.scalar(select(Message).where(Message.inbox_id == mail.id))
    assert copy.body == "メールでもお送りします" and copy.delivery is Delivery.sent
    assert copy.ticket.reply_to == "kyaku@example.jp" and copy.ticket.contact_id == ticket.contact_id
    assert [s["recipient"] for s in testing.SENT if not s.get("failed")] == ["kyaku@example.jp"]
    # A second reply joins the same email ticket.
    post_reply(ticket, agent, "追加のご連絡です")
    assert count(Ticket) == 2


def test_email_copy_carries_the_agents_files(app, sockets, agent):
    from channels.base import Attachment

    testing.SENT.clear()
    mail = f.inbox(kind="test", name="メール")
    chat = f.inbox(kind="chat", settings={"email_inbox_id": mail.id})
    ticket = _offline_visitor_with_ticket(sockets, chat)
    pdf = b"%PDF-1.7\n%%EOF\n"
    post_reply(ticket, agent, "見積書をお送りします",
               files=[Attachment(filename="見積書.pdf", content_type="application/pdf", data=pdf)])
    copy = db.session.scalar(select(Message).where(Message.inbox_id == mail.id))
    assert [a["filename"] for a in copy.attachments] == ["見積書.pdf"]
    [sent] = [s for s in testing.SENT if not s.get("failed")]
    assert sent["recipient"] == "kyaku@example.jp"
    assert [a["filename"] for a in sent["attachments"]] == ["見積書.pdf"]


def test_no_email_copy_while_the_visitor_is_connected(app, sockets, agent):
    mail = f.inbox(kind="test")
    chat = f.inbox(kind="chat", settings={"email_inbox_id": mail.id})
    sockets.agent(f.agent(inboxes=[chat]))
    c = sockets.visitor(chat)
    hello(c)
    say(c, "今ここにいます", email="here@example.jp")
    post_reply(only_ticket(), agent, "はい")
    assert db.session.scalar(select(func.count()).select_from(Message).where(Message.inbox_id == mail.id)) == 0


def test_email_copy_is_kept_pending_when_the_email_adapter_is_missing(app, sockets, agent, caplog):
    mail = f.inbox(kind="not-installed", name="メール")
    chat = f.inbox(kind="chat", settings={"email_inbox_id": mail.id})
    ticket = _offline_visitor_with_ticket(sockets, chat)
    post_reply(ticket, agent, "後ほどメールで")
    copy = db.session.scalar(select(Message).where(Message.inbox_id == mail.id))
    assert copy.delivery is Delivery.pending and copy.direction is Direction.outbound
    assert "email adapter" in caplog.text


@pytest.fixture
def smtp():
    from tests.live import smtp_sink

    with smtp_sink() as (sink, port):
        yield sink, port


def test_reply_by_real_email_and_the_customers_answer_threads_back(app, sockets, agent, smtp):
    import email
    from email import policy

    from channels import get_adapter
    from helpdesk.services.ingest import ingest

    sink, port = smtp
    mail = f.inbox(kind="email", settings={"address": "support@shop.example", "smtp_host": "127.0.0.1",
                                           "smtp_port": port, "smtp_security": "plain", "smtp_timeout": 5})
    chat = f.inbox(kind="chat", settings={"email_inbox_id": mail.id})
    ticket = _offline_visitor_with_ticket(sockets, chat, email="kyaku@example.jp")
    post_reply(ticket, agent, "営業時間内に改めてご連絡いたします。")
    (raw,) = sink.mails()
    sent = email.message_from_bytes(raw, policy=policy.default)
    assert sent["To"] == "kyaku@example.jp"
    assert "営業時間内に改めてご連絡いたします。" in sent.get_body(("plain",)).get_content()
    # The customer answers the email: it lands on the email copy's ticket, same contact.
    answer = (f"From: kyaku@example.jp\r\nTo: support@shop.example\r\nSubject: Re: {sent['Subject']}\r\n"
              f"Message-ID: <answer-1@example.jp>\r\nIn-Reply-To: {sent['Message-ID']}\r\n"
              f"References: {sent['Message-ID']}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
              "ありがとうございます。待っています。\r\n").encode()
    (inbound,) = get_adapter(mail).parse(answer)
    result = ingest(mail, inbound)
    copy = db.session.scalar(select(Message).where(Message.inbox_id == mail.id, Message.direction == Direction.outbound))
    assert result.message.ticket_id == copy.ticket_id
    assert copy.ticket.contact_id == ticket.contact_id
