"""Hostile customer text through every channel that exists, then every agent view in a real
browser: nothing executes, nothing is injected into the DOM, and the text is shown as text.

The browser context bypasses the CSP on purpose: the CSP (tests/security/test_headers.py) is
the second wall; this test checks the first one, escaping, on its own. A ``window.__xss``
sentinel, a dialog handler and a DOM scan for payload-made elements catch an injection.
"""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
import requests
from sqlalchemy import select

from helpdesk.extensions import db, socketio
from helpdesk.jobs import jobs
from helpdesk.models import CannedReply, Role, Ticket
from helpdesk.services.ingest import ingest
from helpdesk.services.tickets import update_ticket
from tests import factories as f
from tests.live import chromium, live_server

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread", SENTIMENT_ENABLED=False)]

PAYLOADS = [
    "<script>window.__xss=1;alert(1)</script>",
    '<img src=x onerror="window.__xss=2;alert(2)">',
    '<svg onload="window.__xss=3;alert(3)">',
    '<a href="javascript:window.__xss=4;alert(4)">click</a>',
    '"><script>window.__xss=5</script>',
    "'><img src=x onerror=window.__xss=6>",
    "{{7*7}} ${7*7} {% raw %}#{7*7}",
    '<iframe srcdoc="<script>parent.__xss=8</script>"></iframe>',
    "\u202e<script>window.__xss=9</script>\u202d ＜script＞alert(9)＜/script＞",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=10>",
    "</textarea><script>window.__xss=11</script>",
    "</script><script>window.__xss=12</script>",
    "javascript:window.__xss=13",
]
TEXT = "\n".join(PAYLOADS)
NAME = '<img src=x onerror=window.__xss=20>"><svg onload=alert(20)>'
SUBJECT = '</title><script>window.__xss=21</script>{{7*7}}'
FILENAME = '"><img src=x onerror=window.__xss=22>.pdf'
TAG = '<b onmouseover=window.__xss=23>tag</b>'

# Elements or attributes that only a payload could have put into a page.
_SCAN = """() => ({
  xss: window.__xss || 0,
  injected: [...document.querySelectorAll(
    'img[src="x"], svg[onload], iframe[srcdoc], math, mglyph, a[href^="javascript:" i], ' +
    'script:not([src]):not([type="application/json"]), [onerror], [onload], [onmouseover], [onclick]'
  )].map(e => e.outerHTML.slice(0, 100)),
  text: document.body ? document.body.innerText : ''
})"""


def _email_inbound():
    """Raw MIME (encoded-word name and subject, RFC 2231 file name) through the email adapter's parser."""
    mod = pytest.importorskip("channels.email")
    from urllib.parse import quote

    def word(s: str) -> str:
        return "=?utf-8?b?" + base64.b64encode(s.encode()).decode() + "?="

    def b64(data: bytes) -> str:
        return base64.encodebytes(data).decode().replace("\n", "\r\n")

    raw = (f"From: {word(NAME)} <evil@example.com>\r\nTo: support@example.jp\r\nSubject: {word(SUBJECT)}\r\n"
           f"Message-ID: <{uuid.uuid4().hex}@example.com>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0900\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n"
           "--BB\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           f"{b64(TEXT.encode())}--BB\r\nContent-Type: application/pdf\r\n"
           f"Content-Disposition: attachment; filename*=utf-8''{quote(FILENAME)}\r\n"
           f"Content-Transfer-Encoding: base64\r\n\r\n{b64(b'%PDF-1.4 %%EOF')}--BB--\r\n").encode()
    return mod.EmailAdapter({"address": "support@example.jp"}).parse_message(raw)


