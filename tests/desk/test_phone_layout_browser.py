"""The desk on a phone-sized screen: nothing runs off the side, the menu reads across."""

from __future__ import annotations

import pytest

from helpdesk.models import Role
from helpdesk.services.ingest import ingest
from tests import factories as f
from tests.live import chromium, live_server, log_in

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread", SENTIMENT_ENABLED=False)]

PHONE = {"width": 390, "height": 844}

OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


def test_inbox_and_ticket_fit_a_phone_screen(app, tmp_path):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="サポート担当 山田花子")
    long_text = "注文した商品がまだ届きません。" * 6 + "https://example.jp/orders/" + "a" * 80
    ticket_id = ingest(inbox, f.inbound(user_id="phone-1", text=long_text,
                                        display_name="株式会社サンプル商事 購買部 佐藤")).message.ticket_id
    with live_server(app) as server, chromium() as browser:
        page = browser.new_page(locale="ja-JP", viewport=PHONE)
        log_in(page, server, agent.email, f.PASSWORD)
        page.screenshot(path=str(tmp_path / "inbox-phone.png"), full_page=True)
        assert page.evaluate(OVERFLOW) <= 0  # the page itself never scrolls sideways
        # Menu entries are words, not one character per line.
        line = page.evaluate("() => parseFloat(getComputedStyle(document.body).lineHeight)")
        for name in ("受信箱", "ログアウト"):
            box = page.get_by_text(name, exact=True).first.bounding_box()
            assert box["height"] < line * 1.5, name
        # The subject and the status, what an agent scans for, stay on screen.
        row = page.locator(f'tr[data-ticket-id="{ticket_id}"]')
        for cell in ("td.subject", "td.status", "td.sentiment"):
            box = row.locator(cell).bounding_box()
            assert box is not None and box["x"] + box["width"] <= PHONE["width"] + 1, cell

        page.goto(server.url + f"/agent/tickets/{ticket_id}")
        page.screenshot(path=str(tmp_path / "ticket-phone.png"), full_page=True)
        assert page.evaluate(OVERFLOW) <= 0
        send = page.locator(".composer button[type=submit]").first.bounding_box()
        assert send["x"] + send["width"] <= PHONE["width"]

        # The customer directory and the customer's page, with the same long name and subject.
        contact_id = ingest(inbox, f.inbound(user_id="phone-1", text="追記です")).message.contact_id
        for path in ("/agent/contacts", f"/agent/contacts/{contact_id}"):
            page.goto(server.url + path)
            page.screenshot(path=str(tmp_path / f"{path.strip('/').replace('/', '-')}-phone.png"), full_page=True)
            assert page.evaluate(OVERFLOW) <= 0, path


def test_dashboard_and_admin_fit_a_phone_screen(app, tmp_path):
    inbox = f.inbox(kind="test")
    admin = f.agent(inboxes=[inbox], role=Role.admin)
    ingest(inbox, f.inbound(user_id="phone-2", text="返金はまだですか？対応が遅すぎます。"))
    with live_server(app) as server, chromium() as browser:
        page = browser.new_page(locale="ja-JP", viewport=PHONE)
        log_in(page, server, admin.email, f.PASSWORD)
        for path in ("/supervisor/", "/supervisor/insight", "/admin/"):
            page.goto(server.url + path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(tmp_path / f"{path.strip('/').replace('/', '-')}-phone.png"), full_page=True)
            assert page.evaluate(OVERFLOW) <= 0, path  # wide tables scroll inside their card
