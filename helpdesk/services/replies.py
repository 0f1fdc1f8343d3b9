"""The one outbound path: agent replies and notes.

post_reply stores the message (pending), commits, emits, and queues the send;
``deliver`` (the send_message job) calls the adapter and records the outcome.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Sequence
from datetime import timedelta
from pathlib import PurePath

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from channels import get_adapter
from channels.base import Attachment, Outbound, TransientSendError
from channels.chat import clean_filename, sniff_type

from ..extensions import db
from ..jobs import jobs
from ..models import Agent, Delivery, Direction, Message, Status, Ticket
from ..models._types import utcnow
from ..realtime import events
from ..realtime.serializers import message_json, ticket_json
from . import storage

log = logging.getLogger(__name__)


# Files an agent attaches to one reply (the size of each is HELPDESK_MAX_REPLY_ATTACHMENT_MB).
MAX_REPLY_FILES = 5
# All files of one reply together: base64 makes an email a third bigger, and many mail servers
# refuse messages over 25 MB.
MAX_REPLY_TOTAL_MB = 20
# Names a customer's browser or mail client could open as a page or run: refused outright (and
# what is accepted is still only ever served as a download, see storage.served_type).
BLOCKED_EXTENSIONS = frozenset({
    ".html", ".htm", ".xhtml", ".shtml", ".mht", ".mhtml", ".svg", ".svgz", ".js", ".mjs", ".hta",
    ".exe", ".com", ".bat", ".cmd", ".scr", ".pif", ".cpl", ".msi", ".vbs", ".vbe", ".wsf", ".ps1",
    ".jar", ".lnk", ".reg",
})


class ReplyError(ValueError):
    """A reply the desk refuses (empty, too long, channel window closed...)."""


def reply_file_limits() -> dict[str, int]:
    """What the reply box enforces before sending and post_reply enforces again."""
    per_file = int(current_app.config["MAX_REPLY_ATTACHMENT_MB"])
    return {"max_files": MAX_REPLY_FILES, "max_mb": per_file, "max_bytes": per_file * 1024 * 1024,
            "max_total_mb": MAX_REPLY_TOTAL_MB, "max_total_bytes": MAX_REPLY_TOTAL_MB * 1024 * 1024}


def check_reply_files(files: Sequence[Attachment], ticket_id: int | None = None) -> list[Attachment]:
    """The agent's uploads made safe to store and send: names cleaned (no folders, no control
    characters), the type decided by the bytes for images and PDF; refused with a ReplyError
    (and a log line) if any file is empty, too big, of a dangerous type, or there are too many.
    All are checked before any is stored, so a refused reply leaves nothing behind."""
    limits = reply_file_limits()

    def refuse(reason: str, message) -> ReplyError:
        log.warning("reply files refused on ticket %s: %s", ticket_id, reason)
        return ReplyError(message)

    if len(files) > limits["max_files"]:
        raise refuse(f"{len(files)} files", _l("At most %(n)s files can be attached to one reply.",
                                               n=limits["max_files"]))
    checked: list[Attachment] = []
    for f in files:
        data = f.data or b""
        name = clean_filename(f.filename)
        if not data:
            raise refuse(f"empty file {name!r}", _l("The file %(name)s is empty.", name=name))
        if len(data) > limits["max_bytes"]:
            raise refuse(f"{name!r} has {len(data)} bytes",
                         _l("The file %(name)s is larger than %(mb)s MB.", name=name, mb=limits["max_mb"]))
        ext = PurePath(name).suffix.lower()
        if ext in BLOCKED_EXTENSIONS:
            raise refuse(f"dangerous type {name!r}",
                         _l("Files of this type (%(ext)s) cannot be sent. Please send it as a PDF or ZIP file.",
                            ext=ext))
        sniffed = sniff_type(data)
        guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
        # A name that claims an image or PDF the bytes are not gets no trusted type.
        ctype = sniffed or (guessed if guessed not in storage.INLINE_SAFE_TYPES else "application/octet-stream")
        checked.append(Attachment(filename=name, content_type=ctype, size=len(data), data=data))
    total = sum(a.size for a in checked)
    if total > limits["max_total_bytes"]:
        raise refuse(f"{total} bytes in all", _l("The attachments are larger than %(mb)s MB in total.",
                                                  mb=limits["max_total_mb"]))
    return checked


def post_reply(ticket: Ticket, agent: Agent | None, body: str, *, private: bool = False,
               meta: dict | None = None, sent_at=None, record_only: bool = False,
               files: Sequence[Attachment] = ()) -> Message:
    """Store an agent reply (or a system message such as a survey when agent is None).

    ``files`` are the agent's uploads (with their bytes): checked, stored like inbound
    attachments, and sent with the reply (or kept on the note).
    ``record_only`` stores a reply that was already delivered elsewhere (history
    imported from another desk, demo data): it is marked sent and never sent again.
    """
    if ticket.merged_into_id and not private:
        # Its conversation, and the customer's next message, are on that ticket now: an answer
        # sent from here would be the only message of a closed ticket.
        raise ReplyError(_l("This ticket was merged into #%(id)s: reply there.", id=ticket.merged_into_id))
    body = (body or "").strip()
    if not body and not files:
        raise ReplyError(_l("The reply is empty."))
    if len(body) > current_app.config["MAX_MESSAGE_CHARS"]:
        raise ReplyError(_l("The reply is too long."))
    checked = check_reply_files(files, ticket.id) if files else []
    if checked and not private and not (meta or {}).get("dm") and _answers_in_public(ticket):
        log.warning("reply files refused on ticket %s: the reply is a public post", ticket.id)
        raise ReplyError(_l("Files cannot go on a public reply: anyone who sees the post could open them. "
                            "Send them by direct message or email."))
    now = sent_at or utcnow()
    msg = Message(
        ticket=ticket,
        inbox_id=ticket.inbox_id,
        agent_id=agent.id if agent else None,
        meta=dict(meta or {}),
        attachments=[storage.save_attachment(a) for a in checked],
        direction=Direction.note if private else Direction.outbound,
        body=body,
        delivery=Delivery.none if private else Delivery.sent if record_only else Delivery.pending,
        sent_at=now,
        created_at=now,
    )
    db.session.add(msg)
    if not private:
        ticket.last_message_at = now
        if agent is not None:
            if ticket.first_response_at is None:
                ticket.first_response_at = now
            if ticket.status is Status.new:
                ticket.status = Status.open
            if ticket.assignee_id is None:
                ticket.assignee_id = agent.id  # whoever answers first owns the ticket
    db.session.flush()
    payload = message_json(msg) if private else {**message_json(msg), "ticket": ticket_json(ticket)}
    events.publish(events.MESSAGE_CREATED, payload, inbox_id=ticket.inbox_id, ticket_id=ticket.id)
    db.session.commit()
    if not private and not record_only:
        jobs.enqueue("send_message", msg.id)
    return msg


# How long a worker's claim on a reply it is sending lasts: far longer than any send takes
# (SMTP gives each step 30 s). A worker killed mid-send leaves the reply pending; once the claim
# has lapsed, another sends it.
SEND_CLAIM_SECONDS = 300


def deliver(message_id: int) -> None:
    """Send one pending outbound message; idempotent (a sent message is never resent).

    The message is claimed in a short transaction (``send_claimed_until``), which is committed
    before the provider's call: no transaction, and no row lock, is held open across a send that
    may take long (PostgreSQL ends a session idle in a transaction after a minute, and the send's
    result would be lost with it, the reply sent again by the sweep). Another worker asked to
    send it meanwhile (the sweep, a duplicate job) sees the claim and checks again when it lapses.
    """
    # The row lock makes a second worker wait for the claim, then see it (no double send); read
    # afresh, not from this session's identity map (inline jobs share their caller's session).
    msg = db.session.get(Message, message_id, with_for_update=True, populate_existing=True)
    if msg is None or msg.direction is not Direction.outbound or msg.delivery is not Delivery.pending:
        db.session.rollback()
        return
    now = utcnow()
    if msg.send_claimed_until is not None and msg.send_claimed_until > now:
        wait = (msg.send_claimed_until - now).total_seconds() + 1
        log.info("message %s is being sent by another worker; checking again in %.0f s", msg.id, wait)
        db.session.rollback()
        if jobs.mode != "inline":  # there it would run at once, and again, until the claim lapsed
            jobs.enqueue("send_message", message_id, delay=wait)
        return
    ticket = msg.ticket
    adapter = get_adapter(ticket.inbox)
    try:
        files = _outbound_files(msg, with_data=adapter.sends_file_data)
    except _MissingFile as exc:
        log.error("message %s not sent: attachment %s is missing from %s", msg.id, exc,
                  current_app.config["UPLOAD_DIR"])
        msg.delivery, msg.delivery_error = Delivery.failed, f"attachment file missing: {exc}"
        delivery_settled(msg, ticket)
        return
    outbound = Outbound(
        text=msg.body,
        ticket_id=ticket.id,
        message_id=msg.id,
        subject=ticket.subject,
        context=_context(ticket, msg),
        attachments=files,
        meta=dict(msg.meta or {}),
    )
    msg.delivery_attempts += 1
    msg.send_claimed_until = now + timedelta(seconds=SEND_CLAIM_SECONDS)
    db.session.commit()
    # What the provider answers is recorded below, in a new transaction (the objects reload).
    try:
        result = adapter.send(ticket.reply_to, outbound)
    except TransientSendError as exc:
        msg.send_claimed_until = None
        if exc.meta:
            msg.meta = {**(msg.meta or {}), **exc.meta}
        max_attempts = current_app.config["SEND_MAX_ATTEMPTS"]
        if msg.delivery_attempts < max_attempts:
            delay = exc.retry_after if exc.retry_after is not None else (
                current_app.config["SEND_BACKOFF_SECONDS"] * 2 ** (msg.delivery_attempts - 1))
            log.warning("send of message %s failed (%s); retry %s in %.1fs", msg.id, exc,
                        msg.delivery_attempts, delay)
            msg.delivery_error = str(exc)
            db.session.commit()
            jobs.enqueue("send_message", msg.id, delay=delay)
            return
        log.error("send of message %s failed for good after %s attempts: %s", msg.id, msg.delivery_attempts, exc)
        msg.delivery, msg.delivery_error = Delivery.failed, str(exc)
    except Exception as exc:  # an adapter bug must show up on the message, not vanish
        log.exception("adapter %s crashed sending message %s", ticket.inbox.kind, msg.id)
        msg.send_claimed_until = None
        msg.delivery, msg.delivery_error = Delivery.failed, f"internal error: {exc.__class__.__name__}"
    else:
        msg.send_claimed_until = None
        if result.ok:
            msg.delivery, msg.delivery_error = Delivery.sent, None
            if result.external_id:
                msg.external_id = result.external_id
            if result.meta:
                msg.meta = {**(msg.meta or {}), **result.meta}
        else:
            log.warning("send of message %s refused: %s", msg.id, result.error)
            msg.delivery, msg.delivery_error = Delivery.failed, result.error or "refused by provider"
    delivery_settled(msg, ticket)


def delivery_settled(msg: Message, ticket: Ticket) -> None:
    """Publish where the message's delivery ended, and commit. An answer that failed for good
    puts a ticket its agent resolved or set pending with it ("send and resolve") back to open:
    the customer never got it, and a resolved ticket leaves the agents' open queue. (A failed
    survey question is no answer and leaves the ticket as it is.)"""
    events.publish(events.MESSAGE_UPDATED, message_json(msg), inbox_id=msg.inbox_id, ticket_id=ticket.id)
    if (msg.delivery is Delivery.failed and ticket.status in (Status.resolved, Status.pending)
            and not (msg.meta or {}).get("survey")):
        log.warning("ticket %s reopened: its reply %s was not delivered", ticket.id, msg.id)
        ticket.status, ticket.resolved_at = Status.open, None
        events.publish(events.TICKET_UPDATED, ticket_json(ticket), inbox_id=ticket.inbox_id, ticket_id=ticket.id)
    db.session.commit()


def last_inbound(ticket: Ticket) -> Message | None:
    """The customer's latest message on a ticket: what a reply answers (reply token, public
    comment or DM, messaging window). Not an automatic reply (an out-of-office mail) while the
    customer's own message is among the latest ten: a reply to that would thread under it."""
    latest = db.session.scalars(
        select(Message)
        .where(Message.ticket_id == ticket.id, Message.direction == Direction.inbound)
        .order_by(Message.id.desc())
        .limit(10)
    ).all()
    return next((m for m in latest if not (m.meta or {}).get("auto_submitted")), latest[0] if latest else None)


