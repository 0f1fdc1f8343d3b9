"""Accessibility of the pages agents and customers use: axe-core (installed into static/node_modules
by .ci/setup, injected by this test only) finds no serious or critical WCAG 2 A/AA problem, the page's
language follows the UI language, and the reply box and the ticket's controls are reachable with Tab
and show where the focus is (headless Chromium against a live server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpdesk.extensions import db
from helpdesk.models.survey import Survey
from helpdesk.services import surveys
from helpdesk.services.ingest import ingest
from helpdesk.services.replies import post_reply
from helpdesk.services.tickets import merge_contacts
from tests import factories as f
from tests.live import chromium, live_server, log_in
from tests.widget.host import host_page, host_site
from tests.widget.test_widget_browser import open_widget

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread", SENTIMENT_ENABLED=False)]

AXE = Path(__file__).resolve().parents[2] / "static" / "node_modules" / "axe-core" / "axe.min.js"

RUN_AXE = """async () => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa"]}});
  return result.violations.filter(v => v.impact === "serious" || v.impact === "critical").map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.slice(0, 5).map(n => n.target.join(" ") + " :: " + n.failureSummary.replace(/\\s+/g, " ")),
  }));
}"""

# Where the focus is, and whether it shows: an outline or a box shadow that differs from unfocused.
FOCUSED = """() => {
  const el = document.activeElement;
  const s = getComputedStyle(el);
  const outline = s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0;
  return {id: el.id || el.name || el.tagName, visible: outline || s.boxShadow !== "none"};
}"""


def axe_violations(target, name: str) -> list[str]:
    """Serious and critical violations on a page or frame, as readable lines."""
    if not target.evaluate("() => typeof window.axe !== 'undefined'"):
        target.add_script_tag(path=str(AXE))
    return [f"{name}: {v['id']} ({v['impact']}) {v['help']}\n      " + "\n      ".join(v["targets"])
            for v in target.evaluate(RUN_AXE)]


def test_axe_finds_no_serious_problem_and_the_ticket_works_by_keyboard(app, tmp_path):
    mail = f.inbox(kind="test", name="メール窓口")
    line = f.inbox(kind="line", name="LINE公式")
    chat = f.inbox(kind="chat", name="サイトチャット")
    agent = f.agent(inboxes=[mail, line, chat], name="佐藤 花子")
    # One customer who wrote on two channels: a ticket whose page shows both, an agent reply and a note.
    first = ingest(mail, f.inbound(user_id="a11y-1", text="注文した商品がまだ届きません。", display_name="山田 太郎")).message
    other = ingest(line, f.inbound(user_id="U-a11y", text="LINEからも失礼します", display_name="やまだ")).message
    contact = merge_contacts(first.ticket.contact, other.ticket.contact, agent)
    post_reply(first.ticket, agent, "ご不便をおかけしております。確認いたします。")
    post_reply(first.ticket, agent, "倉庫に確認中", private=True)
    db.session.commit()
    ticket_id, contact_id = first.ticket_id, contact.id
    survey = Survey(ticket_id=ticket_id, kind="csat", inbox_id=mail.id, channel="test", contact_id=contact_id)
    db.session.add(survey)
    db.session.commit()
    token = surveys.token_for(survey)

    found: list[str] = []
    with live_server(app) as server, chromium() as browser:
        # The desk's CSP allows no inline script: axe comes in as one, so the test context bypasses it.
        context = browser.new_context(locale="ja-JP", bypass_csp=True)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        page.goto(server.url + "/login")
        assert page.evaluate("document.documentElement.lang") == "ja"
        found += axe_violations(page, "login")
        log_in(page, server, agent.email, f.PASSWORD)
        page.wait_for_selector("body[data-live=ready]")
        pages = {"inbox": "/agent/", "ticket": f"/agent/tickets/{ticket_id}", "contacts": "/agent/contacts",
                 "contact": f"/agent/contacts/{contact_id}", "account": "/account"}
        for name, path in pages.items():
            page.goto(server.url + path)
            page.wait_for_load_state("networkidle")
            assert page.evaluate("document.documentElement.lang") == "ja", name
            found += axe_violations(page, name)

        # The ticket by keyboard: from the reply box, Tab reaches the send button and the sidebar's
        # controls, and each shows its focus.
        page.goto(server.url + f"/agent/tickets/{ticket_id}")
        page.wait_for_selector("body[data-live=ready]")
        page.focus("#reply-body")
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Tab")  # a keyboard focus, so :focus-visible applies
        seen = {}
        for _ in range(30):
            state = page.evaluate(FOCUSED)
            seen.setdefault(state["id"], state["visible"])
            page.keyboard.press("Tab")
        for control in ("reply-body", "send-reply", "reply-then", "status", "priority", "assignee", "team", "tags"):
            assert control in seen, (control, seen)
            assert seen[control], f"no visible focus on #{control}"

        # The survey page, as the customer opens it from the link.
        customer = browser.new_context(locale="ja-JP", bypass_csp=True).new_page()
        customer.goto(server.url + f"/survey/{token}")
        assert customer.evaluate("document.documentElement.lang") == "ja"
        found += axe_violations(customer, "survey")

        # The chat widget on a shop's site: its frame, closed and open.
        with host_site({"/": host_page(server.url, chat.key)}) as shop:
            customer.goto(shop + "/")
            _, frame = open_widget(customer)
            assert frame.evaluate("document.documentElement.lang") == "ja"
            found += axe_violations(frame, "widget")

        # The English desk says so to screen readers.
        english = browser.new_context(locale="en-US", bypass_csp=True).new_page()
        english.goto(server.url + "/login?lang=en")  # the language links
        assert english.evaluate("document.documentElement.lang") == "en"
        page.screenshot(path=str(tmp_path / "ticket.png"), full_page=True)
        assert errors == []
    assert not found, "axe (wcag2a, wcag2aa), serious and critical:\n" + "\n".join(found)
