"""An agent finds a customer in the directory and merges the same customer who wrote on a
second channel, in headless Chromium."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import Contact, Ticket
from helpdesk.services.ingest import ingest
from tests import factories as f
from tests.live import chromium, live_server, open_desk_page

pytestmark = [pytest.mark.browser]


def test_agent_finds_a_customer_and_merges_their_line_account(app, tmp_path):
    email, line = f.inbox(kind="email", name="メール"), f.inbox(kind="line", name="LINE")
    agent = f.agent(inboxes=[email, line])
    kimura = ingest(email, f.inbound(user_id="kimura@example.jp", display_name="木村直子",
                                     text="配送状況を教えてください")).message.contact_id
    same = ingest(line, f.inbound(user_id="U-line", display_name="なおこ", identity_kind="line",
                                  text="まだ届きません😢")).message.contact_id
    for contact_id in (kimura, same):
        db.session.get(Contact, contact_id).email = "kimura@example.jp"
    db.session.commit()
    line_ticket = db.session.scalar(select(Ticket.id).where(Ticket.contact_id == same))

    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.click("nav >> text=顧客")
        page.fill("input[name=q]", "木村")
        page.press("input[name=q]", "Enter")
        page.wait_for_url("**/agent/contacts?q=*")
        assert page.locator("#contacts tbody tr").count() == 1
        page.click("#contacts td.name a")
        page.wait_for_selector("#duplicates")
        assert page.inner_text("h1 .contact-name") == "木村直子"
        asked: list[str] = []
        page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
        page.click(f'#duplicates tr[data-contact-id="{same}"] button')
        page.wait_for_selector(".flash.ok")
        page.screenshot(path=str(tmp_path / "contact-merged.png"))
        assert asked and "なおこ" in asked[0]
        assert page.locator(f'#contact-tickets tr[data-ticket-id="{line_ticket}"]').count() == 1
        assert page.locator("#duplicates").count() == 0
        assert "U-line" in page.inner_text(".identities")
        assert page.errors == []
    db.session.expire_all()
    assert db.session.get(Contact, same).merged_into_id == kimura
