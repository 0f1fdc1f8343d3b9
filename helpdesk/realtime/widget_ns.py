"""The /widget namespace: website visitors chatting with the desk.

A visitor is known by a conversation key: ``v:<hash of their browser token>``
for anonymous visitors, ``u:<inbox key>:<identifier>`` for host-site users
whose identifier carries a valid HMAC. The key is their ContactIdentity
(kind "chat"), their ticket's ``thread_key`` and ``reply_to``, and their room
``visitor:<key>``; history is read by that key only, so a visitor sees their
own conversation and nothing else, whatever merges agents make.

Flow: connect (auth: inbox key, token or identifier + hash) -> ``hello``
(history, presence, pre-chat, upload pass) -> ``message`` (ingest) ...
Errors come back in the ack and as a ``widget.error`` event with a code the
widget translates.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from dataclasses import dataclass, field

from flask import current_app, request
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, Namespace, emit, join_room
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from channels import get_adapter
from channels.base import Attachment, ChannelError
from channels.chat import MAX_IDENTIFIER, anonymous_key, clean_name, valid_email, verified_key, verify_identity

from ..extensions import db, socketio
from ..jobs import jobs
from ..models import ContactIdentity, Delivery, Direction, Inbox, Message, Ticket
from ..models._types import utcnow
from . import events, presence
from .agent_ns import on_agent_typing

log = logging.getLogger(__name__)

WIDGET_ERROR = "widget.error"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")
# Per visitor: a burst of 8 in 10 seconds, 30 a minute. A person typing never gets there.
DEFAULT_RATE = "8 per 10 seconds; 30 per minute"
PASS_MAX_AGE = 24 * 3600
HISTORY_LIMIT = 200
MAX_QUICK_REPLIES = 13  # LINE's limit, the strictest channel's: a survey offers at most 11 (NPS)
MAX_QUICK_REPLY = 100

# English texts for logs and API callers; the widget shows its own translation of the code.
ERRORS = {
    "unknown_inbox": "This chat is not available.",
    "invalid_identity": "The identity signature is not valid.",
    "rate_limited": "Too many messages; please wait a moment.",
    "too_long": "The message is too long.",
    "empty": "The message is empty.",
    "bad_payload": "The message could not be read.",
    "bad_client_id": "The message could not be read.",
    "bad_visitor": "The conversation could not be identified.",
    "bad_email": "Please enter a valid email address.",
    "bad_name": "Please enter your name.",
    "email_required": "Nobody is online; leave your email so we can answer.",
    "prechat_required": "Please tell us your name and email first.",
    "not_connected": "The chat is not connected.",
    "empty_file": "The file is empty.",
    "file_too_large": "The file is too large.",
    "file_type_not_allowed": "Only images (PNG, JPEG, GIF, WebP) and PDF files can be sent.",
    "file_type_mismatch": "The file name does not match its contents.",
    "unavailable": "The chat is temporarily unavailable.",
}


@dataclass
class Visitor:
    inbox_id: int
    key: str
    verified: bool = False
    name: str = ""
    email: str | None = None
    page_url: str = ""
    extra: dict = field(default_factory=dict)


class WidgetError(Exception):
    def __init__(self, code: str):
        super().__init__(code)
        self.code = code

    def as_dict(self) -> dict:
        return {"ok": False, "error": self.code, "message": ERRORS.get(self.code, self.code)}


_visitors: dict[str, Visitor] = {}
_lock = threading.Lock()


# ---- lookups shared with views/widget.py ----------------------------------------

def chat_inbox(key) -> Inbox | None:
    """The active chat inbox behind a widget key, or None."""
    if not isinstance(key, str) or not key or len(key) > 40:
        return None
    return db.session.scalar(select(Inbox).where(Inbox.key == key, Inbox.kind == "chat", Inbox.active.is_(True)))


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="helpdesk.widget.visitor")


def visitor_pass(visitor: Visitor) -> str:
    """A signed pass for the widget's HTTP calls (uploads, attachment downloads), so the
    identity checked once on connect is not re-proved, and cannot be forged, per request."""
    return _serializer().dumps({"i": visitor.inbox_id, "k": visitor.key, "v": visitor.verified})


def load_pass(value) -> Visitor | None:
    if not isinstance(value, str) or len(value) > 1000:
        return None
    try:
        data = _serializer().loads(value, max_age=PASS_MAX_AGE)
    except BadSignature:
        return None
    return Visitor(inbox_id=int(data["i"]), key=str(data["k"]), verified=bool(data["v"]))


def agents_online(inbox_id: int) -> bool:
    """Is an agent who can see this inbox connected to /agent, on any server?"""
    return presence.registry().agents_online(inbox_id)


def visitor_online(key: str) -> bool:
    """Is this visitor's widget connected to any server? Asked by the chat adapter's send,
    which in production runs in a worker with no sockets of its own."""
    return presence.registry().visitor_online(key)


def allow(visitor_key: str, inbox_id: int) -> bool:
    """Per-visitor flood control, on the limiter storage the app is configured with
    (memory embedded, Redis in production, so all servers count together)."""
    spec = current_app.config.get("WIDGET_RATE_LIMIT", DEFAULT_RATE)
    if not spec:
        return True
    from limits import parse_many
    from limits.storage import MemoryStorage, storage_from_string
    from limits.strategies import MovingWindowRateLimiter

    ext = current_app.extensions
    if "helpdesk.widget_limiter" not in ext:
        ext["helpdesk.widget_limiter"] = MovingWindowRateLimiter(
            storage_from_string(current_app.config["RATELIMIT_STORAGE_URI"],
                                **current_app.config.get("RATELIMIT_STORAGE_OPTIONS", {})))
    limiter = ext["helpdesk.widget_limiter"]
    try:
        return all(limiter.hit(item, "widget", str(inbox_id), visitor_key) for item in parse_many(spec))
    except limiter.storage.base_exceptions as exc:
        # Redis down: the visitor's message must not be lost to its flood control. This
        # process counts alone meanwhile, as the app's limiter does (extensions.py).
        log.warning("widget rate limit storage unreachable (%s): counting in this process's memory", exc)
        memory = ext.setdefault("helpdesk.widget_limiter_memory", MovingWindowRateLimiter(MemoryStorage()))
        return all(memory.hit(item, "widget", str(inbox_id), visitor_key) for item in parse_many(spec))


def _identity(key: str) -> ContactIdentity | None:
    return db.session.scalar(select(ContactIdentity).where(ContactIdentity.kind == "chat",
                                                           ContactIdentity.external_id == key))


def visitor_message_json(msg: Message) -> dict:
    """What a visitor may see of a message: never notes, never agent-only fields."""
    return {
        "id": msg.id,
        "direction": msg.direction.value,
        "body": msg.body,
        "agent_name": msg.agent.name if msg.agent and msg.direction is Direction.outbound else "",
        "sent_at": msg.sent_at.isoformat() if msg.sent_at else None,
        "attachments": [
            {"index": i, "filename": a.get("filename"), "content_type": a.get("content_type"), "size": a.get("size")}
            for i, a in enumerate(msg.attachments or []) if a.get("stored")
        ],
        **(visitor_extras(msg.meta) if msg.direction is Direction.outbound else {}),
    }


def visitor_extras(meta) -> dict:
    """What an outbound message offers beside its text, for the widget to draw: quick-reply
    buttons (a survey's answers, sent back as the visitor's message, as LINE and Messenger do)
    and a survey's page. Only present keys, so an ordinary reply looks as it always did."""
    meta = meta if isinstance(meta, dict) else {}
    quick = []
    for item in meta.get("quick_replies") or []:
        if not isinstance(item, dict):
            continue
        text = str(item.get("text") or item.get("label") or "").strip()[:MAX_QUICK_REPLY]
        if text:
            quick.append({"label": str(item.get("label") or text).strip()[:MAX_QUICK_REPLY], "text": text})
    extras: dict = {"quick_replies": quick[:MAX_QUICK_REPLIES]} if quick else {}
    url = (meta.get("survey") or {}).get("url") if isinstance(meta.get("survey"), dict) else None
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        extras["survey_url"] = url
    return extras