class Channels:
    """Posts the payloads through each adapter that exists in this build."""

    def __init__(self, url: str, stack):
        self.url = url
        self.stack = stack
        self.used: list[str] = []

    def api(self, token: str, user: str = "xss-api") -> int:
        r = requests.post(self.url + "/api/v1/messages", headers={"Authorization": f"Bearer {token}"},
                          json={"external_id": uuid.uuid4().hex, "user_id": user, "name": NAME,
                                "email": "x@example.com", "subject": SUBJECT, "text": TEXT}, timeout=10)
        assert r.status_code == 201, r.text
        self.used.append("api")
        return r.json()["ticket_id"]

    def line(self):
        try:
            from channels import line
        except ImportError:
            return
        from tests.channels.standins import LineStandIn

        api = self.stack.enter_context(LineStandIn(token="line-token"))
        api.profiles["Uxss"] = {"displayName": NAME, "userId": "Uxss", "pictureUrl": "javascript:window.__xss=30"}
        inbox = f.inbox(kind="line", name="LINE", settings={"api_base": api.url, "api_data_base": api.url},
                        secrets={"channel_secret": "line-secret", "channel_token": "line-token"})
        ev = {"type": "message", "mode": "active", "timestamp": int(time.time() * 1000),
              "source": {"type": "user", "userId": "Uxss"}, "replyToken": "rt-xss",
              "webhookEventId": "01HXSS" + uuid.uuid4().hex[:20].upper(), "deliveryContext": {"isRedelivery": False},
              "message": {"id": "48" + str(uuid.uuid4().int)[:16], "type": "text", "text": TEXT, "quoteToken": "q"}}
        raw = json.dumps({"destination": "U" + "0" * 32, "events": [ev]}).encode()
        r = requests.post(f"{self.url}/webhooks/line/{inbox.key}", data=raw, timeout=10,
                          headers={"Content-Type": "application/json",
                                   "X-Line-Signature": line.signature("line-secret", raw)})
        assert r.status_code == 200, r.text
        self.used.append("line")

    def messenger(self):
        try:
            from channels import messenger
        except ImportError:
            return
        from tests.channels.standins import GraphStandIn

        graph = self.stack.enter_context(GraphStandIn())
        inbox = f.inbox(kind="messenger", name="Messenger", settings={"graph_base": graph.url, "page_id": "1040"},
                        secrets={"app_secret": "app-secret", "page_token": "page-token", "verify_token": "vt"})
        now = int(time.time() * 1000)
        raw = json.dumps({"object": "page", "entry": [{"id": "1040", "time": now, "messaging": [
            {"sender": {"id": "7999"}, "recipient": {"id": "1040"}, "timestamp": now,
             "message": {"mid": "m_" + uuid.uuid4().hex, "text": TEXT}}]}]}).encode()
        r = requests.post(f"{self.url}/webhooks/messenger/{inbox.key}", data=raw, timeout=10,
                          headers={"Content-Type": "application/json",
                                   "X-Hub-Signature-256": messenger.hub_signature("app-secret", raw)})
        assert r.status_code == 200, r.text
        self.used.append("messenger")

    def social(self):
        try:
            from channels import social
        except ImportError:
            return
        inbox = f.inbox(kind="social", name="X", settings={"network": "x", "api_base": "http://127.0.0.1:9",
                                                           "account_id": "3000000001"},
                        secrets={"consumer_secret": "x-secret", "access_token": "x-token"})
        tweet = {"created_at": "Wed Oct 10 20:19:24 +0000 2018", "id_str": str(1850000000000000000 + time.time_ns() % 10**9),
                 "text": "@shop " + TEXT, "user": {"id_str": "4999", "name": NAME, "screen_name": "x_s<s>"},
                 "in_reply_to_status_id_str": None, "timestamp_ms": "1539202764000"}
        raw = json.dumps({"for_user_id": "3000000001", "tweet_create_events": [tweet]}).encode()
        r = requests.post(f"{self.url}/webhooks/social/{inbox.key}", data=raw, timeout=10,
                          headers={"Content-Type": "application/json",
                                   "x-twitter-webhooks-signature": social.x_signature("x-secret", raw)})
        assert r.status_code == 200, r.text
        self.used.append("social")

    def email(self):
        try:
            inbound = _email_inbound()
        except pytest.skip.Exception:
            return
        inbox = f.inbox(kind="email", name="Mail", settings={"address": "support@example.jp"})
        ingest(inbox, inbound)
        self.used.append("email")

    def widget(self, app):
        try:
            import channels.chat  # noqa: F401
        except ImportError:
            return
        inbox = f.inbox(kind="chat", name="Chat")
        c = socketio.test_client(app, namespace="/widget",
                                 auth={"inbox": inbox.key, "name": NAME[:80], "email": "w@example.com"})
        assert c.is_connected("/widget")
        answer = c.emit("message", {"text": TEXT, "client_id": uuid.uuid4().hex, "email": "w@example.com"},
                        namespace="/widget", callback=True)
        c.disconnect(namespace="/widget")
        assert answer.get("ok"), answer
        self.used.append("widget")


