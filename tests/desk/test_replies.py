"""The one outbound path: store pending, send in a job, record the outcome."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from channels import testing as test_channel
from helpdesk.extensions import db
from helpdesk.models import Delivery, Direction, Event, Message, Status
from helpdesk.services.ingest import ingest
from helpdesk.services.replies import ReplyError, deliver, post_reply
from tests import factories as f

pytestmark = pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(autouse=True)
def _clear_sent():
    test_channel.SENT.clear()
    yield
    test_channel.SENT.clear()


def _ticket(**inbox_kw):
    inbox = f.inbox(**inbox_kw)
    agent = f.agent(inboxes=[inbox])
    ticket = ingest(inbox, f.inbound(user_id="U-42")).message.ticket
    return ticket, agent


def test_reply_is_sent_on_the_customers_channel(app):
    ticket, agent = _ticket()
    msg = post_reply(ticket, agent, "お問い合わせありがとうございます。")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent
    assert msg.external_id.startswith("test-out-")
    sent = test_channel.TestingAdapter.delivered()
    assert [(s["recipient"], s["text"]) for s in sent] == [("U-42", "お問い合わせありがとうございます。")]
    assert sent[0]["context"]["last_inbound_external_id"] == ticket_first_external_id(ticket)


def ticket_first_external_id(ticket):
    from helpdesk.models import Message

    return db.session.scalar(select(Message.external_id).where(Message.ticket_id == ticket.id,
                                                                Message.direction == Direction.inbound))


def test_first_reply_sets_first_response_and_assignee(app):
    ticket, agent = _ticket()
    post_reply(ticket, agent, "確認いたします")
    assert ticket.first_response_at is not None
    assert ticket.assignee_id == agent.id
    assert ticket.status is Status.open


def test_private_note_never_leaves_the_desk(app):
    ticket, agent = _ticket()
    note = post_reply(ticket, agent, "経理に確認中", private=True)
    assert note.direction is Direction.note and note.delivery is Delivery.none
    assert test_channel.SENT == []
    assert ticket.first_response_at is None


def test_transient_failure_is_retried_then_sent(app):
    ticket, agent = _ticket(settings={"fail": "transient_once"})
    msg = post_reply(ticket, agent, "再送テスト")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent
    assert msg.delivery_attempts == 2
    assert len(test_channel.TestingAdapter.delivered()) == 1


@pytest.mark.config(SEND_MAX_ATTEMPTS=3)
def test_transient_failure_gives_up_with_error(app):
    ticket, agent = _ticket(settings={"fail": "transient"})
    msg = post_reply(ticket, agent, "届かない")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.failed
    assert msg.delivery_attempts == 3
    assert "busy" in msg.delivery_error


def test_permanent_failure_shown_to_agent(app):
    ticket, agent = _ticket(settings={"fail": "permanent"})
    msg = post_reply(ticket, agent, "ブロックされた")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.failed
    assert msg.delivery_error == "recipient blocked the account"


def test_a_failed_reply_is_explained_in_the_agents_language(app, client):
    """The provider's error is English and technical: the ticket page said only that, to a
    Japanese agent. It now says in Japanese that the customer did not get the message."""
    from tests.conftest import login

    ticket, agent = _ticket(settings={"fail": "permanent"})
    post_reply(ticket, agent, "ブロックされた")
    login(client, agent.email)
    html = client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert "お客様には届いていません" in html
    assert '<span class="detail" lang="en">recipient blocked the account</span>' in html


@pytest.mark.parametrize("status", [Status.resolved, Status.pending])
def test_an_answer_that_fails_for_good_reopens_the_ticket_it_resolved(app, status):
    """"Send and resolve" with a reply that never arrives: the ticket left the open queue while
    the customer got nothing. It comes back as open, live."""
    ticket, agent = _ticket(settings={"fail": "permanent"})
    ticket.status = status
    db.session.commit()
    msg = post_reply(ticket, agent, "解決しましたのでクローズいたします")
    db.session.refresh(msg)
    db.session.refresh(ticket)
    assert msg.delivery is Delivery.failed
    assert ticket.status is Status.open and ticket.resolved_at is None
    ev = db.session.scalars(select(Event).order_by(Event.id.desc())).first()
    assert (ev.name, ev.payload["id"], ev.payload["status"]) == ("ticket.updated", ticket.id, "open")


def test_a_failed_survey_question_leaves_its_ticket_resolved(app):
    ticket, agent = _ticket(settings={"fail": "permanent"})
    ticket.status = Status.resolved
    db.session.commit()
    msg = post_reply(ticket, None, "満足度を教えてください", meta={"survey": {"id": 1, "kind": "csat"}})
    db.session.refresh(msg)
    db.session.refresh(ticket)
    assert msg.delivery is Delivery.failed and ticket.status is Status.resolved


def test_a_reply_answers_the_customer_not_their_out_of_office_mail(app):
    ticket, agent = _ticket()
    customer_id = ticket_first_external_id(ticket)
    ingest(ticket.inbox, f.inbound(user_id="U-42", text="不在にしております。", thread_hints=(customer_id,),
                                   meta={"auto_submitted": "auto-replied"}))
    post_reply(ticket, agent, "ご連絡ありがとうございます")
    (sent,) = test_channel.TestingAdapter.delivered()
    assert sent["context"]["last_inbound_external_id"] == customer_id


def test_deliver_twice_sends_once(app):
    ticket, agent = _ticket()
    msg = post_reply(ticket, agent, "一度だけ")
    deliver(msg.id)
    deliver(msg.id)
    assert len(test_channel.TestingAdapter.delivered()) == 1


@pytest.mark.parametrize("body", ["", "   \n"])
def test_empty_reply_refused(app, body):
    ticket, agent = _ticket()
    with pytest.raises(ReplyError):
        post_reply(ticket, agent, body)


def test_events_for_reply_and_delivery(app):
    ticket, agent = _ticket()
    before = db.session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1))
    post_reply(ticket, agent, "イベント")
    rows = db.session.scalars(select(Event).where(Event.id > before).order_by(Event.id)).all()
    assert [e.name for e in rows] == ["message.created", "message.updated"]
    # The reply's event carries the ticket it changed: opened, answered, assigned to the replier.
    changed = rows[0].payload["ticket"]
    assert changed["status"] == "open" and changed["assignee"]["id"] == agent.id
    assert changed["first_response_at"] is not None
    note = post_reply(ticket, agent, "社内メモ", private=True)
    (ev,) = db.session.scalars(select(Event).where(Event.id > rows[-1].id)).all()
    assert ev.payload["id"] == note.id and "ticket" not in ev.payload  # a note changes no ticket


def test_record_only_reply_is_never_sent(app):
    ticket, agent = _ticket()
    msg = post_reply(ticket, agent, "過去の回答", record_only=True)
    assert msg.delivery is Delivery.sent
    deliver(msg.id)
    assert test_channel.SENT == []


def test_a_reply_is_claimed_and_committed_before_the_provider_is_called(app):
    """No transaction, and no row lock, is held open across a send: on PostgreSQL a session idle
    in a transaction is ended after a minute, and a slow send's result was lost with it (the
    sweep then sent the reply again). A second sender meanwhile sees the claim and sends nothing:
    on SQLite, where there is no row lock, it used to send the reply a second time."""
    import http.server
    import threading

    from sqlalchemy import text

    calls, seen = [], {}
    release = threading.Event()
    engine = db.engine
    postgres = engine.dialect.name == "postgresql"

    class Provider(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls.append(body["message_id"])
            lock = " FOR UPDATE NOWAIT" if postgres else ""
            with engine.connect() as conn:  # another connection, while our send is in flight
                row = conn.execute(text(f"SELECT delivery, send_claimed_until FROM messages WHERE id = :id{lock}"),
                                   {"id": body["message_id"]}).one()
                seen.update(delivery=row[0], claimed=row[1] is not None)
                conn.rollback()
            release.wait(30)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        inbox = f.inbox(kind="api", settings={"callback_url": f"http://127.0.0.1:{server.server_port}/hook"})
        ticket = ingest(inbox, f.inbound(user_id="U-7")).message.ticket
        msg = Message(ticket_id=ticket.id, inbox_id=inbox.id, direction=Direction.outbound, body="お待たせしました",
                      delivery=Delivery.pending)
        db.session.add(msg)
        db.session.commit()
        message_id = msg.id

        def first_sender():
            with app.app_context():
                deliver(message_id)
                db.session.remove()

        sender = threading.Thread(target=first_sender)
        sender.start()
        for _ in range(300):
            if seen:
                break
            time.sleep(0.05)
        assert seen == {"delivery": "pending", "claimed": True}  # committed, and not locked (NOWAIT)
        deliver(message_id)  # a second sender (the sweep) while the first is still sending
        release.set()
        sender.join(30)
        assert calls == [message_id]
        msg = db.session.get(Message, message_id, populate_existing=True)
        assert msg.delivery is Delivery.sent and msg.send_claimed_until is None and msg.delivery_attempts == 1
    finally:
        release.set()
        server.shutdown()
        server.server_close()
