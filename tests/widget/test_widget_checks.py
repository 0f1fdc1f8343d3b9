"""What the widget asks before a conversation, and who may embed it: uploads pass the same
pre-chat and offline-email checks as text; the pre-chat answers outlive the socket; the
inbox's allowed origins fail closed, and the admin form says what is wrong with them."""

from __future__ import annotations

import io
import json
import logging

import pytest
from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import Contact, Inbox, Message, Role
from tests import factories as f
from tests.conftest import csrf_token, login
from tests.widget.helpers import NS, hello, say

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64


def messages() -> int:
    return db.session.scalar(select(func.count()).select_from(Message))


def upload(client, pass_, **form):
    return client.post("/widget/api/upload", headers={"X-Widget-Pass": pass_},
                       data={"file": (io.BytesIO(PNG), "photo.png"), "client_id": "upload-0001", **form},
                       content_type="multipart/form-data")


def identify(c, **data) -> dict:
    return c.emit("identify", data, namespace=NS, callback=True)


@pytest.fixture
def prechat_inbox(app, agent):
    inbox = f.inbox(kind="chat", settings={"prechat": True})
    inbox.members.append(agent)
    db.session.commit()
    return inbox


# ---- uploads pass the same checks as text ----------------------------------------------------

def test_upload_waits_for_the_prechat_form_like_a_message(app, client, sockets, prechat_inbox, agent, caplog):
    caplog.set_level("INFO", logger="helpdesk.realtime.widget_ns")
    sockets.agent(agent)
    c = sockets.visitor(prechat_inbox)
    pass_ = hello(c)["pass"]
    r = upload(client, pass_)
    assert r.status_code == 400 and r.json["error"] == "prechat_required"
    assert messages() == 0 and "pre-chat form first" in caplog.text
    assert identify(c, name="鈴木", email="suzuki@example.jp")["ok"]
    assert upload(client, pass_).status_code == 201


def test_offline_upload_needs_an_email_and_keeps_it(app, client, sockets, chat_inbox):
    c = sockets.visitor(chat_inbox)  # nobody online
    pass_ = hello(c)["pass"]
    r = upload(client, pass_)
    assert r.status_code == 400 and r.json["error"] == "email_required" and messages() == 0
    assert upload(client, pass_, email="not-an-email").json["error"] == "bad_email"
    r = upload(client, pass_, email="kyaku@example.jp")
    assert r.status_code == 201, r.json
    msg = db.session.scalar(select(Message))
    assert msg.meta["offline"] is True and msg.ticket.contact.email == "kyaku@example.jp"
    assert say(c, "写真を送りました")["ok"]  # the email is known now, for text too


# ---- pre-chat answers outlive the socket -------------------------------------------------------

def test_prechat_answers_survive_a_reconnect(app, sockets, prechat_inbox, agent):
    sockets.agent(agent)
    first = sockets.visitor(prechat_inbox)
    token = hello(first)["token"]
    assert identify(first, name="鈴木 一郎", email="suzuki@example.jp")["ok"]
    first.disconnect(namespace=NS)  # a reload, or the next page of the shop, before saying anything

    again = sockets.visitor(prechat_inbox, token=token)
    r = hello(again)
    assert r["prechat"] is False and r["email_known"] is True
    assert say(again, "在庫はありますか")["ok"]
    contact = db.session.scalar(select(Contact))
    assert (contact.name, contact.email, contact.display_name) == ("鈴木 一郎", "suzuki@example.jp", "鈴木 一郎")


def test_an_anonymous_form_does_not_rewrite_a_known_customer(app, sockets, prechat_inbox, agent):
    sockets.agent(agent)
    c = sockets.visitor(prechat_inbox)
    token = hello(c)["token"]
    identify(c, name="鈴木", email="suzuki@example.jp")
    again = sockets.visitor(prechat_inbox, token=token)
    hello(again)
    assert identify(again, name="別人", email="other@example.jp")["ok"]
    contact = db.session.scalar(select(Contact))
    assert (contact.name, contact.email) == ("鈴木", "suzuki@example.jp")


def test_the_offline_email_also_outlives_the_socket(app, sockets, chat_inbox):
    c = sockets.visitor(chat_inbox)
    token = hello(c)["token"]
    assert identify(c, email="kyaku@example.jp")["ok"]
    c.disconnect(namespace=NS)
    again = sockets.visitor(chat_inbox, token=token)
    assert hello(again)["email_known"] is True
    assert say(again, "誰かいますか")["ok"]


# ---- allowed origins ---------------------------------------------------------------------------

