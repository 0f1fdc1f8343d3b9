"""Email arrives two ways, both into services.ingest: IMAP polling of a mailbox,
and an SMTP listener for setups that forward mail to the desk.

Crash safety: a mail is only marked \\Seen (or moved) after its message is
committed, and ingest dedupes on Message-ID (or a hash of the raw bytes), so a
poll that dies half-way simply re-imports nothing on the next run. A mail we
cannot parse is moved to a quarantine folder and recorded in the audit log:
never lost silently, never retried forever, never imported twice.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import logging
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app
from sqlalchemy import select

from channels import get_adapter
from channels.base import ChannelError, Inbound

from ..extensions import db
from ..models import AuditLog, Delivery, Direction, Inbox, Message
from .ingest import IngestResult, ingest
from .replies import delivery_settled

log = logging.getLogger(__name__)

SKIP_KEYWORD = "$HelpdeskSkipped"
DEFAULT_POLL_INTERVAL = 60
MIN_POLL_INTERVAL = 5
POLL_BATCH = 200

_inbox_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass
class PollReport:
    inbox_id: int
    imported: int = 0
    duplicates: int = 0
    quarantined: int = 0
    dropped: int = 0  # bounces and our own mail: read, but no customer's message
    errors: list[str] = field(default_factory=list)
    # UIDs copied away and flagged \Deleted on servers without MOVE; expunged at the end.
    copied: list[str] = field(default_factory=list, repr=False)

    def __str__(self) -> str:
        text = (f"inbox {self.inbox_id}: {self.imported} imported, {self.duplicates} already imported, "
                f"{self.quarantined} quarantined, {self.dropped} dropped")
        return text + (f", errors: {'; '.join(self.errors)}" if self.errors else "")


class MailboxError(Exception):
    """The mailbox could not be reached or refused us (login, folder)."""


def email_inboxes(inbox_id: int | None = None) -> list[Inbox]:
    """Active email inboxes with an IMAP host to poll."""
    query = select(Inbox).where(Inbox.kind == "email", Inbox.active.is_(True)).order_by(Inbox.id)
    if inbox_id is not None:
        query = query.where(Inbox.id == inbox_id)
    return [i for i in db.session.scalars(query) if (i.settings or {}).get("imap_host")]


def poll_all(inbox_id: int | None = None) -> list[PollReport]:
    """Poll every email inbox once; one inbox failing never stops the others."""
    reports = []
    for inbox in email_inboxes(inbox_id):
        try:
            reports.append(poll_inbox(inbox))
        except Exception as exc:
            db.session.rollback()
            log.exception("polling inbox %s failed", inbox.id)
            reports.append(PollReport(inbox.id, errors=[f"{exc.__class__.__name__}: {exc}"]))
    return reports


# ------------------------------------------------------------------ both ways in


def receive(inbox: Inbox, inbound: Inbound) -> IngestResult | None:
    """Ingest a parsed mail, unless it is no customer's: a bounce marks the reply it returns as
    failed, and our own mail coming back (a loop) is dropped. None when nothing was ingested."""
    meta = inbound.meta or {}
    if "bounce" in meta:
        _apply_bounce(inbox, inbound.external_id, meta["bounce"])
        return None
    if meta.get("from_us"):
        log.warning("inbox %s: dropped mail %s from our own address %s (a mail loop?)", inbox.id,
                    inbound.external_id, inbound.email)
        return None
    return ingest(inbox, inbound)


def _apply_bounce(inbox: Inbox, external_id: str, bounce: dict[str, Any]) -> None:
    """Show a bounce's error on the reply it returns, the way a refused send is shown."""
    error = bounce.get("error")
    if error is None:
        log.info("inbox %s: delivery report %s announces no failure (a delay); dropped", inbox.id, external_id)
        return
    ids = bounce.get("message_ids") or []
    sent = {m.external_id: m for m in db.session.scalars(select(Message).where(
        Message.inbox_id == inbox.id, Message.direction == Direction.outbound, Message.external_id.in_(ids)))}
    msg = next((sent[i] for i in ids if i in sent), None)  # the returned mail's own id comes first
    if msg is None:
        log.warning("inbox %s: bounce %s names no mail we sent; dropped (%s)", inbox.id, external_id, error)
        return
    log.warning("inbox %s: message %s bounced: %s", inbox.id, msg.id, error)
    msg.delivery, msg.delivery_error = Delivery.failed, error
    delivery_settled(msg, msg.ticket)


