"""The contract every channel adapter follows, and the registry of adapters.

An adapter knows its provider and nothing about our database: it verifies and
parses what arrives, and sends what leaves. ``services.ingest`` and
``services.replies`` do the rest.
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Mapping


log = logging.getLogger(__name__)

# What no database can store in a text column: a lone UTF-16 surrogate (half an emoji, cut by
# a client's string slicing; UTF-8 has no encoding for it) and NUL (PostgreSQL refuses it).
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")


def storable(value: Any) -> Any:
    """``value`` with each character no database can store replaced by U+FFFD, in strings
    and in the dicts, lists and tuples holding them."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, Mapping):
        return {k: storable(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(storable(v) for v in value)
    return value


_EMAIL = re.compile(r"[^@\s<>\"']{1,64}@[^@\s<>\"']{1,190}\.[A-Za-z0-9-]{2,63}")


def valid_email(value: str) -> bool:
    """A plausible single address (no display name, no spaces or line breaks)."""
    return bool(value) and len(value) <= 254 and bool(_EMAIL.fullmatch(value))


def _make_storable(item: Any) -> None:
    """Replace, with a log line, what no database can store in a frozen dataclass's fields:
    the message is kept (a provider would retry a refusal for ever), minus those characters."""
    for name, value in vars(item).items():
        if (isinstance(value, str) and _UNSTORABLE.search(value)
                or value and isinstance(value, (Mapping, tuple)) and storable(value) != value):
            log.warning("%s %s: replaced characters no database can store (lone surrogates, NUL)",
                        type(item).__name__, name)
            object.__setattr__(item, name, storable(value))


class ChannelError(Exception):
    """Raised by an adapter for input it cannot accept (bad payload, bad signature)."""


class TransientSendError(Exception):
    """Raised by ``send`` when trying again later may succeed (timeouts, 429, 5xx)."""

    def __init__(self, message: str, retry_after: float | None = None, meta: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        # Progress of a send made of several requests (Messenger: text, then each file): stored
        # on the message and handed back in ``Outbound.meta``, so the retry resumes instead of
        # sending the first parts twice.
        self.meta = dict(meta or {})


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int = 0
    url: str | None = None  # where our store keeps it, or the provider's URL
    data: bytes | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        _make_storable(self)


@dataclass(frozen=True)
class Inbound:
    """One normalised message from a provider."""

    external_id: str
    user_id: str
    text: str
    display_name: str = ""
    email: str | None = None
    attachments: tuple[Attachment, ...] = ()
    # Conversation hint: email thread ids, a LINE group id, a widget conversation...
    thread_hints: tuple[str, ...] = ()
    subject: str = ""
    sent_at: datetime | None = None
    quoted: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    # Identity kind when it differs from the adapter kind (e.g. a LINE group member).
    identity_kind: str | None = None
    # A fresh conversation even if the contact has an open ticket (new email topic).
    new_thread: bool = False

    def __post_init__(self):
        _make_storable(self)


@dataclass(frozen=True)
class StatusUpdate:
    """A provider event that changes existing rows instead of adding a message:

    - ``delivered``/``read``: receipts for ``external_ids`` (or up to ``watermark``);
    - ``unsend``: the customer took ``external_ids`` back;
    - ``follow``/``unfollow``: ``user_id`` (un)subscribed;
    - ``edit``: the customer edited the message ``external_ids[0]``; ``meta``: ``text`` (the new
      text), ``num_edit`` (the provider's edit count, or None), ``at`` (ISO time of the edit, or None);
    - ``reaction``: the customer reacted to the message ``external_ids[0]`` (usually an agent's
      reply); ``meta``: ``action`` ("react" or "unreact"), ``emoji`` (may be "" on unreact),
      ``reaction`` (the provider's name for it: love, like...), ``at``.
    """

    kind: str
    user_id: str = ""
    external_ids: tuple[str, ...] = ()
    # Messenger receipts say "everything before this time"; epoch milliseconds.
    watermark: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        _make_storable(self)  # an edit's text is the customer's, like an Inbound's


@dataclass(frozen=True)
class Outbound:
    text: str
    ticket_id: int
    message_id: int
    subject: str = ""
    # Provider facts from the conversation (reply token, Message-IDs, ...).
    context: Mapping[str, Any] = field(default_factory=dict)
    # The agent's files: ``url`` is a signed, expiring public link (HELPDESK_PUBLIC_URL/files/...);
    # ``data`` holds the bytes only for adapters that set ``sends_file_data`` (email).
    attachments: tuple[Attachment, ...] = ()
    # Extras stored on the outbound message: quick replies, survey links, public/DM choice...
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    ok: bool
    external_id: str | None = None
    error: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


class Adapter:
    """Base class: subclasses set ``kind`` and override what their provider needs."""

    kind: ClassVar[str]
    label: ClassVar[str] = ""
    # Webhook channels verify signatures; polled and pushed-by-us channels do not.
    webhook: ClassVar[bool] = False
    testing_only: ClassVar[bool] = False
    # True for adapters that carry the files themselves (email MIME parts): only they get the
    # bytes in ``Outbound.attachments``; the others send the links.
    sends_file_data: ClassVar[bool] = False

    def __init__(self, settings: Mapping[str, Any] | None = None, secrets: Mapping[str, Any] | None = None):
        self.settings = dict(settings or {})
        self.secrets = dict(secrets or {})

    def verify(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """Whether a post to the public webhook route is the provider's own: webhook channels
        check its signature. Every other channel takes nothing there (email and chat arrive by
        their own paths, the API channel with its Bearer token on /api/v1)."""
        return False

    def handshake(self, args: Mapping[str, str]) -> tuple[int, str] | None:
        """Answer a provider's GET verification (Messenger hub.challenge, X CRC), if any."""
        return None

    def parse(self, raw: bytes | Mapping[str, Any]) -> list[Inbound | StatusUpdate]:
        """Provider payload -> normalised items. Raise ChannelError for bad input."""
        raise NotImplementedError

    def send(self, recipient: str, outbound: Outbound) -> SendResult:
        raise NotImplementedError

    @staticmethod
    def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
        if isinstance(a, str):
            a = a.encode()
        if isinstance(b, str):
            b = b.encode()
        return hmac.compare_digest(a, b)


def with_links(text: str, attachments: tuple[Attachment, ...] | list[Attachment]) -> str:
    """The text followed by a "📎 name" line and the link of each attachment: how files travel
    on channels that can only carry text."""
    lines = [f"📎 {a.filename}\n{a.url}" for a in attachments if a.url]
    if not lines:
        return text
    return "\n\n".join(part for part in (text.rstrip(), "\n".join(lines)) if part)


_registry: dict[str, type[Adapter]] = {}


def register(cls: type[Adapter]) -> type[Adapter]:
    """Class decorator: make an adapter reachable by its kind."""
    if cls.kind in _registry and _registry[cls.kind] is not cls:
        raise ValueError(f"channel kind {cls.kind!r} registered twice")
    _registry[cls.kind] = cls
    return cls


def adapter_class(kind: str) -> type[Adapter]:
    from . import load_all

    load_all()
    try:
        return _registry[kind]
    except KeyError:
        raise ChannelError(f"unknown channel kind: {kind!r}") from None


def kinds(include_testing: bool = False) -> list[str]:
    from . import load_all

    load_all()
    return sorted(k for k, c in _registry.items() if include_testing or not c.testing_only)
