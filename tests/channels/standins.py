"""Local stand-ins for the LINE, Meta Graph and X APIs.

Each accepts the requests its provider documents (method, path, auth header or
access_token, JSON shape) and answers the way the provider does, including its errors.
Tests script failures with ``fail(...)`` and read what was sent from ``calls``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class StandIn:
    """A threaded HTTP server whose ``route(call)`` decides each answer."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._failures: list[tuple[str, Reply, list[int]]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                call = Call(self.command, parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
                            {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                with owner._lock:
                    owner.calls.append(call)
                reply = owner._scripted(call) or owner.route(call)
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(
                    reply.body if reply.body is not None else {}).encode()
                self.send_response(reply.status)
                ctype = "application/octet-stream" if isinstance(reply.body, bytes) else "application/json"
                self.send_header("Content-Type", reply.headers.pop("Content-Type", ctype))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _handle

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, path_contains: str, status: int, body: Any = None, headers: dict | None = None,
             times: int = 1) -> None:
        """The next ``times`` requests whose path contains ``path_contains`` get this answer."""
        self._failures.append((path_contains, Reply(status, body, dict(headers or {})), [times]))

    def _scripted(self, call: Call) -> Reply | None:
        with self._lock:
            for path, reply, left in self._failures:
                if path in call.path and left[0] > 0:
                    left[0] -= 1
                    return Reply(reply.status, reply.body, dict(reply.headers))
        return None

    def sent(self, path_contains: str) -> list[Call]:
        return [c for c in self.calls if path_contains in c.path]

    def route(self, call: Call) -> Reply:
        return Reply(404, {"message": "Not found"})


# ---- LINE ------------------------------------------------------------------------------------

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class LineStandIn(StandIn):
    """api.line.me and api-data.line.me (one server each: ``data`` is the content host)."""

    def __init__(self, token: str = "line-token", data_host: bool = False) -> None:
        super().__init__()
        self.token = token
        self.data_host = data_host
        self.reply_tokens: set[str] = set()
        self.retry_keys: dict[str, str] = {}
        self.profiles: dict[str, dict] = {}
        self.contents: dict[str, bytes] = {}
        self._ids = itertools.count(500000000000000001)

    def _sent(self, n: int) -> dict:
        return {"sentMessages": [{"id": str(next(self._ids)), "quoteToken": uuid.uuid4().hex} for _ in range(n)]}

    @staticmethod
    def _messages_ok(messages: Any) -> str | None:
        if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
            return "Size must be between 1 and 5"
        for m in messages:
            if m.get("type") == "image":
                # LINE: both URLs HTTPS and at most 2000 characters.
                for key in ("originalContentUrl", "previewImageUrl"):
                    url = m.get(key)
                    if not isinstance(url, str) or not url.startswith("https://") or len(url) > 2000:
                        return f"The property, '{key}', in the request body is invalid"
            # LINE counts text in UTF-16 code units: an emoji such as 🙇 is two of its 5000.
            elif m.get("type") != "text" or not m.get("text") or len(m["text"].encode("utf-16-le")) // 2 > 5000:
                return "The property, 'text', in the request body is invalid"
            qr = m.get("quickReply")
            if qr is not None:
                items = qr.get("items") or []
                if not 1 <= len(items) <= 13 or any(i.get("type") != "action" or
                                                    i["action"].get("type") != "message" or
                                                    len(i["action"].get("label", "")) > 20 for i in items):
                    return "Invalid quick reply"
        return None

    def route(self, call: Call) -> Reply:
        if call.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, {"message": "Authentication failed. Confirm that the access token in the "
                                          "authorization header is valid."})
        content = re.fullmatch(r"/v2/bot/message/(\w+)/content", call.path)
        if self.data_host:
            if call.method == "GET" and content and content.group(1) in self.contents:
                return Reply(200, self.contents[content.group(1)], {"Content-Type": "image/jpeg"})
            return Reply(404, {"message": "Not found"})
        if content:
            return Reply(404, {"message": "Not found"})  # content lives on the api-data host only
        if call.method == "POST" and call.path == "/v2/bot/message/reply":
            if "x-line-retry-key" in call.headers:
                return Reply(400, {"message": "The retry key is not supported for this API"})
            body = call.json
            error = self._messages_ok(body.get("messages"))
            if error:
                return Reply(400, {"message": error})
            if body.get("replyToken") not in self.reply_tokens:
                return Reply(400, {"message": "Invalid reply token"})
            self.reply_tokens.discard(body["replyToken"])
            return Reply(200, self._sent(len(body["messages"])))
        if call.method == "POST" and call.path == "/v2/bot/message/push":
            body = call.json
            key = call.headers.get("x-line-retry-key")
            if key is not None and not _UUID.match(key):
                return Reply(400, {"message": "The value for the 'X-Line-Retry-Key' header is invalid"})
            error = self._messages_ok(body.get("messages"))
            if error or not body.get("to"):
                return Reply(400, {"message": error or "The property, 'to', in the request body is invalid"})
            if key in self.retry_keys:
                return Reply(409, {"message": "The retry key is already accepted",
                                   "sentMessages": []}, {"x-line-accepted-request-id": self.retry_keys[key]})
            if key:
                self.retry_keys[key] = uuid.uuid4().hex
            return Reply(200, self._sent(len(body["messages"])), {"x-line-request-id": uuid.uuid4().hex})
        if call.method == "POST" and call.path == "/v2/bot/chat/loading/start":
            body = call.json
            secs = body.get("loadingSeconds", 20)
            if not str(body.get("chatId", "")).startswith("U") or secs % 5 or not 5 <= secs <= 60:
                return Reply(400, {"message": "The request body has 1 error(s)"})
            return Reply(202, {})
        prof = re.fullmatch(r"/v2/bot/(?:profile|group/[^/]+/member|room/[^/]+/member)/([^/]+)", call.path)
        if call.method == "GET" and prof:
            user = self.profiles.get(prof.group(1))
            return Reply(200, user) if user else Reply(404, {"message": "Not found"})
        return Reply(404, {"message": "Not found"})