# ------------------------------------------------------------------ IMAP


def imap_folder_name(name: str) -> str:
    """A folder name as IMAP wants it: modified UTF-7 (RFC 3501 5.1.3), quoted."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            b64 = base64.b64encode("".join(pending).encode("utf-16-be")).decode().rstrip("=")
            out.append("&" + b64.replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return '"' + "".join(out).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ssl_context(settings: dict[str, Any]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=settings.get("tls_ca_file") or None)
    if settings.get("tls_verify") is False:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect_imap(settings: dict[str, Any], secrets: dict[str, Any]) -> imaplib.IMAP4:
    """A logged-in IMAP connection (implicit TLS, STARTTLS or plain, per inbox)."""
    host = settings["imap_host"]
    security = str(settings.get("imap_security") or "tls").lower()
    port = int(settings.get("imap_port") or (993 if security == "tls" else 143))
    timeout = float(settings.get("imap_timeout") or 30)
    try:
        if security == "tls":
            imap = imaplib.IMAP4_SSL(host, port, ssl_context=_ssl_context(settings), timeout=timeout)
        else:
            imap = imaplib.IMAP4(host, port, timeout=timeout)
            if security == "starttls":
                imap.starttls(ssl_context=_ssl_context(settings))
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxError(f"cannot connect to {host}:{port}: {exc}") from None
    try:
        imap.login(settings.get("imap_user") or settings.get("address") or "",
                   str(secrets.get("imap_password") or ""))
    except imaplib.IMAP4.error as exc:
        _logout(imap)
        raise MailboxError(f"IMAP login refused: {exc}") from None
    # Servers announce more (MOVE, UIDPLUS) once logged in; imaplib keeps the old list.
    typ, data = imap.capability()
    if typ == "OK" and data and data[-1]:
        imap.capabilities = tuple(data[-1].decode("ascii", "replace").upper().split())
    return imap


def _logout(imap: imaplib.IMAP4) -> None:
    try:
        imap.logout()
    except (OSError, imaplib.IMAP4.error):
        pass


def _lock_for(inbox_id: int) -> threading.Lock:
    with _locks_guard:
        return _inbox_locks.setdefault(inbox_id, threading.Lock())


def poll_inbox(inbox: Inbox) -> PollReport:
    """Import new mail from one inbox's IMAP folder."""
    report = PollReport(inbox.id)
    lock = _lock_for(inbox.id)
    if not lock.acquire(blocking=False):
        report.errors.append("a poll of this inbox is already running")
        return report
    try:
        settings, secrets = dict(inbox.settings or {}), dict(inbox.secrets or {})
        imap = connect_imap(settings, secrets)
        try:
            _poll_folder(imap, inbox, settings, report)
        finally:
            _logout(imap)
    except MailboxError as exc:
        log.warning("inbox %s: %s", inbox.id, exc)
        report.errors.append(str(exc))
    finally:
        lock.release()
    log.info("%s", report)
    return report


