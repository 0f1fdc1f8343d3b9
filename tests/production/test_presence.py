"""Presence across real processes: two gunicorn servers and an RQ worker share who is
connected through Redis ("X is viewing", agents online for the widget, visitor online)."""

from __future__ import annotations

import email
import uuid
from email import policy

import psycopg
import pytest
import socketio

from tests.conftest import pg_available
from tests.procs import Cluster, agent_session, agent_socket, redis_available, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    """One cluster for the module: servers one and two, a worker, a chat inbox whose email
    copies go by real SMTP to a sink, and a second agent (Bさん) who sees every inbox used."""
    if not (pg_available() and redis_available()):
        pytest.skip("needs PostgreSQL and Redis")
    from tests.live import smtp_sink

    with smtp_sink() as (sink, smtp_port), \
            Cluster(tmp_path_factory.mktemp("presence"), SENTIMENT_ENABLED="false") as cluster:
        ids = cluster.setup()
        out = cluster.python(
            "from helpdesk import create_app\nfrom helpdesk.extensions import db\n"
            "from helpdesk.models import Agent, Inbox, Role\napp = create_app()\nwith app.app_context():\n"
            "    mail = Inbox(name='mail', kind='email', settings={'address': 'support@shop.example',"
            f" 'smtp_host': '127.0.0.1', 'smtp_port': {smtp_port}, 'smtp_security': 'plain', 'smtp_timeout': 5}})\n"
            "    db.session.add(mail); db.session.flush()\n"
            "    chat = Inbox(name='chat', kind='chat', settings={'email_inbox_id': mail.id})\n"
            "    b = Agent(email='b@example.com', name='Bさん', role=Role.agent); b.set_password('b-password')\n"
            "    db.session.add_all([chat, b])\n"
            f"    for inbox in (chat, db.session.get(Inbox, {ids['inbox_id']})):\n"
            "        inbox.members.append(b)\n"
            "    db.session.commit()\n"
            "    print(chat.id, chat.key, mail.id)\n")
        chat_id, chat_key, mail_id = out.split()[-3:]
        ids.update(chat_id=int(chat_id), chat_key=chat_key, mail_id=int(mail_id), sink=sink)
        cluster.ids = ids
        cluster.one, cluster.two = cluster.start_web(), cluster.start_web()
        cluster.start_worker()
        yield cluster


def sql(cluster, query: str, *params):
    with psycopg.connect(cluster.db_url) as conn:
        return conn.execute(query, params).fetchall()


def visitor(url: str, chat_key: str, received: list, **auth) -> socketio.Client:
    client = socketio.Client(reconnection=False)
    client.on("*", lambda event, data: received.append((event, data)), namespace="/widget")
    client.connect(url, namespaces=["/widget"], auth={"inbox": chat_key, **auth}, transports=["websocket"])
    return client


def call(client: socketio.Client, event: str, data=None) -> dict:
    return client.call(event, data or {}, namespace="/widget", timeout=20)


def test_agents_on_two_servers_see_each_other_viewing_a_ticket(desk):
    import requests

    r = requests.post(desk.one + "/api/v1/messages", headers={"Authorization": f"Bearer {desk.ids['token']}"},
                      json={"external_id": "presence-1", "user_id": "cust", "text": "配送状況を教えてください"})
    ticket_id = r.json()["message"]["ticket_id"]
    seen_by_a: list = []
    seen_by_b: list = []
    a = agent_socket(desk.one, agent_session(desk.one, "e2e@example.com", "e2e-password"), seen_by_a)
    b = agent_socket(desk.two, agent_session(desk.two, "b@example.com", "b-password"), seen_by_b)

    def viewers_b_saw():
        return [sorted(v["name"] for v in d["viewers"]) for e, d in seen_by_b
                if e == "presence.updated" and d["ticket_id"] == ticket_id]

    try:
        assert a.call("view_ticket", {"ticket_id": ticket_id}, namespace="/agent", timeout=20)["ok"]
        assert b.call("view_ticket", {"ticket_id": ticket_id}, namespace="/agent", timeout=20)["ok"]
        assert wait_until(lambda: ["Bさん", "E2E"] in viewers_b_saw(), 20), viewers_b_saw()
        a.disconnect()
        assert wait_until(lambda: viewers_b_saw()[-1] == ["Bさん"], 20), viewers_b_saw()
    finally:
        a.disconnect()
        b.disconnect()


def test_a_visitor_on_server_two_is_told_an_agent_on_server_one_is_online(desk):
    received: list = []
    v = visitor(desk.two, desk.ids["chat_key"], received)
    try:
        assert wait_until(lambda: call(v, "hello")["agents_online"] is False, 20)
        a = agent_socket(desk.one, agent_session(desk.one, "e2e@example.com", "e2e-password"), [])
        assert wait_until(lambda: call(v, "presence")["agents_online"] is True, 20)
        a.disconnect()
        assert wait_until(lambda: call(v, "presence")["agents_online"] is False, 20)
    finally:
        v.disconnect()


