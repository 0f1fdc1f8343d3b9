"""The availability switch in the top bar, in headless Chromium: saved without leaving the page,
shown on the agent's other pages, and a waiting ticket comes to an agent back from busy."""

from __future__ import annotations

import pytest

from helpdesk.extensions import db
from helpdesk.models import Agent, Availability, Ticket
from helpdesk.services.ingest import ingest
from tests import factories as f
from tests.live import chromium, live_server, log_in

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread", SENTIMENT_ENABLED=False)]


def test_an_agent_back_from_busy_gets_the_waiting_ticket_on_screen(app, tmp_path):
    inbox = f.inbox(kind="test", settings={"auto_assign": True, "auto_assign_limit": 1})
    agent = f.agent(inboxes=[inbox], name="佐藤", availability=Availability.busy)
    mine = ingest(inbox, f.inbound(user_id="c1", text="見積もりをお願いします")).message.ticket_id
    waiting = ingest(inbox, f.inbound(user_id="c2", text="<b>至急</b> 返品したい😢")).message.ticket_id
    with live_server(app) as server, chromium() as browser:
        context = browser.new_context(locale="ja-JP")  # two tabs of one login
        ticket_page, inbox_page = context.new_page(), context.new_page()
        for page in (ticket_page, inbox_page):
            page.errors = []
            page.on("pageerror", lambda e, page=page: page.errors.append(str(e)))
        log_in(ticket_page, server, agent.email, f.PASSWORD)
        ticket_page.goto(f"{server.url}/agent/tickets/{mine}")
        ticket_page.wait_for_selector("body[data-live=ready]")
        ticket_page.fill("#reply-body", "書きかけの返信")
        inbox_page.goto(f"{server.url}/agent/")
        inbox_page.wait_for_selector("body[data-live=ready]")
        assert inbox_page.input_value("#availability select") == "busy"
        cell = "#tickets tr[data-ticket-id='{}'] td.assignee".format
        assert [inbox_page.inner_text(cell(t)) for t in (mine, waiting)] == ["—", "—"]
        time_cell = f"#tickets tr[data-ticket-id='{mine}'] td.time"
        written_by_server = inbox_page.inner_text(time_cell)

        ticket_page.select_option("#availability select", "available")
        ticket_page.wait_for_selector("#availability[data-state=available]")
        # the other tab follows, and shows the oldest waiting ticket given to this agent (room for one)
        inbox_page.wait_for_function("() => document.querySelector('#availability select').value === 'available'")
        inbox_page.wait_for_function("(sel) => document.querySelector(sel).textContent === '佐藤'", arg=cell(mine))
        assert inbox_page.inner_text(cell(waiting)) == "—"
        # the row drawn again from the event shows its time as the server did: in the desk's
        # time zone (Asia/Tokyo), not the browser's (UTC here)
        assert inbox_page.inner_text(time_cell) == written_by_server
        assert ticket_page.input_value("#reply-body") == "書きかけの返信"  # no reload: the draft is there
        inbox_page.screenshot(path=str(tmp_path / "available.png"))
        assert ticket_page.errors == [] and inbox_page.errors == []
    db.session.expire_all()
    assert db.session.get(Agent, agent.id).availability is Availability.available
    owners = {t: db.session.get(Ticket, t).assignee_id for t in (mine, waiting)}
    assert owners == {mine: agent.id, waiting: None}  # the oldest, and only one: the cap
