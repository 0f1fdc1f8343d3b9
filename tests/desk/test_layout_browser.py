"""What a Japanese support team sees, measured in the page: long names, addresses and tags
(no spaces to wrap at) stay inside the screen at desktop and phone widths, tables stay tables,
and an empty list says so."""

from __future__ import annotations

import pytest

from helpdesk.extensions import db
from helpdesk.models import Contact, Role, Ticket
from helpdesk.models.survey import Survey
from helpdesk.services import surveys
from helpdesk.services.ingest import ingest
from helpdesk.services.tickets import update_ticket
from tests import factories as f
from tests.live import chromium, live_server, log_in

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread", SENTIMENT_ENABLED=False)]

DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}

OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"
RIGHT = "(sel) => document.querySelector(sel).getBoundingClientRect().right"
# How many lines an element's text takes: the distinct tops of its boxes (an element inside it, a
# <time> in a cell, is a second box on the same line).
LINES = """(node) => { const r = document.createRange(); r.selectNodeContents(node);
    return new Set([...r.getClientRects()].map((x) => Math.round(x.top))).size; }"""

LONG_ADDRESS = "very.long.customer.address.for.testing.purposes@subdomain.example-company.co.jp"
LONG_NAME = "株式会社サンプルインターナショナルホールディングス経営企画本部第二営業部長代理補佐 佐藤太郎左衛門"
LONG_TAG = "返金対応が必要なお客様で優先度が非常に高いもの要確認事項ありVeryLongTagWithoutSpaces"


def test_a_long_customer_address_keeps_the_ticket_and_customer_pages_on_screen(app, tmp_path):
    """The identity in the sidebar (an unbreakable address in <code>) used to widen the 320px
    column to ~600px: the whole page scrolled sideways, at desktop and phone widths alike."""
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    msg = ingest(inbox, f.inbound(user_id=LONG_ADDRESS, display_name=LONG_NAME, text="請求書を再発行してください")).message
    with live_server(app) as server, chromium() as browser:
        for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page = browser.new_page(locale="ja-JP", viewport=viewport)
            log_in(page, server, agent.email, f.PASSWORD)
            for path in (f"/agent/tickets/{msg.ticket_id}", f"/agent/contacts/{msg.contact_id}"):
                page.goto(server.url + path)
                page.screenshot(path=str(tmp_path / f"{name}-{path.strip('/').replace('/', '-')}.png"), full_page=True)
                assert page.evaluate(OVERFLOW) <= 0, (name, path)
                assert page.evaluate(RIGHT, "aside.sidebar") <= viewport["width"], (name, path)
                assert page.evaluate(RIGHT, ".identities code") <= viewport["width"], (name, path)
                if viewport is DESKTOP:  # the sidebar keeps its column, the conversation the rest
                    width = page.evaluate("() => document.querySelector('aside.sidebar').offsetWidth")
                    assert width <= 320, (path, width)
            page.close()


def test_a_long_tag_does_not_push_the_inbox_filters_off_a_phone(app, tmp_path):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    ticket = db.session.get(Ticket, ingest(inbox, f.inbound(user_id="tag-1")).message.ticket_id)
    update_ticket(ticket, agent, tags=[LONG_TAG])
    db.session.commit()
    with live_server(app) as server, chromium() as browser:
        page = browser.new_page(locale="ja-JP", viewport=PHONE)
        log_in(page, server, agent.email, f.PASSWORD)
        page.screenshot(path=str(tmp_path / "inbox-phone.png"), full_page=True)
        assert page.evaluate(OVERFLOW) <= 0
        for select in page.locator("form.filters select").all():
            box = select.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], select.get_attribute("name")