def history(visitor: Visitor) -> list[dict]:
    """The visitor's own conversation on this inbox: by conversation key, in and out only."""
    rows = db.session.scalars(
        select(Message)
        .join(Ticket, Message.ticket_id == Ticket.id)
        .where(Ticket.inbox_id == visitor.inbox_id, Ticket.thread_key == visitor.key,
               Message.direction.in_([Direction.inbound, Direction.outbound]), Message.unsent.is_(False))
        .order_by(Message.id.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    return [visitor_message_json(m) for m in reversed(rows)]


def visible_message(visitor: Visitor, message_id: int) -> Message | None:
    """A message only if it belongs to this visitor's conversation and is not a note."""
    msg = db.session.get(Message, message_id)
    if msg is None or msg.direction is Direction.note or msg.inbox_id != visitor.inbox_id:
        return None
    if msg.ticket.thread_key != visitor.key:
        return None
    return msg


def receive(inbox: Inbox, visitor: Visitor, data: dict, attachments: tuple[Attachment, ...] = ()) -> dict:
    """One visitor message through the one inbound path. Returns the visitor's view of it.
    Raises WidgetError with a code for anything refused."""
    from ..services.ingest import ingest

    if not allow(visitor.key, inbox.id):
        log.warning("widget rate limit hit by visitor %s on inbox %s", visitor.key[:24], inbox.id)
        raise WidgetError("rate_limited")
    raw = {
        "key": visitor.key,
        "text": data.get("text"),
        "client_id": data.get("client_id"),
        "name": visitor.name,
        "email": visitor.email,
        "page_url": visitor.page_url,
        "verified": visitor.verified,
        "offline": bool(data.get("offline")),
        "attachments": attachments,
    }
    try:
        (inbound,) = get_adapter(inbox).parse(raw)
    except ChannelError as exc:
        code = str(exc) if str(exc) in ERRORS else "bad_payload"
        log.warning("widget message refused on inbox %s from %s: %s", inbox.id, visitor.key[:24], code)
        raise WidgetError(code) from None
    result = ingest(inbox, inbound)
    payload = visitor_message_json(result.message)
    if result.created:
        # ingest has committed: every tab of this visitor shows the line at once.
        socketio.emit("message.created", payload, to=events.visitor_room(visitor.key), namespace=events.WIDGET_NS)
    return payload


def admit(inbox: Inbox, visitor: Visitor, data: dict) -> bool:
    """The checks every visitor message passes before ``receive``, a line of text or a file: a
    given email must be valid (and is kept), the pre-chat form comes first where the inbox asks
    for it, and with nobody online an email to answer to. An answer to a survey we asked is let
    through: it needs no answer. Returns whether an agent is online. Raises WidgetError."""
    email = data.get("email")
    if isinstance(email, str) and email.strip():
        if not valid_email(email.strip()):
            log.warning("widget message refused on inbox %s from %s: bad email", inbox.id, visitor.key[:24])
            raise WidgetError("bad_email")
        visitor.email = email.strip()
    online = agents_online(inbox.id)
    if _answers_survey(inbox, visitor, data):
        return online
    if _prechat_needed(inbox, visitor):
        # the widget shows the pre-chat form and sends the message again after it
        log.info("widget message held on inbox %s from %s: pre-chat form first", inbox.id, visitor.key[:24])
        raise WidgetError("prechat_required")
    if not online and not _known_email(visitor):
        log.info("widget message held on inbox %s from %s: no agent online, email asked first",
                 inbox.id, visitor.key[:24])
        raise WidgetError("email_required")
    return online


def _answers_survey(inbox: Inbox, visitor: Visitor, data: dict) -> bool:
    from ..services import surveys

    text = data.get("text")
    if not isinstance(text, str) or not surveys.may_answer(text):
        return False
    ident = _identity(visitor.key)
    return ident is not None and surveys.match_reply(inbox.id, ident.contact_id, text) is not None


def _prechat_needed(inbox: Inbox, visitor: Visitor) -> bool:
    if not (inbox.settings or {}).get("prechat") or visitor.verified:
        return False
    if visitor.name and visitor.email:
        return False
    ident = _identity(visitor.key)
    return not (ident and ident.contact.email)


def _known_email(visitor: Visitor) -> str | None:
    if visitor.email:
        return visitor.email
    ident = _identity(visitor.key)
    return ident.contact.email if ident else None


def _remember(visitor: Visitor, name: str, email: str) -> None:
    """Keep what the pre-chat or offline form said on the visitor's contact (created now if this
    is their first word), not only on this socket: after a reload, another page of the site or a
    dropped connection they are not asked again, and the desk knows whom it talks to.
    The contact's name and address only fill blanks: an anonymous form must not rewrite a known
    customer's."""
    from ..services.ingest import resolve_contact

    for attempt in range(2):
        try:
            contact = resolve_contact("chat", visitor.key, name, email or None)
            if name and not contact.name:
                contact.name = name
            db.session.commit()
            return
        except IntegrityError:  # the same visitor's other tab created the contact first
            db.session.rollback()
            if attempt:
                raise


def _mark_verified(visitor: Visitor) -> None:
    """Link a host-site user to their contact, flagged verified (created on first visit)."""
    from ..services.ingest import resolve_contact

    ident = _identity(visitor.key)
    if ident is not None and ident.verified:
        return
    try:
        resolve_contact("chat", visitor.key, visitor.name, visitor.email)
        _identity(visitor.key).verified = True
        db.session.commit()
    except IntegrityError:  # the same user connecting in two tabs at once: the other won
        db.session.rollback()
        _identity(visitor.key).verified = True
        db.session.commit()


# ---- the namespace ---------------------------------------------------------------

class WidgetNamespace(Namespace):
    def on_connect(self, auth=None):
        auth = auth if isinstance(auth, dict) else {}
        inbox = chat_inbox(auth.get("inbox"))
        if inbox is None:
            log.warning("widget connect for unknown inbox %r from %s", str(auth.get("inbox"))[:40],
                        request.remote_addr)
            raise ConnectionRefusedError(ERRORS["unknown_inbox"], {"code": "unknown_inbox"})
        name = clean_name(auth.get("name"))
        email = auth.get("email") if isinstance(auth.get("email"), str) and valid_email(auth["email"]) else None
        identifier = auth.get("identifier")
        token = None
        if identifier:
            if (not isinstance(identifier, str) or len(identifier) > MAX_IDENTIFIER
                    or not verify_identity(inbox.secret("identity_secret"), identifier, auth.get("identity_hash"))):
                log.warning("widget identity with a bad signature on inbox %s from %s", inbox.id,
                            request.remote_addr)
                raise ConnectionRefusedError(ERRORS["invalid_identity"], {"code": "invalid_identity"})
            visitor = Visitor(inbox.id, verified_key(inbox.key, identifier), verified=True, name=name, email=email)
            _mark_verified(visitor)
        else:
            token = auth.get("token")
            if not isinstance(token, str) or not _TOKEN.fullmatch(token):
                token = secrets.token_urlsafe(32)  # a new visitor (or a mangled token: start afresh)
            visitor = Visitor(inbox.id, anonymous_key(token), name=name, email=email)
        page = auth.get("page_url")
        visitor.page_url = page[:500] if isinstance(page, str) and page.startswith(("http://", "https://")) else ""
        visitor.extra["token"] = token
        with _lock:
            _visitors[request.sid] = visitor
        join_room(events.visitor_room(visitor.key))
        presence.registry().visitor_connected(request.sid, visitor.key)
        return True

    def on_disconnect(self, reason=None):
        with _lock:
            _visitors.pop(request.sid, None)
        presence.registry().disconnected(request.sid)

    def _visitor(self) -> Visitor:
        with _lock:
            visitor = _visitors.get(request.sid)
        if visitor is None:
            raise WidgetError("not_connected")
        return visitor

    def _fail(self, exc: WidgetError) -> dict:
        answer = exc.as_dict()
        emit(WIDGET_ERROR, {"code": answer["error"], "message": answer["message"]})
        return answer

    def on_hello(self, data=None):
        """Everything the widget needs after (re)connecting, in one answer."""
        try:
            visitor = self._visitor()
            inbox = db.session.get(Inbox, visitor.inbox_id)
            if inbox is None or not inbox.active:
                raise WidgetError("unknown_inbox")
            return {
                "ok": True,
                "token": visitor.extra.get("token"),
                "verified": visitor.verified,
                "pass": visitor_pass(visitor),
                "history": history(visitor),
                "agents_online": agents_online(inbox.id),
                "prechat": _prechat_needed(inbox, visitor),
                "email_known": bool(_known_email(visitor)),
            }
        except WidgetError as exc:
            return self._fail(exc)

    def on_presence(self, data=None):
        try:
            visitor = self._visitor()
            return {"ok": True, "agents_online": agents_online(visitor.inbox_id)}
        except WidgetError as exc:
            return self._fail(exc)

    def on_identify(self, data=None):
        """Pre-chat or offline form: name and email for this conversation."""
        try:
            visitor = self._visitor()
            data = data if isinstance(data, dict) else {}
            name = clean_name(data.get("name"))
            email = (data.get("email") or "").strip() if isinstance(data.get("email"), str) else ""
            if email and not valid_email(email):
                log.warning("widget visitor %s on inbox %s gave a bad email", visitor.key[:24], visitor.inbox_id)
                raise WidgetError("bad_email")
            if "name" in data and data.get("name") and not name:
                log.warning("widget visitor %s on inbox %s gave a bad name", visitor.key[:24], visitor.inbox_id)
                raise WidgetError("bad_name")
            if name:
                visitor.name = name
            if email:
                visitor.email = email
            if name or email:
                _remember(visitor, name, email)
            return {"ok": True, "email_known": bool(_known_email(visitor))}
        except WidgetError as exc:
            return self._fail(exc)

    def on_message(self, data=None):
        try:
            visitor = self._visitor()
            data = data if isinstance(data, dict) else {}
            inbox = db.session.get(Inbox, visitor.inbox_id)
            if inbox is None or not inbox.active:
                raise WidgetError("unknown_inbox")
            online = admit(inbox, visitor, data)
            message = receive(inbox, visitor, {**data, "offline": not online})
            return {"ok": True, "message": message, "agents_online": online}
        except WidgetError as exc:
            return self._fail(exc)
        except OperationalError:
            # Database down: nothing was stored (ingest commits once); the visitor may resend
            # with the same client id, which is stored once.
            db.session.rollback()
            log.error("database unavailable; widget message from %s refused", request.sid)
            return self._fail(WidgetError("unavailable"))


@on_agent_typing("chat")
def _agent_typing(ticket: Ticket) -> None:
    """The visitor sees "<agent> is typing…" (never for private notes: agent_ns filters those)."""
    name = current_user.name if current_user and current_user.is_authenticated else ""
    events.emit_now("agent.typing", {"agent_name": name, "typing": True},
                    to=events.visitor_room(ticket.reply_to), namespace=events.WIDGET_NS)


# ---- conversation continuity by email --------------------------------------------

def queue_email_copy(message_id: int) -> None:
    jobs.enqueue("chat_email_copy", message_id)


def send_email_copy(message_id: int) -> None:
    """A reply to a visitor who has left also goes by email, as an outbound message on a
    ticket in the configured email inbox: the email channel's threading then brings the
    customer's answer back to that ticket. Safe to run twice."""
    from channels import adapter_class

    from ..models import Status
    from ..services.replies import post_reply

    msg = db.session.get(Message, message_id)
    if msg is None or msg.direction is not Direction.outbound:
        return
    chat_ticket = msg.ticket
    contact = chat_ticket.contact
    raw_id = (chat_ticket.inbox.settings or {}).get("email_inbox_id")
    try:
        email_inbox = db.session.get(Inbox, int(raw_id))
    except (TypeError, ValueError):
        email_inbox = None
    if email_inbox is None or not email_inbox.active or not contact.email:
        log.warning("no email copy for chat message %s: email inbox %r or contact email missing", msg.id, raw_id)
        return
    thread_key = f"chat:{chat_ticket.id}"
    ticket = db.session.scalar(select(Ticket).where(Ticket.inbox_id == email_inbox.id, Ticket.thread_key == thread_key)
                               .order_by(Ticket.id.desc()).limit(1))
    if ticket is not None:
        done = db.session.scalars(select(Message).where(Message.ticket_id == ticket.id)).all()
        if any((m.meta or {}).get("chat_message_id") == msg.id for m in done):
            return
    else:
        ticket = Ticket(inbox=email_inbox, contact=contact, channel=email_inbox.kind, status=Status.open,
                        subject=chat_ticket.subject or "Chat", team_id=email_inbox.team_id,
                        thread_key=thread_key, reply_to=contact.email, assignee_id=msg.agent_id)
        db.session.add(ticket)
        db.session.flush()
    meta = {"chat_message_id": msg.id, "chat_ticket_id": chat_ticket.id}
    try:
        adapter_class(email_inbox.kind)
    except ChannelError:
        # The email adapter is not installed in this build: keep the copy as a pending
        # outbound on the email ticket, so nothing is lost and it can be sent later.
        now = utcnow()
        db.session.add(Message(ticket=ticket, inbox_id=email_inbox.id, agent_id=msg.agent_id, meta=meta,
                               direction=Direction.outbound, body=msg.body, delivery=Delivery.pending,
                               delivery_error="email adapter not available", sent_at=now, created_at=now))
        db.session.commit()
        log.warning("email adapter %r missing; chat message %s kept pending on ticket %s",
                    email_inbox.kind, msg.id, ticket.id)
        return
    post_reply(ticket, msg.agent, msg.body, meta=meta, files=_stored_files(msg))
    log.info("chat message %s copied by email to ticket %s", msg.id, ticket.id)


def _stored_files(msg: Message) -> list:
    """The agent's files on a chat reply, with their bytes, so the email copy carries them too."""
    from channels.base import Attachment

    from ..services import storage

    files = []
    for entry in msg.attachments or []:
        path = storage.stored_path(entry.get("stored") or "")
        if path is None:
            log.warning("file %r of chat message %s is missing; the email copy goes without it",
                        entry.get("filename"), msg.id)
            continue
        files.append(Attachment(filename=entry.get("filename") or "file",
                                content_type=entry.get("content_type") or "", data=path.read_bytes()))
    return files


def register(socketio_) -> None:
    """Once per process, like agent_ns."""
    if not any(h.namespace == events.WIDGET_NS for h in socketio_.namespace_handlers):
        socketio_.on_namespace(WidgetNamespace(events.WIDGET_NS))