# ---- Meta Graph ----------------------------------------------------------------------------------


class GraphStandIn(StandIn):
    def __init__(self, page_token: str = "page-token", app_secret: str = "app-secret") -> None:
        super().__init__()
        self.page_token, self.app_secret = page_token, app_secret
        self._ids = itertools.count(1)

    def _auth_error(self, call: Call) -> Reply | None:
        # Graph accepts the token as a Bearer header; we never put it in a URL.
        if call.headers.get("authorization") != f"Bearer {self.page_token}" or "access_token" in call.query:
            return Reply(400, {"error": {"message": "Invalid OAuth access token - Cannot parse access token",
                                         "type": "OAuthException", "code": 190, "fbtrace_id": "A1"}})
        proof = hmac.new(self.app_secret.encode(), self.page_token.encode(), hashlib.sha256).hexdigest()
        if call.query.get("appsecret_proof") != proof:
            return Reply(400, {"error": {"message": "Invalid appsecret_proof provided in the API argument",
                                         "type": "GraphMethodException", "code": 100, "fbtrace_id": "A2"}})
        return None

    def route(self, call: Call) -> Reply:
        err = self._auth_error(call)
        if err:
            return err
        if call.method == "POST" and re.fullmatch(r"/v\d+\.\d+/me/messages", call.path):
            body = call.json
            if not (body.get("recipient") or {}).get("id"):
                return Reply(400, {"error": {"message": "(#100) The parameter recipient is required",
                                             "type": "OAuthException", "code": 100}})
            if "sender_action" in body:
                return Reply(200, {"recipient_id": body["recipient"]["id"]})
            mtype = body.get("messaging_type")
            if mtype not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
                return Reply(400, {"error": {"message": "(#100) messaging_type is invalid", "code": 100}})
            if mtype == "MESSAGE_TAG" and body.get("tag") not in ("HUMAN_AGENT", "ACCOUNT_UPDATE",
                                                                   "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"):
                return Reply(400, {"error": {"message": "(#100) Tag is invalid", "code": 100}})
            message = body.get("message") or {}
            if "attachment" in message:
                # One attachment per message, no text beside it; Meta fetches payload.url itself.
                att = message["attachment"] or {}
                url = (att.get("payload") or {}).get("url")
                if "text" in message or att.get("type") not in ("image", "audio", "video", "file"):
                    return Reply(400, {"error": {"message": "(#100) Invalid attachment", "code": 100}})
                if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                    return Reply(400, {"error": {"message": "(#100) Invalid attachment url", "code": 100}})
                return Reply(200, {"recipient_id": body["recipient"]["id"], "message_id": f"m_out{next(self._ids)}",
                                   "attachment_id": str(next(self._ids))})
            text = message.get("text")
            if not text or len(text) > 2000:
                return Reply(400, {"error": {"message": "(#100) Length of param message[text] must be less "
                                                        "than or equal to 2000", "code": 100}})
            return Reply(200, {"recipient_id": body["recipient"]["id"], "message_id": f"m_out{next(self._ids)}"})
        edge = re.fullmatch(r"/v\d+\.\d+/([\w]+)/(comments|replies)", call.path)
        if call.method == "POST" and edge:
            if not call.form.get("message"):
                return Reply(400, {"error": {"message": "(#100) Missing message", "code": 100}})
            return Reply(200, {"id": f"{edge.group(1)}_r{next(self._ids)}"})
        return Reply(400, {"error": {"message": "Unsupported post request.", "type": "GraphMethodException",
                                     "code": 100}})


