"""Two agents on one ticket page, canned replies with odd names, and the reply box after sending,
in headless Chromium."""

from __future__ import annotations

import pytest
import requests

from helpdesk.extensions import db
from helpdesk.models import CannedReply, Status, Ticket
from helpdesk.services.tickets import update_ticket
from tests import factories as f
from tests.live import chromium, live_server, open_desk_page

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread", SENTIMENT_ENABLED=False)]


def _new_ticket(server, token: str, name: str = "佐藤") -> int:
    resp = requests.post(server.url + "/api/v1/messages", headers={"Authorization": f"Bearer {token}"},
                         json={"external_id": "q-1", "user_id": "cust-1", "name": name, "text": "届きません"})
    return resp.json()["ticket_id"]


def test_saving_tags_while_a_colleague_assigns_keeps_their_change(app, tmp_path):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    colleague = f.agent(inboxes=[inbox], name="同僚")
    token = f.api_token(inbox)
    with live_server(app) as server, chromium() as browser:
        ticket_id = _new_ticket(server, token)
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.goto(f"{server.url}/agent/tickets/{ticket_id}")
        page.wait_for_selector("body[data-live=ready]")
        page.click("#tags")  # the agent is typing in the form: the page leaves it alone
        page.keyboard.type("返金")
        update_ticket(db.session.get(Ticket, ticket_id), colleague, assignee_id=colleague.id, status="pending")
        page.wait_for_function("() => document.querySelector('.assignee-name').textContent === '同僚'",
                               timeout=10000)
        assert page.input_value("#assignee") == ""  # still as the agent's form showed it
        page.click("#props button[type=submit]")
        page.wait_for_load_state()
        page.wait_for_selector("body[data-live=ready]")
        db.session.expire_all()
        t = db.session.get(Ticket, ticket_id)
        assert [tag.name for tag in t.tags] == ["返金"]
        assert (t.assignee_id, t.status) == (colleague.id, Status.pending)
        assert page.input_value("#assignee") == str(colleague.id)
        # Out of the form, a colleague's change moves the form (and what it is compared with) along.
        update_ticket(db.session.get(Ticket, ticket_id), colleague, assignee_id=agent.id, tags=["返金", "至急"])
        page.wait_for_function(f"() => document.querySelector('#was-assignee').value === '{agent.id}'",
                               timeout=10000)
        assert page.input_value("#assignee") == str(agent.id)
        assert page.input_value("#tags") == page.input_value("#was-tags") == "至急, 返金"
        page.select_option("#priority", "high")
        page.click("#props button[type=submit]")
        page.wait_for_load_state()
        page.wait_for_selector("body[data-live=ready]")
        db.session.expire_all()
        t = db.session.get(Ticket, ticket_id)
        assert (t.priority.value, t.assignee_id, [tag.name for tag in t.tags]) == ("high", agent.id, ["至急", "返金"])
        assert page.errors == []


def test_canned_reply_puts_a_customer_name_in_as_written_and_send_returns_to_the_box(app, tmp_path):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    db.session.add(CannedReply(shortcut="hi", title="挨拶", body="{customer} 様、担当の{agent}です。#{ticket}"))
    db.session.commit()
    token = f.api_token(inbox)
    name = "<b>$&山田$' {ticket}</b>"
    with live_server(app) as server, chromium() as browser:
        ticket_id = _new_ticket(server, token, name=name)
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.goto(f"{server.url}/agent/tickets/{ticket_id}")
        page.wait_for_selector("body[data-live=ready]")
        assert page.inner_text(".contact-card .contact-name a") == name  # text, not markup
        page.select_option("#canned", index=1)
        assert page.input_value("#reply-body") == f"{name} 様、担当の田中です。#{ticket_id}"
        page.click("#send-reply")
        page.wait_for_function("() => document.querySelector('#reply-body').value === ''"
                               " && !document.querySelector('#send-reply').disabled", timeout=10000)
        # Focus goes back to the reply box, not lost on the page after the click on Send.
        assert page.evaluate("() => document.activeElement.id") == "reply-body"
        assert page.locator("#thread .msg.dir-out .body").last.inner_text() == f"{name} 様、担当の田中です。#{ticket_id}"
        assert page.errors == []
