"""An agent attaches files in the reply box of a real browser (headless Chromium)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from channels import testing as test_channel
from tests import factories as f
from tests.live import chromium, live_server, open_desk_page

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread", SENTIMENT_ENABLED=False)]

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)


def test_agent_attaches_files_sends_and_sees_them_in_the_thread(app, tmp_path):
    test_channel.SENT.clear()
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    token = f.api_token(inbox)
    with live_server(app) as server, chromium() as browser:
        resp = requests.post(server.url + "/api/v1/messages", headers={"Authorization": f"Bearer {token}"},
                             json={"external_id": "att-1", "user_id": "cust-1", "name": "佐藤",
                                   "text": "請求書と設定画面を送ってください"}, timeout=10)
        ticket_id = resp.json()["ticket_id"]
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.goto(f"{server.url}/agent/tickets/{ticket_id}")
        page.wait_for_selector("body[data-live=ready]")

        # An empty file is refused in the box before anything is sent.
        page.fill("#reply-body", "請求書をお送りします。")
        page.set_input_files("#reply-files", files=[{"name": "空.pdf", "mimeType": "application/pdf", "buffer": b""}])
        assert page.is_visible("#reply-error") and "空.pdf" in page.inner_text("#reply-error")
        assert page.inner_text("#reply-file-list") == "空.pdf (0 B)"
        page.click("#send-reply")
        assert page.locator("#thread .msg.dir-out").count() == 0

        # A type the server refuses: its reason shows in the box and the text stays.
        page.set_input_files("#reply-files", files=[{"name": "page.html", "mimeType": "text/html",
                                                     "buffer": b"<h1>x</h1>"}])
        assert page.is_hidden("#reply-error")
        page.click("#send-reply")
        page.wait_for_selector("#reply-error:not([hidden])")
        assert ".html" in page.inner_text("#reply-error")
        assert page.input_value("#reply-body") == "請求書をお送りします。"

        # The real files: their names are listed before sending...
        page.set_input_files("#reply-files", files=[
            {"name": "請求書.pdf", "mimeType": "application/pdf", "buffer": PDF},
            {"name": "設定画面.png", "mimeType": "image/png", "buffer": PNG}])
        listed = page.inner_text("#reply-file-list")
        assert "請求書.pdf" in listed and "設定画面.png" in listed and page.is_hidden("#reply-error")
        page.screenshot(path=str(tmp_path / "picked.png"))
        page.click("#send-reply")

        # ...and after sending they are in the thread on the reply, which turns to sent.
        page.wait_for_selector('.msg.dir-out .delivery[data-delivery="sent"]', timeout=10000)
        out = page.locator(".msg.dir-out")
        assert "請求書をお送りします。" in out.inner_text() and "送信済み" in out.inner_text()
        names = out.locator(".attachments a").all_inner_texts()
        assert names == ["請求書.pdf", "設定画面.png"]
        assert page.input_value("#reply-body") == "" and page.inner_text("#reply-file-list") == ""
        page.screenshot(path=str(tmp_path / "sent.png"))

        # The link in the thread downloads the file the agent sent.
        href = out.locator(".attachments a").first.get_attribute("href")
        with page.expect_download() as dl:
            page.evaluate("href => { const a = document.createElement('a'); a.href = href; a.click(); }", href)
        assert dl.value.suggested_filename == "請求書.pdf"
        assert Path(dl.value.path()).read_bytes() == PDF

        # A reload shows the same thing, from the server's page.
        page.reload()
        page.wait_for_selector(".msg.dir-out .attachments")
        assert page.locator(".msg.dir-out .attachments a").all_inner_texts() == ["請求書.pdf", "設定画面.png"]
        assert page.errors == []
    [sent] = test_channel.TestingAdapter.delivered()
    assert [a["filename"] for a in sent["attachments"]] == ["請求書.pdf", "設定画面.png"]
