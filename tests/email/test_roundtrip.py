"""The whole email loop with real servers: Dovecot -> desk -> agent (Socket.IO) -> reply
over SMTP (aiosmtpd) -> the customer's answer threads back into the same ticket."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from sqlalchemy import select

from helpdesk.extensions import db, socketio
from helpdesk.models import Delivery, Direction, Message, Ticket
from helpdesk.services import mailbox as mb
from helpdesk.services.replies import post_reply
from tests import factories as f
from tests.conftest import login
from tests.email.conftest import email_inbox

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def desk(app, client, mailbox, smtp_server):
    server, user, password, imap_settings, secrets = mailbox
    sink, smtp_settings = smtp_server
    inbox = email_inbox({**imap_settings, **smtp_settings, "from_address": user, "from_name": "サポート窓口"},
                        secrets)
    agent = f.agent(inboxes=[inbox], name="佐藤 健")
    login(client, agent.email)
    sio = socketio.test_client(app, namespace="/agent", flask_test_client=client)
    assert sio.is_connected("/agent")
    yield server, user, password, inbox, agent, sink, sio
    sio.disconnect(namespace="/agent")


def events(sio, name):
    return [e["args"][0] for e in sio.get_received("/agent") if e["name"] == name]


def test_mail_reply_and_customer_answer_make_one_thread(desk):
    server, user, password, inbox, agent, sink, sio = desk

    # 1. The customer's mail arrives in the mailbox; the poll puts it in the desk, live.
    server.append(user, password, (FIXTURES / "outlook_iso2022jp_nec.eml").read_bytes())
    assert mb.poll_inbox(inbox).imported == 1
    created = events(sio, "message.created")
    assert [m["body"] for m in created] == [
        "お世話になっております。\n㈱山田商事の山田です。\n\n①注文番号：Ⅱ-1234\n②お届け日：11月3日～5日\n\nよろしくお願いいたします。"]
    ticket = db.session.scalars(select(Ticket)).one()
    assert ticket.reply_to == "taro@yamada-shoji.co.jp"

    # 2. The agent answers; the reply leaves over SMTP, correctly formed.
    reply = post_reply(ticket, agent, "山田様\n\nご注文①の件、承知いたしました。")
    db.session.refresh(reply)
    assert reply.delivery is Delivery.sent and reply.delivery_error is None
    (got,) = sink.messages
    assert got["rcpt_tos"] == ["taro@yamada-shoji.co.jp"] and got["mail_from"] == user
    mail = sink.parsed()
    assert mail["Message-ID"] == reply.external_id
    assert mail["In-Reply-To"] == "<000001da0000$00000000$00000000@yamada-shoji.co.jp>"
    assert "<000001da0000$00000000$00000000@yamada-shoji.co.jp>" in mail["References"]
    assert str(mail["Subject"]) == f"Re: 【至急】㈱山田商事 注文①の件 [#{ticket.id}]"
    assert mail["From"].addresses[0].display_name == "サポート窓口"
    body = mail.get_content().replace("\r\n", "\n")
    assert body.startswith("山田様\n\nご注文①の件、承知いたしました。\n\n"
                           "2026年11月1日(日) 10:00 山田 太郎（㈱山田商事） <taro@yamada-shoji.co.jp>:\n"
                           "> お世話になっております。\n")
    updated = events(sio, "message.updated")
    assert updated[-1]["id"] == reply.id and updated[-1]["delivery"] == "sent"

    # 3. The customer answers that mail (headers point at our Message-ID): same ticket.
    subject = "=?UTF-8?B?" + base64.b64encode(f"RE: {mail['Subject']}".encode()).decode() + "?="
    answer = (
        "From: =?UTF-8?B?5bGx55SwIOWkqumDjg==?= <taro@yamada-shoji.co.jp>\r\n"
        f"To: {user}\r\n"
        f"Subject: {subject}\r\n"
        "Message-ID: <answer.1@yamada-shoji.co.jp>\r\n"
        f"In-Reply-To: {reply.external_id}\r\n"
        f"References: <000001da0000$00000000$00000000@yamada-shoji.co.jp> {reply.external_id}\r\n"
        "Date: Mon, 2 Nov 2026 09:00:00 +0900\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "ありがとうございました。\r\n\r\n"
        "-----Original Message-----\r\nFrom: サポート窓口\r\n> 山田様\r\n"
    ).encode()
    server.append(user, password, answer)
    assert mb.poll_inbox(inbox).imported == 1
    last = db.session.scalars(select(Message).where(Message.direction == Direction.inbound)
                              .order_by(Message.id.desc())).first()
    assert last.ticket_id == ticket.id
    assert last.body == "ありがとうございました。"
    assert last.quoted.startswith("-----Original Message-----")
    assert db.session.scalars(select(Ticket)).all() == [ticket]


def test_the_inbox_signature_is_shown_to_the_agent_and_sent_under_the_reply(desk, client):
    server, user, password, inbox, agent, sink, sio = desk
    inbox.settings = {**inbox.settings, "signature": "株式会社サンプル <サポート>\n担当: {agent}"}
    db.session.commit()
    server.append(user, password, (FIXTURES / "docomo_sjis.eml").read_bytes())
    assert mb.poll_inbox(inbox).imported == 1
    ticket = db.session.scalars(select(Ticket)).one()
    page = client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    preview = page.split('id="signature-preview"')[1].split("</details>")[0]
    assert "株式会社サンプル &lt;サポート&gt;\n担当: 佐藤 健" in preview  # escaped, with the agent's name
    reply = post_reply(ticket, agent, "ご連絡ありがとうございます。")
    db.session.refresh(reply)
    assert reply.delivery is Delivery.sent and reply.body == "ご連絡ありがとうございます。"  # stored as written
    body = sink.parsed().get_content().replace("\r\n", "\n")
    assert body.startswith("ご連絡ありがとうございます。\n\n株式会社サンプル <サポート>\n担当: 佐藤 健\n\n")


def test_permanent_smtp_refusal_is_shown_on_the_message(desk):
    server, user, password, inbox, agent, sink, sio = desk
    server.append(user, password, (FIXTURES / "docomo_sjis.eml").read_bytes())
    mb.poll_inbox(inbox)
    ticket = db.session.scalars(select(Ticket)).one()
    sink.fail_rcpt_with = "550 5.1.1 User unknown"
    reply = post_reply(ticket, agent, "ご確認ください。")
    db.session.refresh(reply)
    assert reply.delivery is Delivery.failed
    assert "550" in reply.delivery_error and "User unknown" in reply.delivery_error
    assert reply.delivery_attempts == 1


def test_transient_smtp_errors_are_retried_then_marked_failed(desk, app):
    server, user, password, inbox, agent, sink, sio = desk
    server.append(user, password, (FIXTURES / "softbank_no_charset.eml").read_bytes())
    mb.poll_inbox(inbox)
    ticket = db.session.scalars(select(Ticket)).one()
    sink.fail_with = "451 4.3.0 Try again later"
    reply = post_reply(ticket, agent, "ご確認ください。")
    db.session.refresh(reply)
    assert reply.delivery is Delivery.failed and "451" in reply.delivery_error
    assert reply.delivery_attempts == app.config["SEND_MAX_ATTEMPTS"]


def test_hostile_names_and_bodies_are_escaped_in_the_agent_view(desk, client):
    server, user, password, inbox, agent, sink, sio = desk
    server.append(user, password, (FIXTURES / "hostile_html_name.eml").read_bytes())
    mb.poll_inbox(inbox)
    ticket = db.session.scalars(select(Ticket)).one()
    html = client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "<script>alert(3)</script>" not in html
    assert "<img src=x onerror=alert(2)>" not in html
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in html or "\\u003cscript\\u003ealert(3)" in html


def test_attachments_are_listed_and_downloadable_for_the_agent(desk, client):
    from tests.email import make_fixtures

    server, user, password, inbox, agent, sink, sio = desk
    server.append(user, password, (FIXTURES / "multipart_attachments.eml").read_bytes())
    mb.poll_inbox(inbox)
    msg = db.session.scalars(select(Message)).one()
    html = client.get(f"/agent/tickets/{msg.ticket_id}").get_data(as_text=True)
    assert "請求書.pdf" in html and "㈱写真.png" in html
    resp = client.get(f"/agent/attachments/{msg.id}/0")
    try:
        assert resp.status_code == 200 and resp.data == make_fixtures.PDF_BYTES
        assert resp.headers["Content-Disposition"].startswith("attachment")
    finally:
        resp.close()


def test_customer_quoted_text_is_available_on_demand(desk, client):
    server, user, password, inbox, agent, sink, sio = desk
    server.append(user, password, (FIXTURES / "gmail_utf8_reply.eml").read_bytes())
    mb.poll_inbox(inbox)
    msg = db.session.scalars(select(Message)).one()
    data = client.get(f"/agent/messages/{msg.id}/quoted").get_json()
    assert data["quoted"].startswith("2026年11月1日(日) 10:05 サポート <support@example.jp>:")


def test_bounce_of_a_reply_marks_it_failed_live_and_opens_no_ticket(desk):
    from tests.email import make_fixtures

    server, user, password, inbox, agent, sink, sio = desk
    server.append(user, password, (FIXTURES / "docomo_sjis.eml").read_bytes())
    mb.poll_inbox(inbox)
    ticket = db.session.scalars(select(Ticket)).one()
    reply = post_reply(ticket, agent, "ご確認ください。")
    db.session.refresh(reply)
    assert reply.delivery is Delivery.sent
    sio.get_received("/agent")

    # The customer's server accepted the mail, then returned it.
    server.append(user, password, make_fixtures.dsn(reply.external_id))
    report = mb.poll_inbox(inbox)
    assert (report.imported, report.dropped) == (0, 1)
    db.session.expire_all()
    assert reply.delivery is Delivery.failed
    assert reply.delivery_error == ("bounced: taro@customer.jp: 550 5.1.1 <taro@customer.jp>: "
                                    "Recipient address rejected: User unknown")
    (updated,) = events(sio, "message.updated")
    assert updated["id"] == reply.id and updated["delivery"] == "failed"
    assert db.session.scalars(select(Ticket)).all() == [ticket]
    assert len(db.session.scalars(select(Message)).all()) == 2
    assert mb.poll_inbox(inbox).dropped == 0  # marked done in the mailbox like any imported mail
