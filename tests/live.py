"""A real server for browser and socket tests: the app served by Flask-SocketIO
(threading mode, Werkzeug) on a free port in a background thread, a Playwright
Chromium launcher using Debian's /usr/bin/chromium, and a real SMTP server."""

from __future__ import annotations

import email
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from email import policy

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


_shared: dict = {}


@contextmanager
def chromium():
    """A headless Chromium via Playwright; yields the Browser. One Chromium serves the whole
    run (starting one costs about a second): what a test opened in it (contexts, their pages)
    is closed when the test's block ends, so each test starts with none, as with a new one."""
    browser = _shared.get("browser")
    if browser is None or not browser.is_connected():
        from playwright.sync_api import sync_playwright

        if "pw" not in _shared:
            _shared["pw"] = sync_playwright().start()
        browser = _shared["browser"] = _shared["pw"].chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        if browser.is_connected():
            for context in browser.contexts:
                context.close()


def close_chromium() -> None:
    """End of the run (tests/conftest.py): the shared Chromium and Playwright's driver."""
    browser, pw = _shared.pop("browser", None), _shared.pop("pw", None)
    if browser is not None and browser.is_connected():
        browser.close()
    if pw is not None:
        pw.stop()


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


# ---- a real SMTP server (aiosmtpd) -----------------------------------------------------------


class SmtpSink:
    """Collects what a real SMTP server receives; can answer with a chosen error."""

    def __init__(self):
        self.messages: list[dict] = []
        self.fail_with: str | None = None  # e.g. "451 4.3.0 try later" or "550 5.1.1 no such user"
        self.fail_rcpt_with: str | None = None
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.fail_rcpt_with:
            return self.fail_rcpt_with
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.fail_with:
            return self.fail_with
        with self.lock:
            self.messages.append({
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "data": envelope.original_content,
                "authenticated": session.authenticated,
                "tls": session.ssl is not None,
            })
        return "250 2.0.0 queued as TEST"

    def parsed(self, i: int = -1):
        return email.message_from_bytes(self.messages[i]["data"], policy=policy.default)

    def mails(self) -> list[bytes]:
        return [m["data"] for m in self.messages]


@contextmanager
def smtp_sink():
    """A plain aiosmtpd server on a free port: (sink, port)."""
    from aiosmtpd.controller import Controller

    sink, port = SmtpSink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, decode_data=False)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()