# ---- X ----------------------------------------------------------------------------------------------


class XStandIn(StandIn):
    def __init__(self, token: str = "x-user-token") -> None:
        super().__init__()
        self.token = token
        self.mentions: list[dict] = []  # v2 tweet objects
        self.users: list[dict] = []
        self.page_size = 100
        self._ids = itertools.count(1900000000000000001)

    def route(self, call: Call) -> Reply:
        if call.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, {"title": "Unauthorized", "type": "about:blank", "status": 401,
                               "detail": "Unauthorized"})
        if call.method == "POST" and call.path == "/2/tweets":
            body = call.json
            if not body.get("text"):
                return Reply(400, {"title": "Invalid Request", "detail": "text is required"})
            return Reply(201, {"data": {"id": str(next(self._ids)), "text": body["text"],
                                        "edit_history_tweet_ids": []}})
        dm = re.fullmatch(r"/2/dm_conversations/with/(\d+)/messages", call.path)
        if call.method == "POST" and dm:
            if not call.json.get("text"):
                return Reply(400, {"title": "Invalid Request", "detail": "text is required"})
            return Reply(201, {"data": {"dm_conversation_id": f"1-{dm.group(1)}",
                                        "dm_event_id": str(next(self._ids))}})
        mentions = re.fullmatch(r"/2/users/(\d+)/mentions", call.path)
        if call.method == "GET" and mentions:
            since = int(call.query.get("since_id") or 0)
            rows = sorted((t for t in self.mentions if int(t["id"]) > since), key=lambda t: -int(t["id"]))
            start = int(call.query.get("pagination_token") or 0)
            page = rows[start:start + self.page_size]
            meta: dict[str, Any] = {"result_count": len(page)}
            if page:
                meta.update(newest_id=page[0]["id"], oldest_id=page[-1]["id"])
            if start + self.page_size < len(rows):
                meta["next_token"] = str(start + self.page_size)
            body: dict[str, Any] = {"meta": meta}
            if page:
                body["data"] = page
                body["includes"] = {"users": self.users}
            return Reply(200, body)
        return Reply(404, {"title": "Not Found Error", "detail": "Sorry, that page does not exist"})