def _poll_folder(imap: imaplib.IMAP4, inbox: Inbox, settings: dict[str, Any], report: PollReport) -> None:
    folder = settings.get("imap_folder") or "INBOX"
    typ, data = imap.select(imap_folder_name(folder))
    if typ != "OK":
        raise MailboxError(f"cannot open folder {folder!r}: {data}")
    move = settings.get("imap_after") == "move"
    criteria = ["UNDELETED", "UNKEYWORD", SKIP_KEYWORD] + ([] if move else ["UNSEEN"])
    typ, data = imap.uid("SEARCH", *criteria)
    if typ != "OK":
        raise MailboxError(f"search failed: {data}")
    uids = (data[0] or b"").split()[:int(settings.get("poll_batch") or POLL_BATCH)]
    adapter = get_adapter(inbox)
    try:
        for uid in uids:
            _import_one(imap, inbox, adapter, settings, uid.decode(), report)
    finally:
        _expunge(imap, report.copied, move)


_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


def _fetch(imap: imaplib.IMAP4, uid: str, item: str) -> bytes | None:
    typ, data = imap.uid("FETCH", uid, item)
    if typ != "OK":
        return None
    for part in data or []:
        if isinstance(part, tuple):
            return part[1]
        if isinstance(part, bytes) and item == "(RFC822.SIZE)" and _SIZE.search(part):
            return part
    return None


def _import_one(imap, inbox: Inbox, adapter, settings: dict[str, Any], uid: str, report: PollReport) -> None:
    quarantine = settings.get("imap_quarantine") or "Quarantine"
    size_line = _fetch(imap, uid, "(RFC822.SIZE)") or b""
    m = _SIZE.search(size_line)
    size = int(m.group(1)) if m else None
    oversize = size is not None and size > adapter.max_message_bytes
    raw = _fetch(imap, uid, "(BODY.PEEK[HEADER])" if oversize else "(BODY.PEEK[])")
    if raw is None:  # vanished (another client expunged it) between SEARCH and FETCH
        return
    try:
        inbound = adapter.parse_message(raw, size=size, folder=quarantine if oversize else None)
    except ChannelError as exc:
        _quarantine(imap, inbox, uid, raw, quarantine, str(exc), report)
        return
    except Exception as exc:  # a parser bug must not block the mailbox or lose the mail
        log.exception("inbox %s: parsing mail uid %s crashed", inbox.id, uid)
        _quarantine(imap, inbox, uid, raw, quarantine, f"internal error: {exc.__class__.__name__}", report)
        return
    # Database trouble propagates: the mail stays unmarked and the next poll tries again.
    result = receive(inbox, inbound)
    if result is None:
        report.dropped += 1
    elif result.created:
        report.imported += 1
    else:
        report.duplicates += 1
    if oversize:
        _quarantine(imap, inbox, uid, raw, quarantine, f"too large: {size} bytes (imported header only)", report)
    else:
        _finish(imap, settings, uid, report)


def _finish(imap: imaplib.IMAP4, settings: dict[str, Any], uid: str, report: PollReport) -> None:
    """Mark an imported mail done: \\Seen, or moved to the "imported" folder."""
    if settings.get("imap_after") == "move":
        if _move(imap, uid, settings.get("imap_move_to") or "Imported", report):
            return
        log.warning("could not move uid %s; flagging it instead", uid)
        imap.uid("STORE", uid, "+FLAGS", f"(\\Seen {SKIP_KEYWORD})")
    else:
        imap.uid("STORE", uid, "+FLAGS", "(\\Seen)")


def _move(imap: imaplib.IMAP4, uid: str, folder: str, report: PollReport) -> bool:
    name = imap_folder_name(folder)
    imap.create(name)  # NO when it exists already: fine
    if "MOVE" in imap.capabilities:
        typ, _ = imap.uid("MOVE", uid, name)
        return typ == "OK"
    typ, _ = imap.uid("COPY", uid, name)
    if typ != "OK":
        return False
    imap.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
    report.copied.append(uid)
    return True


def _expunge(imap: imaplib.IMAP4, uids: list[str], whole_folder_ok: bool) -> None:
    """Remove what we copied away. UID EXPUNGE touches only our mails; a plain EXPUNGE
    would also purge mails a person flagged deleted, so it is used only in move mode."""
    if not uids:
        return
    if "UIDPLUS" in imap.capabilities:
        imap.uid("EXPUNGE", ",".join(uids))
    elif whole_folder_ok:
        imap.expunge()


