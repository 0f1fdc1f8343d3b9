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


# Each row's visible cells: their widths and heights, measured in the page.
ROW_CELLS = """(id) => {
  const row = document.querySelector(`tr[data-ticket-id="${id}"]`);
  const out = {};
  for (const td of row.cells) {
    const r = td.getBoundingClientRect();
    out[td.className || "?"] = {left: r.left, right: r.right, width: r.width, height: r.height,
                                shown: getComputedStyle(td).display !== "none"};
  }
  return out;
}"""


def test_inbox_rows_are_readable_on_a_375px_phone(app, tmp_path):
    """The subject gets the row's width and the customer a whole line, instead of ~38 px each
    beside the badge columns (a subject broken every two or three characters)."""
    narrow = {"width": 375, "height": 740}
    inbox = f.inbox(kind="line")
    agent = f.agent(inboxes=[inbox], name="田中")
    subjects = {"p-1": "注文した商品がまだ届きません", "p-2": "返金の手続きについて教えてください。" * 3,
                "p-3": "example_support_request_about_invoice_number_1234567890"}
    ids = [ingest(inbox, f.inbound(user_id=user, text=text, display_name="株式会社サンプル商事 購買部 佐藤 様")
                  ).message.ticket_id for user, text in subjects.items()]
    with live_server(app) as server, chromium() as browser:
        page = browser.new_page(locale="ja-JP", viewport=narrow)
        log_in(page, server, agent.email, f.PASSWORD)
        page.screenshot(path=str(tmp_path / "inbox-375.png"), full_page=True)
        assert page.evaluate(OVERFLOW) <= 0
        assert page.evaluate("() => document.getElementById('tickets').getBoundingClientRect().right") <= 375
        line = page.evaluate("() => parseFloat(getComputedStyle(document.body).lineHeight)")
        for ticket_id in ids:
            cells = page.evaluate(ROW_CELLS, ticket_id)
            shown = {name for name, c in cells.items() if c["shown"]}
            assert shown == {"pick", "channel", "contact", "subject", "status", "sentiment"}, shown
            for name in shown:
                assert 0 <= cells[name]["left"] and cells[name]["right"] <= 375 + 0.5, (ticket_id, name)
            assert cells["subject"]["width"] >= 375 * 0.75, cells["subject"]  # most of the width
            assert cells["contact"]["width"] >= 150, cells["contact"]
            for name in ("contact", "channel", "status", "sentiment"):  # one line each, not one per character
                assert cells[name]["height"] < line * 1.6, (name, cells[name])
        # The short subject reads on one line; the long one takes a few, not dozens.
        first, long = page.evaluate(ROW_CELLS, ids[0]), page.evaluate(ROW_CELLS, ids[1])
        assert first["subject"]["height"] < line * 1.6
        assert long["subject"]["height"] < line * 5.5
        # Selecting every row on the page still works from the header's box.
        assert page.locator("#pick-all").is_visible()