def test_hostile_customer_text_never_executes_in_any_agent_view(app):
    from contextlib import ExitStack

    api_inbox = f.inbox(kind="api", name="API")
    admin = f.agent(role=Role.admin, name="管理者")
    token = f.api_token(api_inbox)
    db.session.add(CannedReply(shortcut="xss", title=SUBJECT, body=TEXT))
    db.session.commit()
    dialogs: list[str] = []
    problems: list[str] = []

    def check(page, where: str, must_show: tuple[str, ...] = (), idle: bool = False) -> None:
        page.wait_for_load_state("networkidle" if idle else "load")
        seen = page.evaluate(_SCAN)
        if seen["xss"] or seen["injected"]:
            problems.append(f"{where}: __xss={seen['xss']} injected={seen['injected']}")
        for text in must_show:
            if text not in seen["text"]:
                problems.append(f"{where}: {text!r} not shown as text")

    with ExitStack() as stack, live_server(app) as server, chromium() as browser:
        ctx = browser.new_context(bypass_csp=True, locale="ja-JP")
        ctx.add_init_script("window.__xss = 0")
        page = ctx.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(server.url + "/login")
        page.fill("input[name=email]", admin.email)
        page.fill("input[name=password]", f.PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/agent/")
        page.wait_for_selector("body[data-live=ready]")

        # Live: payloads arrive while the inbox is open (rendered by the desk's JS).
        channels = Channels(server.url, stack)
        api_ticket = channels.api(token)
        page.wait_for_selector(f'tr[data-ticket-id="{api_ticket}"]', timeout=5000)
        check(page, "inbox (live row)", (NAME,))

        # Live on an open ticket: a second message lands in the open thread.
        page.goto(f"{server.url}/agent/tickets/{api_ticket}")
        page.wait_for_selector("body[data-live=ready]")
        channels.api(token)
        page.wait_for_function("() => document.querySelectorAll('#thread .msg').length >= 2", timeout=5000)
        check(page, "ticket (live message)", (PAYLOADS[0], PAYLOADS[6], NAME))

        channels.line()
        channels.messenger()
        channels.social()
        channels.email()
        channels.widget(app)
        update_ticket(db.session.get(Ticket, api_ticket), admin, tags=[TAG])
        db.session.commit()
        assert jobs.wait_idle(30)  # the LINE profile's fetch is a job on the server's thread

        # Server-rendered: every page, every ticket.
        page.goto(server.url + "/agent/")
        check(page, "inbox", (NAME,))
        db.session.expire_all()
        for t in db.session.scalars(select(Ticket).order_by(Ticket.id)):
            page.goto(f"{server.url}/agent/tickets/{t.id}")
            check(page, f"ticket {t.id} ({t.channel})", (PAYLOADS[0], "{{7*7}}"))
        page.goto(f"{server.url}/agent/?q=" + requests.utils.quote(PAYLOADS[1]))
        check(page, "inbox search")
        page.goto(server.url + "/admin/")
        check(page, "admin", (SUBJECT,))
        for path in ("/supervisor/", "/supervisor/insight"):
            page.goto(server.url + path)
            check(page, path, idle=True)  # tables are filled from /supervisor/api/*

        # The detector itself: an unescaped payload must be caught (and its dialog heard).
        from_desk = list(dialogs)
        page.set_content("<p>" + PAYLOADS[1] + "</p>")
        assert page.evaluate(_SCAN)["injected"], "the DOM scan misses a raw <img onerror>"
        page.wait_for_timeout(100)
        assert len(dialogs) > len(from_desk), "the dialog handler misses alert()"
        ctx.close()

    assert not from_desk, f"a payload opened a dialog: {from_desk}"
    assert not problems, "\n".join(problems)
    assert {"api", "email"} <= set(channels.used), channels.used
    print("channels exercised:", channels.used)
