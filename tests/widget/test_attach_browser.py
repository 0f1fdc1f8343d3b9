"""An agent's files reach a chat visitor: the agent attaches them in the desk, the customer on
a third-party site sees the image and downloads the PDF from the widget (headless Chromium)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import factories as f
from tests.live import chromium, live_server, log_in
from tests.widget.host import host_page, host_site
from tests.widget.test_widget_browser import PNG, open_widget

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread")]

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def test_visitor_sees_the_image_and_downloads_the_pdf(app, tmp_path):
    inbox = f.inbox(kind="chat", name="サイトチャット")
    agent = f.agent(inboxes=[inbox], name="佐藤 花子")
    with live_server(app) as desk, chromium() as browser:
        with host_site({"/": host_page(desk.url, inbox.key)}) as shop:
            errors: list[str] = []
            staff = browser.new_context(locale="ja-JP").new_page()
            staff.on("pageerror", lambda e: errors.append(f"desk: {e}"))
            log_in(staff, desk, agent.email, f.PASSWORD)
            staff.wait_for_selector("body[data-live=ready]")

            customer_ctx = browser.new_context(locale="ja-JP", accept_downloads=True)
            customer = customer_ctx.new_page()
            customer.on("pageerror", lambda e: errors.append(f"shop: {e}"))
            customer.goto(shop + "/")
            _, frame = open_widget(customer)
            frame.fill("#text", "領収書と画面を送ってください")
            frame.press("#text", "Enter")
            frame.wait_for_selector(".msg.dir-in")

            staff.wait_for_selector("tr[data-ticket-id] .ch-chat", timeout=10000).evaluate(
                "el => el.closest('tr').querySelector('td.subject a').click()")
            staff.wait_for_selector("body[data-live=ready] #thread .msg.dir-in")
            staff.fill("#reply-body", "こちらです。")
            staff.set_input_files("#reply-files", files=[
                {"name": "領収書.pdf", "mimeType": "application/pdf", "buffer": PDF},
                {"name": "画面.png", "mimeType": "image/png", "buffer": PNG}])
            staff.click("#send-reply")

            # The image shows in the chat; the PDF is a download link with its name.
            img = frame.wait_for_selector(".msg.dir-out .att a.file-link img", timeout=10000)
            assert img.evaluate("i => i.decode().then(() => i.naturalWidth)") == 1
            link = frame.locator(".msg.dir-out .att a.file-link", has_text="領収書.pdf")
            assert link.get_attribute("href").startswith("/files/")
            with customer.expect_download() as dl:
                link.click()
            assert dl.value.suggested_filename == "領収書.pdf"
            assert Path(dl.value.path()).read_bytes() == PDF
            customer.screenshot(path=str(tmp_path / "customer.png"))
            assert errors == []