def _quarantine(imap, inbox: Inbox, uid: str, raw: bytes, folder: str, reason: str, report: PollReport) -> None:
    """Record a mail we skip and take it out of the poll, keeping it on the server."""
    head = raw[:8192].decode("ascii", "replace")

    def header(name: str) -> str:
        hit = re.search(rf"(?im)^{name}:[ \t]*(.*(?:\r?\n[ \t].*)*)", head)
        return re.sub(r"\s+", " ", hit.group(1)).strip()[:300] if hit else ""

    details = {"uid": uid, "reason": reason[:500], "folder": folder, "message_id": header("message-id"),
               "from": header("from"), "subject": header("subject"), "bytes_seen": len(raw)}
    db.session.add(AuditLog(agent_id=None, action="email.quarantined", object_type="inbox", object_id=inbox.id,
                            changes=details))
    db.session.commit()
    log.warning("inbox %s: mail uid %s quarantined to %r: %s", inbox.id, uid, folder, reason)
    report.quarantined += 1
    # The keyword first: if the move fails the mail still never comes back to the poll.
    imap.uid("STORE", uid, "+FLAGS", f"({SKIP_KEYWORD})")
    if not _move(imap, uid, folder, report):
        imap.uid("STORE", uid, "+FLAGS", "(\\Seen)")


# ------------------------------------------------------------------ scheduler


def poll_due(now: float | None = None) -> float:
    """Poll the inboxes whose interval has passed; returns seconds until the next is due.

    The background job calls this and re-enqueues itself, so polling needs no cron. With
    RQ workers, whichever worker runs the job claims each due inbox in Redis for its interval
    (``_claim``), so several workers poll it once per interval between them, not once each.
    """
    now = time.monotonic() if now is None else now
    next_due: dict[int, float] = current_app.extensions.setdefault("helpdesk.mail_due", {})
    inboxes = email_inboxes()
    next_in = float(DEFAULT_POLL_INTERVAL)
    for inbox in inboxes:
        interval = max(MIN_POLL_INTERVAL, float((inbox.settings or {}).get("poll_interval") or DEFAULT_POLL_INTERVAL))
        due = next_due.get(inbox.id, 0.0)
        if due <= now:
            wait = _claim(inbox.id, interval)
            if wait:  # another worker polled it within its interval
                due = now + wait
            else:
                try:
                    poll_inbox(inbox)
                except Exception:
                    db.session.rollback()
                    log.exception("polling inbox %s failed", inbox.id)
                due = time.monotonic() + interval
            next_due[inbox.id] = due
        next_in = min(next_in, max(1.0, due - time.monotonic()))
    return next_in


def _claim(inbox_id: int, interval: float) -> float:
    """0 when this process may poll the inbox now, else the seconds until it may. Only RQ
    workers share the work (the embedded desk is one process): they claim an inbox with a
    Redis key that lives for its interval. Redis down: poll anyway (IMAP UIDs and ingest's
    dedupe make a second poll harmless; a missed one is not)."""
    if current_app.config["JOBS"] != "rq":
        return 0.0
    from redis.exceptions import RedisError

    from ..jobs import jobs

    key = f"{current_app.config['SOCKETIO_CHANNEL']}:mail-poll:{inbox_id}"
    try:
        redis = jobs.queue().connection
        if redis.set(key, "1", nx=True, px=int(interval * 1000)):
            return 0.0
        return max(0.0, redis.pttl(key) / 1000)
    except RedisError as exc:
        log.warning("could not claim inbox %s for polling (%s); polling it here", inbox_id, exc)
        return 0.0


