"""Socket.IO /agent namespace: authentication, inbox rooms, presence and typing."""

from __future__ import annotations

import pytest

from helpdesk.extensions import socketio
from helpdesk.services.ingest import ingest
from helpdesk.services.replies import post_reply
from helpdesk.services.tickets import update_ticket
from tests import factories as f
from tests.conftest import login


def connect(app, client):
    sio = socketio.test_client(app, namespace="/agent", flask_test_client=client)
    assert sio.is_connected("/agent")
    return sio


def events(sio, name=None):
    got = sio.get_received("/agent")
    return [e for e in got if name is None or e["name"] == name]


def test_anonymous_socket_is_refused(app, client):
    sio = socketio.test_client(app, namespace="/agent", flask_test_client=client)
    assert not sio.is_connected("/agent")


def test_agent_receives_only_their_inboxes(app, client):
    mine, other = f.inbox(), f.inbox()
    agent = f.agent(inboxes=[mine])
    login(client, agent.email)
    sio = connect(app, client)
    ingest(mine, f.inbound(user_id="a", text="見える"))
    ingest(other, f.inbound(user_id="b", text="見えない"))
    created = events(sio, "message.created")
    assert [e["args"][0]["body"] for e in created] == ["見える"]
    assert created[0]["args"][0]["event_id"] > 0


def test_supervisor_sees_every_inbox(app, client):
    a, b = f.inbox(), f.inbox()
    sup = f.agent(role="supervisor")
    login(client, sup.email)
    sio = connect(app, client)
    ingest(a, f.inbound(user_id="a"))
    ingest(b, f.inbound(user_id="b"))
    assert len(events(sio, "message.created")) == 2


def test_colleague_change_arrives_live(app, client):
    inbox = f.inbox()
    me, colleague = f.agent(inboxes=[inbox]), f.agent(inboxes=[inbox], name="同僚")
    ticket = ingest(inbox, f.inbound()).message.ticket
    login(client, me.email)
    sio = connect(app, client)
    update_ticket(ticket, colleague, status="pending", assignee_id=colleague.id)
    got = events(sio)
    names = [e["name"] for e in got]
    assert "ticket.updated" in names and "ticket.assigned" in names
    upd = next(e for e in got if e["name"] == "ticket.updated")["args"][0]
    assert upd["status"] == "pending" and upd["changed_by"]["name"] == "同僚"


def test_reply_and_delivery_arrive_live(app, client):
    inbox = f.inbox()
    me, colleague = f.agent(inboxes=[inbox]), f.agent(inboxes=[inbox])
    ticket = ingest(inbox, f.inbound()).message.ticket
    login(client, me.email)
    sio = connect(app, client)
    post_reply(ticket, colleague, "対応します")
    got = events(sio)
    created = [e["args"][0] for e in got if e["name"] == "message.created"]
    updated = [e["args"][0] for e in got if e["name"] == "message.updated"]
    assert created[0]["delivery"] == "pending" and updated[-1]["delivery"] == "sent"


def test_presence_and_typing_in_ticket_room(app):
    inbox = f.inbox()
    a, b = f.agent(inboxes=[inbox], name="Aさん"), f.agent(inboxes=[inbox], name="Bさん")
    ticket = ingest(inbox, f.inbound()).message.ticket
    ca, cb = app.test_client(), app.test_client()
    login(ca, a.email)
    login(cb, b.email)
    sa, sb = connect(app, ca), connect(app, cb)
    assert sa.emit("view_ticket", {"ticket_id": ticket.id}, namespace="/agent", callback=True) == {"ok": True}
    sb.emit("view_ticket", {"ticket_id": ticket.id}, namespace="/agent", callback=True)
    presence = [e["args"][0] for e in sa.get_received("/agent") if e["name"] == "presence.updated"]
    assert {v["name"] for v in presence[-1]["viewers"]} == {"Aさん", "Bさん"}
    sb.emit("typing", {"ticket_id": ticket.id, "typing": True}, namespace="/agent", callback=True)
    typing = [e["args"][0] for e in sa.get_received("/agent") if e["name"] == "agent.typing"]
    assert typing and typing[0]["agent"]["name"] == "Bさん"
    # the typist does not hear their own typing
    assert not [e for e in sb.get_received("/agent") if e["name"] == "agent.typing"]


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_cannot_join_room_of_invisible_ticket(app, client):
    mine, other = f.inbox(), f.inbox()
    agent = f.agent(inboxes=[mine])
    hidden = ingest(other, f.inbound()).message.ticket
    login(client, agent.email)
    sio = connect(app, client)
    ack = sio.emit("view_ticket", {"ticket_id": hidden.id}, namespace="/agent", callback=True)
    assert ack == {"ok": False, "error": "not found"}
    assert sio.emit("view_ticket", {"ticket_id": "junk"}, namespace="/agent", callback=True)["ok"] is False
    # past the id columns' range: PostgreSQL failed the lookup, and the handler with it (no answer)
    for number in (2**31, 10**20, 0, -1):
        ack = sio.emit("view_ticket", {"ticket_id": number}, namespace="/agent", callback=True)
        assert ack == {"ok": False, "error": "not found"}


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_missed_events_after_reconnect(app, client):
    inbox = f.inbox()
    agent = f.agent(inboxes=[inbox])
    login(client, agent.email)
    sio = connect(app, client)
    ingest(inbox, f.inbound(user_id="a", text="接続中"))
    last_seen = events(sio, "message.created")[-1]["args"][0]["event_id"]
    sio.disconnect(namespace="/agent")
    ingest(inbox, f.inbound(user_id="a", text="切断中1"))
    ingest(inbox, f.inbound(user_id="b", text="切断中2"))
    sio = connect(app, client)
    missed = client.get(f"/api/v1/events?since={last_seen}").json["events"]
    assert [e["payload"]["body"] for e in missed if e["name"] == "message.created"] == ["切断中1", "切断中2"]
    assert missed[0]["event_id"] == last_seen + 1