def reply(desk, ticket_id: int, text: str) -> int:
    """An agent's reply stored by a separate process; the worker sends it (HELPDESK_JOBS=rq)."""
    out = desk.python(
        "from helpdesk import create_app\nfrom helpdesk.extensions import db\n"
        "from helpdesk.models import Agent, Ticket\nfrom helpdesk.services.replies import post_reply\n"
        "from sqlalchemy import select\napp = create_app()\nwith app.app_context():\n"
        "    agent = db.session.scalar(select(Agent).where(Agent.email == 'b@example.com'))\n"
        f"    print(post_reply(db.session.get(Ticket, {ticket_id}), agent, {text!r}).id)\n")
    return int(out.split()[-1])


def test_the_worker_emails_a_reply_only_to_a_visitor_who_has_left(desk):
    from channels.chat import anonymous_key
    from helpdesk.realtime.presence import Presence
    from tests.procs import REDIS_URL

    received: list = []
    token = uuid.uuid4().hex
    v = visitor(desk.two, desk.ids["chat_key"], received, token=token)
    try:
        assert call(v, "hello")["token"] == token
        said = call(v, "message", {"text": "返品の方法を教えてください", "client_id": uuid.uuid4().hex,
                                   "email": "kyaku@example.jp"})
        assert said["ok"], said
        (ticket_id,) = sql(desk, "select ticket_id from messages where id = %s", said["message"]["id"])[0]

        watched = reply(desk, ticket_id, "返品フォームをお送りします")
        assert wait_until(lambda: any(e == "message.created" and d["id"] == watched for e, d in received), 30)
        assert wait_until(lambda: sql(desk, "select delivery from messages where id = %s", watched)[0][0] == "sent",
                          30)
        (meta,) = sql(desk, "select meta from messages where id = %s", watched)[0]
        assert "visitor_offline" not in meta and "email_copy" not in meta
    finally:
        v.disconnect()

    shared = Presence(REDIS_URL, desk.env["HELPDESK_SOCKETIO_CHANNEL"])
    assert wait_until(lambda: not shared.visitor_online(anonymous_key(token)), 20)
    left = reply(desk, ticket_id, "ご不明な点はメールでどうぞ")
    sink = desk.ids["sink"]
    assert wait_until(lambda: sink.mails(), 60), "no email copy of the reply to the visitor who left"
    copies = sql(desk, "select body from messages where inbox_id = %s and direction = 'outbound'",
                 desk.ids["mail_id"])
    assert copies == [("ご不明な点はメールでどうぞ",)]
    (mail,) = [email.message_from_bytes(m, policy=policy.default) for m in sink.mails()]
    assert mail["To"] == "kyaku@example.jp"
    assert "ご不明な点はメールでどうぞ" in mail.get_body(("plain",)).get_content()
    (meta,) = sql(desk, "select meta from messages where id = %s", left)[0]
    assert meta["visitor_offline"] is True


def set_members(admin, url: str, inbox_id: int, member_ids: list[int]) -> int:
    """The inbox form of /admin/inboxes/<id>, as an admin's browser sends it."""
    import re

    html = admin.get(f"{url}/admin/inboxes/{inbox_id}").text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    name = re.search(r'name="name"[^>]*value="([^"]*)"', html).group(1)
    r = admin.post(f"{url}/admin/inboxes/{inbox_id}", allow_redirects=False, data={
        "csrf_token": token, "name": name, "settings": "{}", "active": "y", "members": [str(i) for i in member_ids]})
    return r.status_code


def test_an_admin_on_server_one_drops_the_page_of_an_agent_on_server_two(desk):
    """Taking Bさん off an inbox through server one disconnects B's socket on server two
    (the disconnect travels through Redis), so B's page reconnects into its new rooms."""
    import threading

    (b_id,), = sql(desk, "select id from agents where email = %s", "b@example.com")
    inbox_id = int(desk.ids["inbox_id"])
    seen: list = []
    b = agent_socket(desk.two, agent_session(desk.two, "b@example.com", "b-password"), seen)
    dropped = threading.Event()
    b.on("disconnect", lambda *reason: dropped.set(), namespace="/agent")
    admin = agent_session(desk.one, "e2e@example.com", "e2e-password")
    try:
        assert set_members(admin, desk.one, inbox_id, []) == 302
        assert dropped.wait(20), "B's socket on server two was not dropped"
        assert sql(desk, "select count(*) from inbox_members where inbox_id = %s", inbox_id) == [(0,)]
    finally:
        b.disconnect()
        assert set_members(admin, desk.one, inbox_id, [b_id]) == 302  # as the other tests found it
