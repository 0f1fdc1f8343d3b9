"""The widget for people on phones, keyboards and Japanese input methods, and on sites that may
not embed it (headless Chromium against a live server)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from helpdesk.extensions import db
from tests import factories as f
from tests.live import chromium, live_server
from tests.widget.host import host_page, host_site
from tests.widget.test_widget_browser import open_widget, widget_frame

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread")]

# What Safari sends for the Enter that ends a Japanese conversion: keyCode 229, isComposing false.
IME_ENTER = """() => {
  const e = new KeyboardEvent("keydown", {key: "Enter", keyCode: 229, bubbles: true, cancelable: true});
  document.getElementById("text").dispatchEvent(e);
  return [e.keyCode, e.isComposing, e.defaultPrevented];
}"""


@contextmanager
def shop_page(app, inbox, **context):
    """A page of a shop that embeds the inbox's widget, in a fresh browser against a live desk."""
    with live_server(app) as desk, chromium() as browser:
        with host_site({"/": host_page(desk.url, inbox.key)}) as shop:
            page = browser.new_context(locale="ja-JP", **context).new_page()
            page.goto(shop + "/")
            yield page


def test_ime_enter_does_not_send_half_typed_japanese(app):
    inbox = f.inbox(kind="chat")
    with shop_page(app, inbox) as page:
        _, frame = open_widget(page)
        frame.fill("#offline-email", "kyaku@example.jp")
        frame.fill("#text", "へんぴん")
        assert frame.evaluate(IME_ENTER) == [229, False, False]
        frame.wait_for_timeout(300)
        assert frame.query_selector_all(".msg.dir-in") == [] and frame.input_value("#text") == "へんぴん"
        frame.fill("#text", "返品したいです")
        frame.press("#text", "Enter")  # the Enter after the conversion sends
        frame.wait_for_selector(".msg.dir-in .body:text-is('返品したいです')")


def open_by_keyboard(frame):
    frame.focus("#launcher")
    frame.press("#launcher", "Enter")
    frame.wait_for_selector("#panel:not([hidden])")
    frame.wait_for_function("document.activeElement.id === 'text'")


def test_the_attach_control_shows_that_it_has_the_keyboard(app):
    inbox = f.inbox(kind="chat")
    with shop_page(app, inbox) as page:
        _, frame = widget_frame(page)
        open_by_keyboard(frame)
        style = "l => [getComputedStyle(l).outlineStyle, getComputedStyle(l).outlineWidth]"
        assert frame.eval_on_selector(".attach", style)[0] == "none"
        frame.press("#text", "Tab")  # the file input is invisible: its label shows the focus
        assert frame.evaluate("document.activeElement.id") == "file"
        assert frame.eval_on_selector(".attach", style) == ["solid", "3px"]


def test_escape_closes_the_panel_and_the_keyboard_goes_back_to_the_launcher(app):
    inbox = f.inbox(kind="chat")
    with shop_page(app, inbox) as page:
        _, frame = widget_frame(page)
        open_by_keyboard(frame)
        page.keyboard.press("Escape")
        frame.wait_for_selector("#panel", state="hidden", timeout=3000)
        assert frame.evaluate("document.activeElement.id") == "launcher"
        # The close button does the same.
        page.keyboard.press("Enter")
        frame.wait_for_selector("#panel:not([hidden])")
        frame.focus("#close")
        page.keyboard.press("Enter")
        frame.wait_for_selector("#panel", state="hidden")
        assert frame.evaluate("document.activeElement.id") == "launcher"


def test_on_a_small_phone_the_panel_keeps_a_margin(app):
    inbox = f.inbox(kind="chat")
    with shop_page(app, inbox, viewport={"width": 375, "height": 667}) as page:
        handle, _ = open_widget(page)
        page.wait_for_function("document.querySelector('iframe[data-helpdesk-widget]').offsetWidth > 100")
        box = handle.bounding_box()
        assert box["x"] >= 16 and box["x"] + box["width"] <= 375 - 16, box
        assert box["y"] >= 16 and box["y"] + box["height"] <= 667 - 16, box


def test_an_offline_email_that_is_no_address_is_named_as_such(app):
    inbox = f.inbox(kind="chat")  # nobody online: the widget asks for an email
    with shop_page(app, inbox) as page:
        _, frame = open_widget(page)
        frame.fill("#offline-email", "kyaku@")
        frame.fill("#text", "在庫はありますか")
        frame.click("#send")
        assert frame.get_attribute("#error", "data-code") == "bad_email"
        assert frame.inner_text("#error") == "有効なメールアドレスを入力してください。"
        frame.fill("#offline-email", "")
        frame.click("#send")
        assert frame.get_attribute("#error", "data-code") == "email_required"
        assert frame.query_selector_all(".msg.dir-in") == []


def test_a_site_that_may_not_embed_the_chat_gets_no_broken_box(app):
    inbox = f.inbox(kind="chat", settings={"allowed_origins": ["https://shop.example.jp"]})
    with live_server(app) as desk, chromium() as browser:
        with host_site({"/": host_page(desk.url, inbox.key)}) as shop:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            with page.expect_console_message(lambda m: "allowed origins" in m.text, timeout=15000) as msg:
                page.goto(shop + "/")
            assert msg.value.type == "warning" and shop in msg.value.text
            assert page.query_selector("iframe[data-helpdesk-widget]") is None
            assert page.inner_text("h1") == "テストショップ"

            # Listed, the same site gets the chat.
            inbox.settings = {"allowed_origins": [shop]}
            db.session.commit()
            page.reload()
            widget_frame(page)
            page.wait_for_function("getComputedStyle(document.querySelector('iframe[data-helpdesk-widget]'))"
                                   ".visibility === 'visible'")
            page.wait_for_timeout(3500)  # past the loader's wait: a frame that works stays
            assert page.query_selector("iframe[data-helpdesk-widget]") is not None
            assert errors == []
