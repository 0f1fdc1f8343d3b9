"""The website chat widget channel.

Visitors talk to the desk over the Socket.IO ``/widget`` namespace
(``helpdesk/realtime/widget_ns.py``), which turns what they send into a raw
dict and hands it to ``parse``; agent replies leave through ``send``, which
emits to the visitor's room after the delivery commit. There is no webhook:
``verify`` refuses everything so ``/webhooks/chat/...`` cannot be used to
speak as a visitor.

Pure helpers live here too (identity HMAC, attachment sniffing), so the
socket handlers and the upload view share one definition of "valid".
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from datetime import datetime, timezone
from typing import Any, Mapping
from urllib.parse import urlsplit

from .base import Adapter, Attachment, ChannelError, Inbound, Outbound, SendResult, register, valid_email

# A chat line longer than this is a paste or an attack, not a question.
MAX_TEXT = 5000
MAX_NAME = 100
MAX_IDENTIFIER = 128
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
# A site that may embed the widget, as a browser names it (CSP frame-ancestors): scheme, host, port.
_ORIGIN = re.compile(r"(https?)://((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                     r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?::(\d{1,5}))?/?")

# Content type -> the file name endings allowed for it. The type is decided by
# the bytes (magic numbers); the name must agree with it.
ALLOWED_TYPES: dict[str, tuple[str, ...]] = {
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg"),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
    "application/pdf": (".pdf",),
}


def sniff_type(data: bytes) -> str | None:
    """The content type the bytes really are, among the types we accept."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:1024].lstrip(b"\r\n\t ").startswith(b"%PDF-"):
        return "application/pdf"
    return None


_ZWJ = "\u200d"
# A subdivision flag (🏴 + tag letters + cancel tag, e.g. Scotland); any other tag character is
# invisible text.
_TAG_FLAG = re.compile("\U0001f3f4[\U000e0030-\U000e0039\U000e0061-\U000e007a]{2,6}\U000e007f")


def _emoji_like(ch: str) -> bool:
    """A pictograph, or what may end an emoji before a joiner (skin tone, VS16)."""
    return unicodedata.category(ch) == "So" or 0x1F000 <= ord(ch) <= 0x1FAFF or ch == "\ufe0f"


def _visible(text: str) -> str:
    """``text`` without control and format characters (bidi overrides, zero-width spaces, BOM,
    tag characters): they hide or reorder what the desk shows. A joiner (U+200D) between two
    emoji stays, and so does a subdivision flag: that is how 👨‍💻, 👨‍👩‍👧 and 🏴󠁧󠁢󠁳󠁣󠁴󠁿 are written.
    Unassigned code points in the emoji blocks stay too (emoji newer than this Python)."""
    out: list[str] = []
    k, n = 0, len(text)
    while k < n:
        ch = text[k]
        flag = _TAG_FLAG.match(text, k) if ch == "\U0001f3f4" else None
        if flag:
            out.append(flag.group())
            k = flag.end()
            continue
        cat = unicodedata.category(ch)
        if cat[0] != "C" \
                or (ch == _ZWJ and out and _emoji_like(out[-1][-1]) and k + 1 < n and _emoji_like(text[k + 1])) \
                or (cat == "Cn" and 0x1F000 <= ord(ch) <= 0x1FAFF):
            out.append(ch)
        k += 1
    return "".join(out)


def clean_filename(name: str) -> str:
    """A display-safe file name: no paths, no control characters, bounded length."""
    name = unicodedata.normalize("NFC", str(name or "")).replace("\\", "/").rsplit("/", 1)[-1]
    name = _visible(name).strip(" .")
    return name[-120:].lstrip(_ZWJ) or "file"


def check_attachment(filename: str, data: bytes, max_bytes: int = MAX_ATTACHMENT_BYTES) -> Attachment:
    """Accept an upload only if its bytes are an allowed type and its name agrees."""
    if not data:
        raise ChannelError("empty_file")
    if len(data) > max_bytes:
        raise ChannelError("file_too_large")
    ctype = sniff_type(data)
    if ctype is None:
        raise ChannelError("file_type_not_allowed")
    name = clean_filename(filename)
    if not name.lower().endswith(ALLOWED_TYPES[ctype]):
        # e.g. a PDF named photo.png, or an .exe renamed .pdf whose bytes are not a PDF
        raise ChannelError("file_type_mismatch")
    return Attachment(filename=name, content_type=ctype, size=len(data), data=data)


def clean_origin(value: Any) -> str | None:
    """An ``allowed_origins`` entry as the frame's CSP lists it (``https://shop.example.jp``, a
    trailing slash dropped), or None when it is not an http(s) origin: a path, a wildcard, a
    ``javascript:`` URL and anything else that is no site are refused, never read as "any site"."""
    if not isinstance(value, str):
        return None
    match = _ORIGIN.fullmatch(value.strip())
    if match is None or (match.group(3) and not 0 < int(match.group(3)) <= 65535):
        return None
    scheme, host, port = match.groups()
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def identity_hash(secret: str, identifier: str) -> str:
    """What the host site computes server-side: hex HMAC-SHA256(identity_secret, identifier)."""
    return hmac.new(secret.encode(), identifier.encode(), hashlib.sha256).hexdigest()