def run_scheduled_poll() -> float:
    """Body of the ``poll_email`` job: poll what is due, then schedule the next run."""
    from ..jobs import jobs

    delay = poll_due()
    if jobs.mode != "inline":
        jobs.enqueue("poll_email", delay=delay, job_id="helpdesk-poll-email")
    return delay


# ------------------------------------------------------------------ SMTP listener


class DeskSMTPHandler:
    """aiosmtpd handler: accepts mail for our inbox addresses and ingests it.

    Routing is by envelope recipient against each inbox's ``address`` setting. A
    mail we cannot parse is refused (the sender's server bounces it, so it is not
    lost) and recorded; a database hiccup answers 451 so the sender retries, which
    dedupe makes safe.
    """

    def __init__(self, app: Flask):
        self.app = app

    def _route(self, address: str) -> int | None:
        address = (address or "").strip().lower()
        with self.app.app_context():
            try:
                for inbox in db.session.scalars(select(Inbox).where(Inbox.kind == "email",
                                                                    Inbox.active.is_(True))):
                    if str((inbox.settings or {}).get("address") or "").strip().lower() == address:
                        return inbox.id
                return None
            finally:
                db.session.remove()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        loop = asyncio.get_running_loop()
        inbox_id = await loop.run_in_executor(None, self._route, address)
        if inbox_id is None:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        loop = asyncio.get_running_loop()
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        return await loop.run_in_executor(None, self.deliver, list(envelope.rcpt_tos), raw, session.peer)

    def deliver(self, rcpt_tos: list[str], raw: bytes, peer: Any = None) -> str:
        """Ingest one mail for each recipient inbox; returns the SMTP reply."""
        with self.app.app_context():
            try:
                inbox_ids = []
                for rcpt in rcpt_tos:
                    inbox_id = self._route(rcpt)
                    if inbox_id is not None and inbox_id not in inbox_ids:
                        inbox_ids.append(inbox_id)
                for inbox_id in inbox_ids:
                    inbox = db.session.get(Inbox, inbox_id)
                    adapter = get_adapter(inbox)
                    try:
                        inbound = adapter.parse_message(raw)
                    except ChannelError as exc:
                        self._record(inbox, raw, str(exc), peer)
                        return f"554 5.6.0 Message refused: {exc}"
                    except Exception as exc:
                        log.exception("SMTP listener: parsing mail for inbox %s crashed", inbox_id)
                        self._record(inbox, raw, f"internal error: {exc.__class__.__name__}", peer)
                        return "554 5.6.0 Message refused: could not be read"
                    receive(inbox, inbound)
                return "250 2.0.0 Message accepted"
            except Exception:
                db.session.rollback()
                log.exception("SMTP listener could not store a mail; asking the sender to retry")
                return "451 4.3.0 Temporary failure, please retry"
            finally:
                db.session.remove()

    @staticmethod
    def _record(inbox: Inbox, raw: bytes, reason: str, peer: Any) -> None:
        head = raw[:4096].decode("ascii", "replace")
        hit = re.search(r"(?im)^message-id:[ \t]*(\S+)", head)
        db.session.add(AuditLog(agent_id=None, action="email.refused", object_type="inbox", object_id=inbox.id,
                                changes={"reason": reason[:500], "message_id": hit.group(1)[:300] if hit else "",
                                         "peer": str(peer)[:100], "bytes": len(raw)}))
        db.session.commit()
        log.warning("SMTP listener refused a mail for inbox %s from %s: %s", inbox.id, peer, reason)


def smtp_controller(app: Flask, host: str = "127.0.0.1", port: int = 2525, max_bytes: int | None = None):
    """An aiosmtpd Controller serving the desk (start() / stop() it)."""
    from aiosmtpd.controller import Controller

    from channels.email import MAX_MESSAGE_BYTES

    return Controller(DeskSMTPHandler(app), hostname=host, port=port,
                      data_size_limit=max_bytes or MAX_MESSAGE_BYTES, decode_data=False)