def test_the_audit_log_stays_a_readable_table_on_a_phone(app, tmp_path):
    """It shared the inbox's class, so the inbox's phone card layout hid its time and headers
    and ran its rows off the screen."""
    inbox = f.inbox(kind="test")
    admin = f.agent(inboxes=[inbox], role=Role.admin, name="管理者 山田")
    ticket = db.session.get(Ticket, ingest(inbox, f.inbound(user_id="audit-1")).message.ticket_id)
    update_ticket(ticket, admin, status="pending", tags=[LONG_TAG])
    db.session.commit()
    with live_server(app) as server, chromium() as browser:
        page = browser.new_page(locale="ja-JP", viewport=PHONE)
        log_in(page, server, admin.email, f.PASSWORD)
        page.goto(server.url + "/admin/audit")
        page.screenshot(path=str(tmp_path / "audit-phone.png"), full_page=True)
        assert page.evaluate(OVERFLOW) <= 0  # a wide table scrolls inside its section
        assert page.locator("#audit thead th").first.is_visible()
        assert page.locator("#audit td.time").first.is_visible()
        # Each entry is one row: its cells side by side, not stacked on a grid.
        tops = page.evaluate("""() => [...document.querySelector('#audit tbody tr').cells]
                                      .map(td => Math.round(td.getBoundingClientRect().top))""")
        assert len(set(tops)) == 1, tops


def test_the_survey_page_fits_a_phone(app, tmp_path):
    inbox = f.inbox(kind="test")
    msg = ingest(inbox, f.inbound(user_id="survey-1")).message
    survey = Survey(ticket_id=msg.ticket_id, kind="csat", inbox_id=inbox.id, channel="test",
                    contact_id=msg.contact_id)
    db.session.add(survey)
    db.session.commit()
    token = surveys.token_for(survey)
    with live_server(app) as server, chromium() as browser:
        page = browser.new_page(locale="ja-JP", viewport=PHONE)
        page.goto(server.url + f"/survey/{token}")
        page.screenshot(path=str(tmp_path / "survey-phone.png"), full_page=True)
        assert page.evaluate(OVERFLOW) <= 0
        card = page.locator(".survey-card").bounding_box()
        assert card["x"] >= 8 and card["x"] + card["width"] <= PHONE["width"] - 8, card  # off the edges
        # The comment box stays inside its form (width 100% plus padding and border ran past it).
        assert page.evaluate("() => document.querySelector('.survey-form').scrollWidth"
                             " <= document.querySelector('.survey-form').clientWidth")


def test_the_dashboard_says_when_there_is_no_alert_and_its_headers_break_between_words(app, tmp_path):
    """The alerts card was an empty box; 「チャネル」 was drawn as 「チャ / ネル」 and 「CES回答数」 as
    「CES回 / 答数」 in the narrow cards."""
    inbox = f.inbox(kind="test")
    admin = f.agent(inboxes=[inbox], role=Role.admin)
    with live_server(app) as server, chromium() as browser:
        page = browser.new_page(locale="ja-JP", viewport=DESKTOP)
        log_in(page, server, admin.email, f.PASSWORD)
        page.goto(server.url + "/supervisor/")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        headers = page.evaluate(f"""() => [...document.querySelectorAll('.sv-table th')].map(th =>
            [th.textContent.trim(), ({LINES})(th)])""")
        assert headers
        split = [text for text, lines in headers if lines > 1 and " " not in text and "（" not in text]
        assert split == [], split
        assert page.locator("#alert-list > li").count() == 0
        empty = page.locator("#alerts-feed .alerts-empty")
        assert empty.is_visible() and empty.inner_text() == "この期間のデータはありません。"
        # With an alert listed, the note goes.
        page.evaluate("() => document.getElementById('alert-list').append(document.createElement('li'))")
        assert not empty.is_visible()


def test_an_ordinary_email_address_reads_on_one_line_in_the_directory(app, tmp_path):
    inbox = f.inbox(kind="email")
    agent = f.agent(inboxes=[inbox], name="田中")
    msg = ingest(inbox, f.inbound(user_id="kato-1", display_name=LONG_NAME)).message
    db.session.get(Contact, msg.contact_id).email = "m.kato@example.ne.jp"
    db.session.commit()
    with live_server(app) as server, chromium() as browser:
        page = browser.new_page(locale="ja-JP", viewport=DESKTOP)
        log_in(page, server, agent.email, f.PASSWORD)
        page.goto(server.url + "/agent/contacts")
        page.screenshot(path=str(tmp_path / "contacts.png"), full_page=True)
        lines = page.locator("#contacts td.email", has_text="m.kato@example.ne.jp").evaluate(LINES)
        assert lines == 1