def test_events_of_a_rolled_back_change_are_neither_stored_nor_sent(app, client):
    from sqlalchemy import func, select

    from helpdesk.extensions import db
    from helpdesk.models import Event
    from helpdesk.realtime import events as ev

    inbox = f.inbox()
    agent = f.agent(inboxes=[inbox])
    login(client, agent.email)
    sio = connect(app, client)
    before = db.session.scalar(select(func.count(Event.id)))
    ev.publish(ev.TICKET_UPDATED, {"id": 1}, inbox_id=inbox.id, ticket_id=1)
    db.session.rollback()
    assert db.session.scalar(select(func.count(Event.id))) == before
    assert events(sio) == []
    ev.publish(ev.TICKET_UPDATED, {"id": 2}, inbox_id=inbox.id, ticket_id=2)
    db.session.commit()
    (sent,) = events(sio, ev.TICKET_UPDATED)
    assert sent["args"][0]["id"] == 2
    assert sent["args"][0]["event_id"] == db.session.scalar(select(func.max(Event.id)))


def test_an_event_alone_takes_the_sqlite_writer_lock_until_commit(app):
    """Events are plain INSERTs, not flushed objects: they must queue on the same lock as a
    flush, or a second writer meets SQLITE_BUSY and sleeps in its busy handler."""
    import threading

    from helpdesk import sqlite_writes
    from helpdesk.extensions import db
    from helpdesk.realtime import events as ev

    inbox = f.inbox()
    db.session.commit()

    def lock_is_free() -> bool:
        result = []

        def probe():  # another thread: the lock is re-entrant for its holder
            got = sqlite_writes._lock.acquire(blocking=False)
            if got:
                sqlite_writes._lock.release()
            result.append(got)

        t = threading.Thread(target=probe)
        t.start()
        t.join()
        return result[0]

    assert lock_is_free()
    ev.publish(ev.TICKET_UPDATED, {"id": 1}, inbox_id=inbox.id, ticket_id=1)
    assert not lock_is_free()
    db.session.commit()
    assert lock_is_free()


@pytest.mark.config(SENTIMENT_ENABLED=False)
def test_events_name_the_customer_for_open_ticket_pages(app, client):
    """What desk.js needs to keep a ticket page's customer history and name live: a message's
    event carries its ticket with the customer's id, and a rename sends the new name."""
    from helpdesk.services.tickets import update_contact

    inbox = f.inbox()
    agent = f.agent(inboxes=[inbox])
    first = ingest(inbox, f.inbound(user_id="masaki", display_name="まさき")).message
    contact = first.ticket.contact
    login(client, agent.email)
    sio = connect(app, client)
    ingest(inbox, f.inbound(user_id="masaki", text="追記です", new_thread=True))
    (created,) = [p["args"][0] for p in events(sio, "message.created")]
    assert first.contact_id and created["ticket"]["contact"]["id"] == first.contact_id
    assert created["ticket_id"] != first.ticket_id
    update_contact(contact, agent, name="山本 正樹", email=None, phone=None, note="")
    renamed = [e["args"][0] for e in events(sio, "ticket.updated")]
    assert {p["id"] for p in renamed} == {first.ticket_id, created["ticket_id"]}  # each open ticket of theirs
    assert all(p["contact"] == {"id": first.contact_id, "name": "山本 正樹"} for p in renamed)


@pytest.mark.parametrize("others", [0, 1])
def test_a_page_that_left_before_its_view_was_handled_is_no_error(app, client, others):
    """Socket.IO runs each event on a thread of its own: a browser that moves on to the next
    page can be gone by the time its view_ticket is handled. Joining the ticket's room then
    raised in that thread (ValueError with no socket left on /agent, KeyError with others)."""
    from flask import request
    from flask_login import login_user

    from helpdesk.realtime.agent_ns import AgentNamespace

    inbox = f.inbox()
    agent = f.agent(inboxes=[inbox])
    ticket = ingest(inbox, f.inbound(user_id="a")).message.ticket
    if others:
        login(client, agent.email)
        connect(app, client)  # another tab stays
    with app.test_request_context():
        request.sid, request.namespace = "gone-sid", "/agent"
        login_user(agent)
        assert AgentNamespace("/agent").on_view_ticket({"ticket_id": ticket.id}) == \
            {"ok": False, "error": "disconnected"}