def _answers_in_public(ticket: Ticket) -> bool:
    """Is the reply to this ticket a public post (a comment or tweet answered in the open)?
    The same message the adapter reads as ``last_inbound_meta`` decides."""
    last = last_inbound(ticket)
    return bool(last is not None and (last.meta or {}).get("public"))


def public_reply(ticket: Ticket) -> dict | None:
    """What the reply box tells the agent before a reply goes out in the open: None for a
    private conversation, else whether it may go by direct message instead (an X post: the
    social adapter sends a DM when the reply's meta asks; Facebook and Instagram comments
    can only be answered where they are)."""
    if not _answers_in_public(ticket):
        return None
    return {"dm_possible": getattr(get_adapter(ticket.inbox), "network", None) == "x"}


class _MissingFile(Exception):
    """A stored attachment whose file is no longer in UPLOAD_DIR."""


def _outbound_files(msg: Message, *, with_data: bool) -> tuple[Attachment, ...]:
    """The message's stored files as the adapter gets them: a signed public link each, and the
    bytes for adapters that attach files themselves."""
    files = []
    for index, entry in enumerate(msg.attachments or []):
        if not entry.get("stored"):
            continue
        data = None
        if with_data:
            path = storage.stored_path(entry["stored"])
            if path is None:
                raise _MissingFile(entry.get("filename") or entry["stored"])
            data = path.read_bytes()
        name = entry.get("filename") or "file"
        files.append(Attachment(filename=name, content_type=entry.get("content_type") or "application/octet-stream",
                                size=int(entry.get("size") or 0), url=storage.file_url(msg.id, index, name),
                                data=data))
    return tuple(files)


