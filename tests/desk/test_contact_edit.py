"""Agents correct a customer's details from the ticket's sidebar."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpdesk.extensions import db, socketio
from helpdesk.models import AuditLog
from helpdesk.services.ingest import ingest
from tests import factories as f
from tests.conftest import csrf_token, login


@pytest.fixture
def desk(app, client):
    inbox = f.inbox()
    agent = f.agent(inboxes=[inbox])
    ticket = ingest(inbox, f.inbound(user_id="U1", display_name="ゆか🌸")).message.ticket
    login(client, agent.email)
    return inbox, agent, ticket


def save(client, ticket, **data):
    form = {"name": "", "email": "", "phone": "", "note": "", "ticket_id": str(ticket.id)}
    form.update(data)
    page = f"/agent/tickets/{ticket.id}"
    return client.post(f"/agent/contacts/{ticket.contact_id}/update", data={**form, "csrf_token": csrf_token(client, page)})


def test_details_saved_shown_audited_and_live(app, client, desk):
    inbox, agent, ticket = desk
    sio = socketio.test_client(app, namespace="/agent", flask_test_client=client)
    sio.get_received("/agent")
    resp = save(client, ticket, name="佐藤 ゆか", email="Yuka@Example.jp", phone="090-1234-5678",
                note="平日の午前中は電話に出られないとのこと\n<script>alert(1)</script>")
    assert resp.status_code == 302 and resp.headers["Location"] == f"/agent/tickets/{ticket.id}"
    html = client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert "佐藤 ゆか" in html and "yuka@example.jp" in html and "090-1234-5678" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "佐藤 ゆか" in client.get("/agent/").get_data(as_text=True)
    updated = [e["args"][0] for e in sio.get_received("/agent") if e["name"] == "ticket.updated"]
    assert [u["contact"]["name"] for u in updated] == ["佐藤 ゆか"]
    (entry,) = db.session.scalars(select(AuditLog)).all()
    assert entry.action == "contact.update" and entry.changes["email"] == "yuka@example.jp"


def test_a_phone_number_in_full_width_digits_is_kept_in_the_usual_form(app, client, desk):
    _, _, ticket = desk
    save(client, ticket, name="ゆか", phone="０９０－１２３４－５６７８")
    db.session.expire_all()
    assert ticket.contact.phone == "090-1234-5678"
    html = client.get("/agent/contacts", query_string={"q": "09012345678"}).get_data(as_text=True)
    assert f'data-contact-id="{ticket.contact_id}"' in html


def test_bad_email_changes_nothing(app, client, desk):
    _, _, ticket = desk
    resp = save(client, ticket, name="変更しない", email="not-an-email")
    assert resp.status_code == 302
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "flash error" in page
    db.session.expire_all()
    assert ticket.contact.name == "ゆか🌸"
    assert db.session.scalars(select(AuditLog)).all() == []


def test_agent_must_see_every_ticket_of_the_customer(app, client, desk):
    _, agent, ticket = desk
    hidden = f.inbox()
    ingest(hidden, f.inbound(user_id="U1"))  # the same LINE-style identity, another inbox
    assert save(client, ticket, name="見えない人").status_code == 403
    db.session.expire_all()
    assert ticket.contact.name == "ゆか🌸"