def verify_identity(secret: str, identifier: str, given: str) -> bool:
    """Constant-time check of the host's HMAC; no secret configured means no verified identities."""
    if not secret or not identifier or not given or not isinstance(given, str):
        return False
    return hmac.compare_digest(identity_hash(secret, identifier).encode(), given.strip().lower().encode())


def anonymous_key(token: str) -> str:
    """The visitor's conversation key from their browser token. Only a hash is stored or shown,
    so nobody reading the desk (or the database) learns a token that would open the chat."""
    return "v:" + hashlib.sha256(token.encode()).hexdigest()[:40]


def verified_key(inbox_key: str, identifier: str) -> str:
    """The conversation key of a host-site user: scoped to the inbox, as each site has its own users."""
    return f"u:{inbox_key}:{identifier}"


def clean_name(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    return _visible(value).strip()[:MAX_NAME].rstrip(_ZWJ)


@register
class ChatAdapter(Adapter):
    """Settings: ``prechat`` (bool: ask name and email before the first message),
    ``email_inbox_id`` (an email inbox for replies to visitors who left),
    ``allowed_origins`` (list of sites that may embed the widget; empty = any; see ``clean_origin``),
    ``title`` / ``greeting`` (widget texts). Secrets: ``identity_secret``."""

    kind = "chat"
    label = "Website chat"
    webhook = False

    def parse(self, raw: bytes | Mapping[str, Any]) -> list[Inbound]:
        """A widget message (already authenticated by the socket) -> one Inbound."""
        if not isinstance(raw, Mapping):
            raise ChannelError("bad_payload")
        key = raw.get("key")
        if not isinstance(key, str) or not key or len(key) > 255:
            raise ChannelError("bad_visitor")
        text = raw.get("text") if raw.get("text") is not None else ""
        if not isinstance(text, str):
            raise ChannelError("bad_payload")
        max_text = int(self.settings.get("max_text") or MAX_TEXT)
        if len(text) > max_text:
            raise ChannelError("too_long")
        text = text.replace("\r\n", "\n").replace("\r", "\n").strip()  # CRLF and a lone CR (old Mac)
        attachments = raw.get("attachments") or ()
        if not isinstance(attachments, (list, tuple)) or not all(isinstance(a, Attachment) for a in attachments):
            raise ChannelError("bad_payload")  # files arrive stored by the upload view, never from the socket
        attachments = tuple(attachments)
        if not text and not attachments:
            raise ChannelError("empty")
        client_id = raw.get("client_id")
        if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
            raise ChannelError("bad_client_id")
        email = raw.get("email") or None
        if email is not None and not (isinstance(email, str) and valid_email(email)):
            raise ChannelError("bad_email")
        meta: dict[str, Any] = {"widget": True, "reply_to": key}
        for extra in ("page_url", "offline", "verified"):
            if raw.get(extra):
                meta[extra] = raw[extra] if extra != "page_url" else str(raw[extra])[:500]
        return [
            Inbound(
                # The browser's id for the line: a resend after a reconnect is stored once.
                external_id=f"w:{hashlib.sha256(key.encode()).hexdigest()[:24]}:{client_id}",
                user_id=key,
                text=text,
                display_name=clean_name(raw.get("name")),
                email=email,
                attachments=attachments,
                # One conversation per visitor key: history never follows contact merges.
                thread_hints=(key,),
                new_thread=True,
                sent_at=datetime.now(timezone.utc),
                meta=meta,
            )
        ]

    def send(self, recipient: str, outbound: Outbound) -> SendResult:
        """Emit the reply to the visitor's room (after the delivery commit). If nobody is
        connected and an email inbox is configured, a copy follows by email."""
        from helpdesk.realtime import events
        from helpdesk.realtime import widget_ns

        payload = {
            "id": outbound.message_id,
            "direction": "out",
            "body": outbound.text,
            "agent_name": outbound.context.get("agent_name") or "",
            "sent_at": datetime.now(timezone.utc).isoformat(),
            # The same shape as the history's (widget_ns.visitor_message_json), plus the signed
            # link as a path: the frame is served from the desk, whatever PUBLIC_URL says.
            "attachments": [{"index": i, "filename": a.filename, "content_type": a.content_type, "size": a.size,
                             "url": urlsplit(a.url).path if a.url else None}
                            for i, a in enumerate(outbound.attachments)],
            # a survey's answer buttons and page, as in the history
            **widget_ns.visitor_extras(outbound.meta),
        }
        events.publish_to(events.visitor_room(recipient), "message.created", payload, events.WIDGET_NS)
        meta: dict[str, Any] = {}
        if not widget_ns.visitor_online(recipient):
            meta["visitor_offline"] = True
            if self.settings.get("email_inbox_id") and outbound.context.get("contact_email"):
                widget_ns.queue_email_copy(outbound.message_id)
                meta["email_copy"] = "queued"
        return SendResult(ok=True, external_id=f"chat-out-{outbound.message_id}", meta=meta)
