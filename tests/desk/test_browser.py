"""What an agent sees and clicks, in headless Chromium against a live server."""

from __future__ import annotations

import pytest
import requests

from tests import factories as f
from tests.live import chromium, live_server, open_desk_page

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread")]


def test_agent_sees_new_message_live_replies_and_sees_it_sent(app, tmp_path):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    token = f.api_token(inbox)
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.wait_for_selector("body[data-live=ready]")

        # A customer message arrives through the API while the inbox is open.
        resp = requests.post(server.url + "/api/v1/messages", headers={"Authorization": f"Bearer {token}"},
                             json={"external_id": "b-1", "user_id": "cust-1", "name": "佐藤",
                                   "text": "注文した商品がまだ届きません。<script>window.pwned=1</script>"})
        assert resp.status_code == 201
        ticket_id = resp.json()["ticket_id"]
        row = page.wait_for_selector(f'tr[data-ticket-id="{ticket_id}"]', timeout=5000)
        assert "佐藤" in row.inner_text()
        page.screenshot(path=str(tmp_path / "inbox.png"))

        # Open it, reply, and watch the delivery state turn to sent.
        # A locator, not the handle: the row is re-rendered when the sentiment label lands.
        page.locator(f'tr[data-ticket-id="{ticket_id}"] td.subject a').click()
        page.wait_for_selector("#thread")
        body = page.inner_text("#thread")
        assert "<script>window.pwned=1</script>" in body  # shown as text...
        assert page.evaluate("window.pwned") is None  # ...never executed
        page.fill("#reply-body", "ご不便をおかけしております。すぐに確認いたします。")
        page.click("#send-reply")
        page.wait_for_selector('.msg.dir-out .delivery[data-delivery="sent"]', timeout=10000)
        out = page.inner_text(".msg.dir-out")
        assert "すぐに確認いたします" in out and "送信済み" in out
        page.screenshot(path=str(tmp_path / "ticket.png"))
        assert page.errors == []