@pytest.mark.parametrize("listed, ancestors", [
    (["shop.example.jp"], "'none'"),  # no scheme: no site, and never "any site"
    (["*"], "'none'"),
    (["https://shop.example.jp/path", "javascript:alert(1)", "https://a b"], "'none'"),
    ([42, None], "'none'"),
    ("https://shop.example.jp", "https://shop.example.jp"),
    ({"site": "https://shop.example.jp"}, "'none'"),
    (["https://shop.example.jp/", "http://localhost:8080", "https://shop.example.jp"],
     "https://shop.example.jp http://localhost:8080"),
    (["https://shop.example.jp:99999"], "'none'"),
    ([], "*"),
])
def test_allowed_origins_fail_closed(client, listed, ancestors, caplog):
    caplog.set_level(logging.WARNING)
    inbox = f.inbox(kind="chat", settings={"allowed_origins": listed})
    csp = client.get(f"/widget/frame/{inbox.key}").headers["Content-Security-Policy"]
    assert csp.endswith(f"frame-ancestors {ancestors}")
    assert ("not origins ignored" in caplog.text) == (ancestors == "'none'")


@pytest.fixture
def admin_client(app, client):
    login(client, f.agent(role=Role.admin).email)
    return client


def save_settings(client, inbox: Inbox, settings, lang="ja"):
    path = f"/admin/inboxes/{inbox.id}"
    client.get(f"{path}?lang={lang}")
    return client.post(path, data={"name": inbox.name, "settings": json.dumps(settings), "active": "y",
                                   "csrf_token": csrf_token(client, path)})


@pytest.mark.parametrize("lang, words", [
    ("ja", ["allowed_origins", "サイトとして読めない値があります: shop.example.jp", "https://shop.example.jp"]),
    ("en", ["allowed_origins: not a site: shop.example.jp", "http(s)://host", "An empty list allows every site."]),
])
def test_admin_form_refuses_an_origin_that_is_no_site(app, admin_client, lang, words):
    inbox = f.inbox(kind="chat", settings={"title": "サポート"})
    r = save_settings(admin_client, inbox, {"title": "サポート", "allowed_origins": ["shop.example.jp"]}, lang)
    page = r.get_data(as_text=True)
    assert r.status_code == 400 and all(w in page for w in words), page
    db.session.expire_all()
    assert db.session.get(Inbox, inbox.id).settings == {"title": "サポート"}


def test_admin_form_refuses_origins_that_are_not_a_list(app, admin_client):
    inbox = f.inbox(kind="chat")
    r = save_settings(admin_client, inbox, {"allowed_origins": "https://shop.example.jp"})
    assert r.status_code == 400 and "サイトのリストで指定してください" in r.get_data(as_text=True)


def test_admin_form_keeps_valid_origins(app, admin_client):
    inbox = f.inbox(kind="chat")
    listed = ["https://shop.example.jp", "http://localhost:8080/"]
    assert save_settings(admin_client, inbox, {"allowed_origins": listed}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Inbox, inbox.id).settings == {"allowed_origins": listed}
    assert save_settings(admin_client, inbox, {"allowed_origins": []}).status_code == 302


# ---- what the visitor typed reaches the desk as typed --------------------------------------------

CODER, FAMILY = "\U0001f468\u200d\U0001f4bb", "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # 👨‍💻 👨‍👩‍👧


def test_joined_emoji_survive_in_names_and_file_names(app, client, sockets, chat_inbox, agent):
    sockets.agent(agent)
    c = sockets.visitor(chat_inbox, name=f"{CODER} 田中")
    pass_ = hello(c)["pass"]
    assert say(c, "こんにちは")["ok"]
    assert db.session.scalar(select(Contact)).name == f"{CODER} 田中"
    r = client.post("/widget/api/upload", headers={"X-Widget-Pass": pass_},
                    data={"file": (io.BytesIO(PNG), f"{FAMILY}家族\u2764\ufe0f.png"), "client_id": "upload-0002"},
                    content_type="multipart/form-data")
    assert r.status_code == 201, r.json
    assert r.json["message"]["attachments"][0]["filename"] == f"{FAMILY}家族\u2764\ufe0f.png"


@pytest.mark.parametrize("given,shown", [
    ("\u202eexe.png", "exe.png"),  # right-to-left override: "gnp.exe" on screen
    ("田\u200b中\ufeff", "田中"),  # zero-width space, BOM
    ("a\u200db", "ab"),  # a joiner between letters joins no emoji
    (f"{CODER}\u200d", CODER),  # nor one left dangling
    ("\u2066田中\u2069", "田中"),  # bidi isolates
])
def test_invisible_and_bidi_characters_are_still_removed_from_names(app, sockets, chat_inbox, agent, given, shown):
    sockets.agent(agent)
    c = sockets.visitor(chat_inbox, name=given)
    hello(c)
    assert say(c, "質問です")["ok"]
    assert db.session.scalar(select(Contact)).name == shown


def test_a_lone_carriage_return_is_a_new_line(app, sockets, chat_inbox, agent):
    sockets.agent(agent)
    c = sockets.visitor(chat_inbox)
    hello(c)
    assert say(c, "一行目\r二行目\r\n三行目\r\r五行目")["ok"]
    assert db.session.scalar(select(Message)).body == "一行目\n二行目\n三行目\n\n五行目"