def _context(ticket: Ticket, msg: Message) -> dict:
    """What an adapter may need from the conversation: last inbound facts and thread ids."""
    last_in = last_inbound(ticket)
    external_ids = db.session.scalars(
        select(Message.external_id)
        .where(Message.ticket_id == ticket.id, Message.external_id.is_not(None),
               Message.direction != Direction.note)
        .order_by(Message.id)
    ).all()
    return {
        "thread_key": ticket.thread_key,
        "external_ids": list(external_ids),
        "last_inbound_external_id": last_in.external_id if last_in else None,
        "last_inbound_meta": dict(last_in.meta or {}) if last_in else {},
        "last_inbound_at": last_in.sent_at.isoformat() if last_in else None,
        "agent_name": msg.agent.name if msg.agent else "",
        "contact_email": ticket.contact.email,
        "contact_name": ticket.contact.display_name,
    }


def mark_delivery(inbox_id: int, external_ids: list[str], status: Delivery) -> int:
    """Provider receipts (delivered/read) move outbound messages forward, never back."""
    order = [Delivery.pending, Delivery.sent, Delivery.delivered, Delivery.read]
    rows = db.session.scalars(
        select(Message).where(Message.inbox_id == inbox_id, Message.external_id.in_(external_ids),
                              Message.direction == Direction.outbound)
    ).all()
    changed = 0
    for msg in rows:
        if msg.delivery in order and order.index(status) > order.index(msg.delivery):
            msg.delivery = status
            events.publish(events.MESSAGE_UPDATED, message_json(msg), inbox_id=inbox_id, ticket_id=msg.ticket_id)
            changed += 1
    db.session.commit()
    return changed
