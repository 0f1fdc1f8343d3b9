"""The widget when what it was told on connecting no longer holds: the last agent went home,
or the inbox started asking for the pre-chat form. The desk holds the message back; the
widget must then show the form that lets the visitor go on, not only an error."""

from __future__ import annotations

import time

import pytest

from helpdesk.extensions import db
from helpdesk.realtime.widget_ns import agents_online
from tests import factories as f
from tests.live import chromium, live_server, log_in
from tests.widget.host import host_page, host_site
from tests.widget.test_widget_browser import open_widget

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread")]


def test_agent_leaving_after_the_widget_opened_brings_up_the_email_field(app):
    inbox = f.inbox(kind="chat", name="サイトチャット")
    agent = f.agent(inboxes=[inbox], name="佐藤 花子")
    with live_server(app) as desk, chromium() as browser:
        with host_site({"/": host_page(desk.url, inbox.key)}) as shop:
            staff_context = browser.new_context(locale="ja-JP")
            staff = staff_context.new_page()
            log_in(staff, desk, agent.email, f.PASSWORD)
            staff.wait_for_selector("body[data-live=ready]")

            customer = browser.new_context(locale="ja-JP").new_page()
            errors: list[str] = []
            customer.on("pageerror", lambda e: errors.append(str(e)))
            customer.goto(shop + "/")
            _, frame = open_widget(customer)
            assert frame.get_attribute("#status", "data-online") == "true"
            assert frame.is_hidden("#offline-email")

            staff_context.close()  # the agent's shift ends; the widget's presence poll has not run yet
            deadline = time.monotonic() + 10
            while agents_online(inbox.id) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not agents_online(inbox.id)

            frame.fill("#text", "営業時間を教えてください。")
            frame.press("#text", "Enter")
            frame.wait_for_selector("#error[data-code=email_required]")
            frame.wait_for_selector("#offline-email", state="visible", timeout=2000)
            assert frame.get_attribute("#status", "data-online") == "false"
            assert frame.input_value("#text") == "営業時間を教えてください。"  # nothing typed is lost

            frame.fill("#offline-email", "kyaku@example.jp")
            frame.press("#text", "Enter")
            frame.wait_for_selector(".msg.dir-in")
            assert frame.inner_text(".msg.dir-in .body") == "営業時間を教えてください。"
            assert errors == []


def test_prechat_form_asked_for_after_the_page_loaded_is_shown(app):
    inbox = f.inbox(kind="chat", name="サイトチャット")
    with live_server(app) as desk, chromium() as browser:
        with host_site({"/": host_page(desk.url, inbox.key)}) as shop:
            page = browser.new_context(locale="ja-JP").new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(shop + "/")
            _, frame = open_widget(page)
            assert frame.is_hidden("#prechat")

            inbox.settings = {**(inbox.settings or {}), "prechat": True}
            db.session.commit()

            frame.fill("#offline-email", "kyaku@example.jp")
            frame.fill("#text", "見積もりをお願いします。")
            frame.press("#text", "Enter")
            frame.wait_for_selector("#error[data-code=prechat_required]")
            frame.wait_for_selector("#prechat", state="visible", timeout=2000)

            frame.fill("#prechat-name", "山田 太郎")
            frame.fill("#prechat-email", "kyaku@example.jp")
            frame.click("#prechat-start")
            frame.wait_for_selector("#composer", state="visible")
            frame.press("#text", "Enter")
            frame.wait_for_selector(".msg.dir-in")
            assert frame.inner_text(".msg.dir-in .body") == "見積もりをお願いします。"
            assert errors == []
