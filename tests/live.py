"""A real server for browser and socket tests: the app served by Flask-SocketIO
(threading mode, Werkzeug) on a free port in a background thread, plus a
Playwright Chromium launcher using Debian's /usr/bin/chromium."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from contextlib import contextmanager

import requests

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, app):
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = None
        self._thread = None

    def start(self) -> LiveServer:
        from werkzeug.serving import make_server

        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/healthz", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("live server did not start")

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._thread.join(5)


@contextmanager
def live_server(app):
    server = LiveServer(app).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def chromium():
    """A headless Chromium via Playwright; yields the Browser."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_desk_page(browser, server: LiveServer, email: str, password: str, locale: str = "ja-JP"):
    """A new page logged in as an agent through the real login form, collecting page errors
    in ``page.errors`` (a test asserts it stays empty)."""
    page = browser.new_page(locale=locale)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    log_in(page, server, email, password)
    return page


def log_in(page, server: LiveServer, email: str, password: str) -> None:
    page.goto(server.url + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/agent/")
