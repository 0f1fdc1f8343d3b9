"""The email channel: raw RFC 5322 mail in, SMTP replies out.

Mail reaches ``parse`` from the IMAP poller or the SMTP listener
(``helpdesk/services/mailbox.py``), never from the public webhook route.
Replies carry our own stable Message-ID, In-Reply-To/References and a [#id]
subject token so the customer's answer threads back into the same ticket.

Inbox settings: ``address`` (the support address; the SMTP listener routes on it),
``from_address``/``from_name``, ``smtp_host``/``smtp_port``/``smtp_security``
(starttls|tls|plain)/``smtp_user``, ``imap_host``/``imap_port``/``imap_security``/
``imap_user``/``imap_folder``/``imap_after`` (seen|move)/``imap_move_to``/
``imap_quarantine``, ``poll_interval``, ``outbound_charset`` (utf-8|iso-2022-jp),
``tls_ca_file``/``tls_verify``, ``max_message_bytes``, ``max_attachment_bytes``,
``signature`` (put under every reply, before the quoted mail; ``{agent}`` is the
replying agent's name).
Secrets: ``smtp_password``, ``imap_password``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import smtplib
import socket
import ssl
import unicodedata
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesParser, Parser
from email.utils import format_datetime, getaddresses, parseaddr, parsedate_to_datetime
from typing import Any, Mapping

from ._mail_quote import split_reply
from ._mail_text import (
    b64decode_lenient,
    clean_header_text,
    decode_bytes,
    decode_header_value,
    html_to_text,
    normalize_subject,
    subject_is_auto_reply,
    subject_is_bounce,
    subject_is_forward,
    subject_is_reply,
    ticket_token,
)
from .base import Adapter, Attachment, ChannelError, Inbound, Outbound, SendResult, TransientSendError, register

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 25 * 1024 * 1024
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_ATTACHMENTS = 50
MAX_MIME_DEPTH = 10
MAX_MIME_PARTS = 200
MAX_BODY_CHARS = 50_000
MAX_TEXT_PART_CHARS = 1_000_000
QUOTE_SOURCE_CHARS = 2_000
MAX_LINE_OCTETS = 998  # RFC 5321 4.5.3.1.6, without the CRLF
JST = timezone(timedelta(hours=9), "JST")

# Printable ASCII only: an 8-bit or control-character id falls back to the content hash.
_MSGID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,250}>")
_ADDRESS = re.compile(r"^[^@\s<>\"',;:()\[\]\\]+@[A-Za-z0-9.\-\[\]:]+$")
_MULTIPART_DECL = re.compile(rb"(?im)^content-type:\s*multipart/")
_WEEKDAYS = "月火水木金土日"
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def message_ids(value: str | None) -> list[str]:
    """Every <id> in an In-Reply-To or References header, in order."""
    return _MSGID.findall(value or "")


def normalize_address(addr: str) -> str | None:
    """A plain lower-cased addr-spec, or None: also what keeps CR/LF out of To/From."""
    addr = (addr or "").strip().strip("<>").strip()
    if any("\udc80" <= c <= "\udcff" for c in addr):  # raw 8-bit header: SMTPUTF8 addresses are UTF-8
        try:
            addr = addr.encode("ascii", "surrogateescape").decode("utf-8")
        except UnicodeError:
            return None
    if not addr or not _ADDRESS.match(addr) or len(addr) > 254 or not addr.isprintable():
        return None
    return addr.lower()


@register
class EmailAdapter(Adapter):
    kind = "email"
    label = "Email"
    sends_file_data = True  # agents' files go as real MIME attachments, not links

    # -------------------------------------------------------------- inbound

    def parse(self, raw: bytes | Mapping[str, Any]) -> list[Inbound]:
        """The adapter contract's entry point; mail code calls parse_message directly."""
        if not isinstance(raw, (bytes, bytearray)):
            raise ChannelError("email expects raw RFC 5322 bytes")
        return [self.parse_message(bytes(raw))]

    @property
    def max_message_bytes(self) -> int:
        return int(self.settings.get("max_message_bytes") or MAX_MESSAGE_BYTES)

    @property
    def max_attachment_bytes(self) -> int:
        return int(self.settings.get("max_attachment_bytes") or MAX_ATTACHMENT_BYTES)

    def parse_message(self, raw: bytes, *, size: int | None = None, folder: str | None = None) -> Inbound:
        """One mail -> Inbound. A mail over the size limit becomes a header-only record
        (``size`` says how big the whole mail was when only its header was fetched)."""
        if not raw or not raw.strip():
            raise ChannelError("empty message")
        full_size = size if size is not None else len(raw)
        oversize = full_size > self.max_message_bytes
        if oversize:
            raw = _header_block(raw)
        if len(_MULTIPART_DECL.findall(raw)) > MAX_MIME_PARTS:
            raise ChannelError("too many MIME parts (mail bomb?)")
        try:
            msg = BytesParser(policy=email_policy.compat32).parsebytes(raw)
        except RecursionError:
            raise ChannelError("MIME structure nested too deeply") from None
        name, address = self._sender(msg)
        if address is None:
            raise ChannelError("no usable sender address (From/Sender/Return-Path)")
        subject = decode_header_value(_raw_header(msg, "subject"))
        mid = (message_ids(_raw_header(msg, "message-id")) or [None])[0]
        external_id = mid or "sha256:" + hashlib.sha256(raw).hexdigest()
        reply_ids = message_ids(_raw_header(msg, "in-reply-to"))
        refs = message_ids(_raw_header(msg, "references"))
        meta: dict[str, Any] = {"message_id": mid, "subject": subject}
        reply_to = None
        for _, addr in getaddresses([_raw_header(msg, "reply-to") or ""]):
            reply_to = normalize_address(addr)
            if reply_to:
                break
        meta["to"] = [a for a in (normalize_address(x) for _, x in getaddresses(
            [_raw_header(msg, "to") or "", _raw_header(msg, "cc") or ""])) if a][:50]
        if _auto_submitted(msg) or subject_is_auto_reply(subject):
            meta["auto_submitted"] = True  # a vacation notice is no answer: it must not reopen the ticket
        # Ingest points the ticket's replies at meta["reply_to"]. A machine's mail names only the
        # machine (a no-reply acknowledgement threaded into the ticket) unless it says whom to
        # answer (a web form's Reply-To): without one, the ticket keeps its address.
        if reply_to or not meta.get("auto_submitted"):
            meta["reply_to"] = reply_to or address
        bounce = _bounce(msg, address, name, subject)
        if bounce is not None:
            meta["bounce"] = bounce
        elif address in self.own_addresses:
            meta["from_us"] = True  # our own mail coming back: a forwarding or alias loop
        attachments: list[Attachment] = []
        if oversize:
            meta["oversize"] = {"size": full_size, "limit": self.max_message_bytes, "folder": folder}
            text = (f"[このメールは大きすぎるため本文と添付ファイルを取り込んでいません"
                    f"（{_size_text(full_size)}、上限 {_size_text(self.max_message_bytes)}）。"
                    + (f"元のメールはメールボックスのフォルダ「{folder}」にあります。]" if folder else "]"))
            quoted = None
        else:
            walker = _Walker(self.max_attachment_bytes)
            walker.walk(msg, 0)
            attachments = walker.attachments
            notes = walker.notes
            if msg.defects:
                meta["defects"] = sorted({d.__class__.__name__ for d in msg.defects})[:10]
            text = "\n\n".join(t for t in walker.texts if t.strip())
            if len(text) > MAX_BODY_CHARS * 4:  # bound the work of quote detection on huge bodies
                text = text[:MAX_BODY_CHARS * 4]
            text, quoted = split_reply(text, forward=subject_is_forward(subject))
            if len(text) > MAX_BODY_CHARS:
                text, meta["truncated"] = text[:MAX_BODY_CHARS] + "\n…", True
            if notes:
                meta["notes"] = notes
            meta["quote"] = text[:QUOTE_SOURCE_CHARS]
        hints: list[str] = []
        for h in reply_ids + list(reversed(refs)):
            if h not in hints and h != mid:
                hints.append(h)
        token = ticket_token(subject)
        if token is not None:
            hints.append(f"ticket:{token}")
        # A "Re:" without threading headers (some carrier mailers drop them) continues the
        # customer's open ticket; anything else unmatched is a new topic.
        new_thread = not (subject_is_reply(subject) and not reply_ids and not refs)
        return Inbound(
            external_id=external_id[:255],
            user_id=address,
            text=text,
            display_name=name,
            email=address,
            attachments=tuple(attachments),
            thread_hints=tuple(hints),
            subject=normalize_subject(subject) or subject,
            sent_at=_date(_raw_header(msg, "date")),
            quoted=quoted,
            meta=meta,
            new_thread=new_thread,
        )

    @property
    def own_addresses(self) -> set[str]:
        """The inbox's own addresses: mail from them is ours, never a customer's."""
        return {a for a in (normalize_address(str(self.settings.get(k) or "")) for k in ("address", "from_address"))
                if a}

    @staticmethod
    def _sender(msg: Message) -> tuple[str, str | None]:
        for header in ("from", "sender", "return-path"):
            value = _raw_header(msg, header)
            if not value:
                continue
            raw_name, addr = parseaddr(value.replace("\r", " ").replace("\n", " "))
            address = normalize_address(addr)
            if address:
                name = decode_header_value(raw_name) if raw_name else ""
                return name[:200], address
        return "", None

    # -------------------------------------------------------------- outbound

    @property
    def from_address(self) -> str:
        return str(self.settings.get("from_address") or self.settings.get("address") or "")

    def message_id_for(self, outbound: Outbound) -> str:
        """Our Message-ID: the same for every attempt at one message, so a resend after a
        crash is recognisably the same mail (clients and Gmail collapse duplicates)."""
        domain = self.from_address.rpartition("@")[2] or socket.getfqdn()
        digest = hashlib.sha256(f"{self.from_address}|{outbound.ticket_id}|{outbound.message_id}".encode()).hexdigest()
        return f"<helpdesk.{outbound.ticket_id}.{outbound.message_id}.{digest[:16]}@{domain}>"

    def build_reply(self, recipient: str, outbound: Outbound) -> tuple[bytes, str]:
        """The reply as wire bytes, and its Message-ID."""
        to_addr = normalize_address(recipient)
        if to_addr is None:
            raise ChannelError(f"not an email address: {recipient!r}")
        from_addr = normalize_address(self.from_address)
        if from_addr is None:
            raise ChannelError("inbox has no valid from_address/address setting")
        ctx = outbound.context or {}
        last_meta = ctx.get("last_inbound_meta") or {}
        topic = normalize_subject(clean_header_text(outbound.subject or last_meta.get("subject") or ""))
        subject = f"Re: {topic} [#{outbound.ticket_id}]" if topic else f"[#{outbound.ticket_id}]"
        message_id = self.message_id_for(outbound)
        in_reply_to = ctx.get("last_inbound_external_id") or ""
        in_reply_to = in_reply_to if _MSGID.fullmatch(in_reply_to) else ""
        refs = [i for i in (ctx.get("external_ids") or []) if i and _MSGID.fullmatch(i) and i != message_id]
        if in_reply_to and in_reply_to not in refs:
            refs.append(in_reply_to)
        if len(refs) > 20:  # RFC 5322: keep the root and the most recent ones
            refs = refs[:1] + refs[-19:]
        body = _compose_body(outbound.text, ctx, render_signature(self.settings, ctx.get("agent_name") or ""))
        from_name = clean_header_text(str(self.settings.get("from_name") or ""))
        headers = {
            "Date": format_datetime(datetime.now(JST)),
            "Message-ID": message_id,
            "In-Reply-To": in_reply_to,
            "References": " ".join(refs),
            "X-Helpdesk-Ticket": str(outbound.ticket_id),
            # RFC 3834: the customer's own responder must not answer an automatic one (the away
            # message answers the customer's mail; a survey question is sent of the desk's accord)
            "Auto-Submitted": _auto_submitted_value(outbound.meta or {}),
        }
        files = [a for a in outbound.attachments if a.data is not None]
        charset = str(self.settings.get("outbound_charset") or "utf-8").lower()
        if charset in ("iso-2022-jp", "jis"):
            try:
                return _jis_message(from_name, from_addr, to_addr, subject, body, headers, files), message_id
            except UnicodeEncodeError:
                log.info("reply %s has characters outside ISO-2022-JP; sending UTF-8", outbound.message_id)
            except _LineTooLong:
                log.info("reply %s has a paragraph too long for a 7bit ISO-2022-JP line; sending UTF-8",
                         outbound.message_id)
        msg = EmailMessage(policy=email_policy.SMTP)
        # An Address object, not a formatted string: the name is always quoted/encoded whole.
        msg["From"] = Address(display_name=from_name, addr_spec=from_addr) if from_name else from_addr
        msg["To"] = to_addr
        msg["Subject"] = subject
        for k, v in headers.items():
            if v:
                msg[k] = v
        msg.set_content(body, charset="utf-8", cte="base64")
        for att in files:
            msg.add_attachment(att.data, **_attachment_args(att))
        return msg.as_bytes(), message_id

    def send(self, recipient: str, outbound: Outbound) -> SendResult:
        try:
            data, message_id = self.build_reply(recipient, outbound)
        except ChannelError as exc:
            return SendResult(ok=False, error=str(exc))
        from_addr = normalize_address(self.from_address)
        to_addr = normalize_address(recipient)
        try:
            response = self._transmit(from_addr, to_addr, data)
        except _Permanent as exc:  # the agent sees this on the message; no retry helps
            return SendResult(ok=False, error=str(exc))
        return SendResult(ok=True, external_id=message_id, meta={"email_message_id": message_id,
                                                                 "smtp_response": response})

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.settings.get("tls_ca_file") or None)
        if self.settings.get("tls_verify") is False:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _transmit(self, from_addr: str, to_addr: str, data: bytes) -> str:
        """One SMTP transaction; 4xx and network trouble are transient, 5xx permanent."""
        host = self.settings.get("smtp_host")
        if not host:
            raise _Permanent("inbox has no smtp_host setting")
        security = str(self.settings.get("smtp_security") or "starttls").lower()
        port = int(self.settings.get("smtp_port") or {"tls": 465, "plain": 25}.get(security, 587))
        timeout = float(self.settings.get("smtp_timeout") or 30)
        try:
            if security == "tls":
                smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=self._ssl_context())
            else:
                smtp = smtplib.SMTP(host, port, timeout=timeout)
            try:
                if security == "starttls":
                    smtp.starttls(context=self._ssl_context())
                user = self.settings.get("smtp_user")
                if user:
                    _login(smtp, str(user), str(self.secrets.get("smtp_password") or ""))
                smtp.sendmail(from_addr, [to_addr], data)
                code, reply = smtp.noop()
            finally:
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    smtp.close()  # the mail is already accepted; a rude hang-up changes nothing
            return f"{code} {reply.decode('utf-8', 'replace')}"[:200]
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [c for c, _ in exc.recipients.values()]
            detail = "; ".join(f"{c} {m.decode('utf-8', 'replace')}" for c, m in exc.recipients.values())
            if any(400 <= c < 500 for c in codes):
                raise TransientSendError(f"recipient deferred: {detail}") from None
            raise _Permanent(f"recipient refused: {detail}") from None
        except smtplib.SMTPResponseException as exc:
            err = exc.smtp_error
            msg = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
            if 400 <= exc.smtp_code < 500 or exc.smtp_code < 0:
                raise TransientSendError(f"SMTP {exc.smtp_code} {msg}") from None
            raise _Permanent(f"SMTP {exc.smtp_code} {msg}") from None
        except ssl.SSLCertVerificationError as exc:
            raise _Permanent(f"TLS certificate rejected: {exc.verify_message}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise _Permanent(f"SMTP server does not support {exc}") from None
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timeout, DNS
            raise TransientSendError(f"{exc.__class__.__name__}: {exc}") from None

def _login(smtp: smtplib.SMTP, user: str, password: str) -> None:
    """SMTP AUTH; smtplib only sends ASCII credentials, so UTF-8 ones go as AUTH PLAIN by hand."""
    if (user + password).isascii():
        smtp.login(user, password)
        return
    smtp.ehlo_or_helo_if_needed()
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    code, resp = smtp.docmd("AUTH", "PLAIN " + token)
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, resp)


class _Permanent(Exception):
    """A refusal that retrying cannot fix (5xx, bad certificate, no SMTP host)."""


# ------------------------------------------------------------------ helpers


def _raw_header(msg: Message, name: str) -> str | None:
    """A header value exactly as sent (8-bit bytes kept as surrogates) for our own decoding."""
    for key, value in msg.raw_items():
        if key.lower() == name:
            return value if isinstance(value, str) else str(value)
    return None


def _auto_submitted_value(meta: Mapping[str, Any]) -> str:
    if meta.get("auto_reply"):
        return "auto-replied"
    return "auto-generated" if meta.get("survey") else ""


# RFC 3834's Auto-Submitted and the older markers vacation responders still send instead.
_AUTO_REPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-autogenerated", "x-auto-response", "x-mail-autoreply")


def _auto_submitted(msg: Message) -> bool:
    """Whether a mail was sent by a machine (vacation notice, auto-responder, bulk), not a person."""
    auto = (_raw_header(msg, "auto-submitted") or "").strip().lower()
    if auto and auto != "no":
        return True
    if (_raw_header(msg, "precedence") or "").strip().lower() in ("bulk", "junk", "auto_reply"):
        return True
    return any((_raw_header(msg, h) or "").strip().lower() not in ("", "no", "false", "0")
               for h in _AUTO_REPLY_HEADERS)


# Senders that are a mail system, not a person, once the subject also reads as a delivery report
# (mailer-daemon@ alone is enough: it never is a person).
_MAIL_SYSTEM_LOCALPARTS = {"postmaster", "mail-daemon", "mailer_daemon", "mailerdaemon", "mdaemon"}
_MAIL_SYSTEM_NAME = re.compile(r"mail delivery (?:sub)?system|mail administrator|mailer-daemon|メール配信システム",
                               re.IGNORECASE)
# The returned mail's own header quoted in a plain-text report (qmail, sendmail, Japanese ISPs).
_QUOTED_MSGID = re.compile(r"(?im)^[ \t>]*(?:original[- ]?)?message-id[ \t]*:[ \t]*(?:\r?\n[ \t]+)?(<[^<>\s]+>)")
# Where a plain-text report starts quoting the returned mail: no diagnostic is read below it.
_RETURNED_PART = re.compile(
    r"(?i)^\s*(?:-{2,}.*(?:copy of|original message|undelivered message|returned message|元のメ|送信したメール)"
    r"|below this line is a copy|this is a copy of)|^(?:received|return-path|message-id|date|from|subject)\s*:")
_ENHANCED_STATUS = re.compile(r"(?<![\d.])[45]\.\d{1,3}\.\d{1,3}(?![\d.])")
_SMTP_REPLY = re.compile(r"(?i)(?:said|<<<|smtp|host|error|reason|理由)\D{0,40}(?<!\d)[45]\d\d(?!\d)")
MAX_REPORT_TEXT_BYTES = 200_000


def _bounce(msg: Message, sender: str, name: str = "", subject: str = "") -> dict[str, Any] | None:
    """A delivery status notification (RFC 3464) or a mailer daemon's plain-text bounce: the
    Message-IDs it names (the returned original's first) and the error, None as error when
    nothing failed (a "delayed" warning). None for any other mail, read receipts
    (disposition-notification) included."""
    dsn = msg.get_content_type() == "multipart/report" and \
        str(msg.get_param("report-type") or "").lower() == "delivery-status"
    if not dsn and not _from_mail_system(msg, sender, name, subject):
        return None
    ids: list[str] = []
    failures: list[str] = []
    actions: list[str] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            for fields in part.get_payload() or []:  # compat32: one Message per field block
                if not isinstance(fields, Message) or not fields.get("action"):
                    continue  # the per-message block (Reporting-MTA)
                action = str(fields["action"]).strip().lower()
                actions.append(action)
                if action == "failed":
                    recipient = str(fields.get("final-recipient") or "").partition(";")[2].strip()
                    detail = str(fields.get("diagnostic-code") or "").partition(";")[2].strip() or \
                        str(fields.get("status") or "").strip()
                    failures.append(clean_header_text(": ".join(x for x in (recipient, detail) if x)))
        elif ctype in ("message/rfc822", "text/rfc822-headers"):
            inner = part.get_payload()
            if isinstance(inner, list):
                inner = inner[0] if inner else None
            if isinstance(inner, str):  # text/rfc822-headers: the original's header block only
                inner = Parser(policy=email_policy.compat32).parsestr(inner, headersonly=True)
            if isinstance(inner, Message):
                ids += message_ids(_raw_header(inner, "message-id"))
    texts = list(_report_texts(msg, 0))
    for text in texts:  # a plain-text report quotes the returned mail's header in its own body
        ids += [m for m in _QUOTED_MSGID.findall(text) if _MSGID.fullmatch(m)]
    ids += message_ids(_raw_header(msg, "in-reply-to")) + message_ids(_raw_header(msg, "references"))[::-1]
    ids = list(dict.fromkeys(ids))[:20]
    if actions and not failures:
        return {"message_ids": ids, "error": None}
    if not actions and subject_is_bounce(subject) == "delayed":  # "still trying": nothing failed yet
        return {"message_ids": ids, "error": None}
    detail = "; ".join(failures) or next(filter(None, map(_diagnostic, texts)), None) or subject or "undeliverable"
    return {"message_ids": ids, "error": f"bounced: {detail}"[:500]}


def _from_mail_system(msg: Message, sender: str, name: str, subject: str) -> bool:
    """A bounce that is no multipart/report: from mailer-daemon@, or with a delivery report's
    subject from another mail system's address or name, or with the null return path (<>)
    that RFC 5321 reserves for such reports. A person's mail is never dropped as one."""
    local = sender.partition("@")[0]
    if local == "mailer-daemon":
        return True
    if subject_is_bounce(subject) is None:
        return False
    return (local in _MAIL_SYSTEM_LOCALPARTS or bool(_MAIL_SYSTEM_NAME.search(name))
            or (_raw_header(msg, "return-path") or "").strip() == "<>")


def _report_texts(part: Message, depth: int) -> Iterator[str]:
    """The report's own text parts, decoded; not those of a returned mail attached to it."""
    ctype = part.get_content_type()
    if ctype.startswith("multipart/") and depth < MAX_MIME_DEPTH:
        for sub in part.get_payload() or []:
            if isinstance(sub, Message):
                yield from _report_texts(sub, depth + 1)
    elif ctype in ("text/plain", "text/html"):
        payload = _payload_bytes(part)
        if isinstance(payload, bytes):
            text = decode_bytes(payload[:MAX_REPORT_TEXT_BYTES], part.get_content_charset())
            yield html_to_text(text) if ctype == "text/html" else text


def _diagnostic(text: str) -> str | None:
    """The line of a plain-text report that says why delivery failed (the SMTP reply), with the
    recipient line above it and its continuation lines, read above the quoted returned mail."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for k, line in enumerate(lines):
        if _RETURNED_PART.match(line):
            lines = lines[:k]
            break
    for pattern in (_ENHANCED_STATUS, _SMTP_REPLY):
        for k, line in enumerate(lines):
            if not pattern.search(line):
                continue
            found = [line]
            for more in lines[k + 1:k + 4]:  # Postfix folds the server's reply onto indented lines
                if not more[:1].isspace() or not more.strip():
                    break
                found.append(more)
            above = next((ln for ln in reversed(lines[max(0, k - 2):k]) if ln.strip()), "")
            if "@" in above and above.rstrip().endswith(":") and "@" not in line:
                found.insert(0, above)
            return clean_header_text(" ".join(x.strip() for x in found))
    return None


def _size_text(size: int) -> str:
    """A byte count for people: KB below a megabyte, where "0 MB" would say nothing."""
    return f"{size / 1024:.0f} KB" if size < 1024 * 1024 else f"{size / 1048576:.1f} MB"


def _header_block(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        idx = raw.find(sep)
        if idx != -1:
            return raw[:idx + len(sep)]
    return raw[:64 * 1024]


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    # A sender clock in the future would sort the ticket above everything else.
    now = datetime.now(timezone.utc)
    return min(dt, now)


def _unflow(text: str, delsp: bool) -> str:
    """RFC 3676 format=flowed: soft line breaks (trailing space) join; iPhone uses delsp=yes."""
    out: list[str] = []
    buf = ""
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if line.startswith(" "):
            line = line[1:]  # space-stuffing
        if line.endswith(" ") and line != "-- ":
            buf += line[:-1] if delsp else line
        else:
            out.append(buf + line)
            buf = ""
    if buf:
        out.append(buf)
    return "\n".join(out)


def _payload_bytes(part: Message) -> bytes | None:
    """The decoded body of a part; damaged base64 keeps every intact quantum instead of
    falling back to the undecoded text (what the stdlib does)."""
    cte = str(part.get("content-transfer-encoding") or "").strip().lower()
    if cte == "base64":
        raw = part.get_payload(decode=False)
        if isinstance(raw, str):
            return b64decode_lenient(raw)
    return part.get_payload(decode=True)


def _safe_filename(name: str) -> str:
    # NFC: Mac mailers send names as macOS stores them, with ダ as タ + a combining mark (NFD)
    name = unicodedata.normalize("NFC", clean_header_text(name)).replace("\\", "/").rsplit("/", 1)[-1].strip(". ")
    return name[:200] or "attachment"


class _Walker:
    """Collects body texts and attachments with depth and count limits (mail bombs)."""

    def __init__(self, max_attachment: int):
        self.max_attachment = max_attachment
        self.texts: list[str] = []
        self.attachments: list[Attachment] = []
        self.notes: list[str] = []
        self.parts = 0

    def walk(self, part: Message, depth: int) -> None:
        self.parts += 1
        if self.parts > MAX_MIME_PARTS:
            if "too many parts" not in self.notes:
                self.notes.append("too many parts")
            return
        if depth > MAX_MIME_DEPTH:
            if "nested too deeply" not in self.notes:
                self.notes.append("nested too deeply")
            return
        ctype = part.get_content_type()
        if part.is_multipart():
            children = [c for c in (part.get_payload() or []) if isinstance(c, Message)]
            if ctype == "multipart/alternative":
                chosen = self._choose_alternative(children)
                if chosen is not None:
                    self.walk(chosen, depth + 1)
                for c in children:  # calendar invites etc. ride along as attachments
                    if c is not chosen and not c.get_content_type().startswith("text/") and not c.is_multipart():
                        self._attachment(c)
                return
            for child in children:
                self.walk(child, depth + 1)
            return
        # compat32 hands back Header objects for 8-bit header values: always go through str()
        disposition = str(part.get("content-disposition") or "").split(";", 1)[0].strip().lower()
        filename = self._filename(part)
        if ctype in ("text/plain", "text/html") and disposition != "attachment" and not (
                filename and disposition == "inline" and ctype != "text/plain"):
            text = self._text(part)
            if text is not None:
                self.texts.append(text)
                return
        if ctype == "text/plain" and not filename and disposition != "attachment":
            return
        self._attachment(part, filename)

    @staticmethod
    def _choose_alternative(children: list[Message]) -> Message | None:
        for wanted in ("text/plain", "text/html"):
            for c in children:
                if c.get_content_type() == wanted and (_payload_bytes(c) or b"").strip():
                    return c
        for c in children:
            if c.is_multipart():
                return c
        return children[0] if children else None

    def _text(self, part: Message) -> str | None:
        payload = _payload_bytes(part)
        if payload is None:
            return None
        text = decode_bytes(payload, part.get_content_charset())
        # NUL and other C0 controls are junk in text, and PostgreSQL refuses NUL outright.
        text = _CONTROL_CHARS.sub("", _newlines(text))
        if len(text) > MAX_TEXT_PART_CHARS:
            text = text[:MAX_TEXT_PART_CHARS]
            self.notes.append("text part truncated")
        if part.get_content_type() == "text/html":
            return html_to_text(text)
        if (part.get_param("format") or "").lower() == "flowed":
            text = _unflow(text, (part.get_param("delsp") or "").lower() == "yes")
        return text

    @staticmethod
    def _filename(part: Message) -> str | None:
        for header, param in (("content-disposition", "filename"), ("content-type", "name")):
            raw = _raw_header(part, header)
            if raw is None:
                continue
            # Read from the header as sent, its 8-bit bytes as latin-1 characters: compat32's
            # get_param turns a raw UTF-8 or Shift_JIS name (older Japanese mailers) into U+FFFD.
            holder = Message()
            holder[header] = raw.encode("utf-8", "surrogateescape").decode("latin-1")
            value = holder.get_param(param, header=header)
            if value is None:
                continue
            if isinstance(value, tuple):  # RFC 2231: (charset, language, text with bytes as latin-1)
                charset, _, text = value
                return _safe_filename(decode_bytes(text.encode("latin-1"), charset))
            # guessed like a raw 8-bit header; Outlook quotes RFC 2047 words here
            return _safe_filename(decode_header_value(value.encode("latin-1")))
        return None

    def _attachment(self, part: Message, filename: str | None = None) -> None:
        if len(self.attachments) >= MAX_ATTACHMENTS:
            if "too many attachments" not in self.notes:
                self.notes.append("too many attachments")
            return
        filename = filename or self._filename(part)
        ctype = part.get_content_type()
        if not (ctype.isascii() and ctype.isprintable()) or len(ctype) > 100:
            ctype = "application/octet-stream"
        if ctype == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            data = inner.as_bytes(policy=email_policy.compat32) if isinstance(inner, Message) else b""
            filename = filename or _safe_filename(
                (decode_header_value(_raw_header(inner, "subject")) if isinstance(inner, Message) else "") or
                "message") + ".eml"
        else:
            data = _payload_bytes(part) or b""
        filename = filename or "attachment" + _extension(ctype)
        if len(data) > self.max_attachment:
            self.notes.append(f"attachment {filename} not stored: {len(data)} bytes over the limit")
            self.attachments.append(Attachment(filename=filename, content_type=ctype, size=len(data)))
            return
        self.attachments.append(Attachment(filename=filename, content_type=ctype, size=len(data), data=data))


def _extension(ctype: str) -> str:
    import mimetypes

    return mimetypes.guess_extension(ctype) or ".bin"


def render_signature(settings: Mapping[str, Any], agent_name: str) -> str:
    """The inbox's signature for a reply by ``agent_name``: ``{agent}`` filled in, and a line
    that held only ``{agent}`` dropped when there is no name (a survey sent by the desk)."""
    lines = []
    for line in _newlines(str(settings.get("signature") or "")).split("\n"):
        if "{agent}" in line and not agent_name and not line.replace("{agent}", "").strip():
            continue
        lines.append(line.replace("{agent}", agent_name))
    return "\n".join(lines).strip("\n")


def _newlines(text: str) -> str:
    return (text or "").replace("\r\n", "\n").replace("\r", "\n")


def _compose_body(text: str, ctx: Mapping[str, Any], signature: str = "") -> str:
    """The agent's text, the inbox's signature, then a Japanese quote header and the
    customer's last message."""
    text = _newlines(text).rstrip()
    if signature:
        text = f"{text}\n\n{signature.rstrip()}"
    meta = ctx.get("last_inbound_meta") or {}
    quote = (meta.get("quote") or "").strip()
    if not quote:
        return text + "\n"
    when = ""
    if ctx.get("last_inbound_at"):
        try:
            dt = datetime.fromisoformat(ctx["last_inbound_at"])
            dt = (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone(JST)
            when = f"{dt.year}年{dt.month}月{dt.day}日({_WEEKDAYS[dt.weekday()]}) {dt:%H:%M} "
        except ValueError:
            when = ""
    name = clean_header_text(ctx.get("contact_name") or "")
    email = ctx.get("contact_email") or ""
    who = f"{name} <{email}>" if name and email else (name or email or "お客様")
    quoted = "\n".join("> " + ln if ln else ">" for ln in quote.split("\n"))
    return f"{text}\n\n{when}{who}:\n{quoted}\n"


# ------------------------------------------------------------------ ISO-2022-JP output


def _sjis_to_jis(s1: int, s2: int) -> tuple[int, int]:
    if s1 >= 0xE0:
        s1 -= 0x40
    t = s1 - 0x70
    if s2 < 0x9F:
        return 2 * t - 1, s2 - (0x20 if s2 >= 0x80 else 0x1F)
    return 2 * t, s2 - 0x7E


# Characters that Mac, Linux and web input write where Windows (cp932) has a JIS X 0208 one
# that every Japanese mailer shows the same way: converted as Japanese mail software does,
# so the reply stays ISO-2022-JP. Anything else outside the repertoire sends the reply as UTF-8.
_JIS_SUBSTITUTES = {
    "\u00a5": "\uffe5",  # ¥ (Mac JIS keyboards) -> ￥
    "\u203e": "\uffe3",  # ‾ overline -> ￣
    "\u2014": "\u2015",  # — em dash -> ― (JIS 1-29; Windows decodes it as U+2015)
    "\u2013": "\uff0d",  # – en dash (ranges, "10–20") -> －
    "\u2011": "\u2010",  # non-breaking hyphen -> ‐
    "\u00a6": "\uffe4",  # ¦ -> ￤
    "\u00a0": " ",  # no-break space pasted from web pages
}


def encode_iso2022jp(text: str) -> bytes:
    """Text -> ISO-2022-JP with the cp932 repertoire (NEC ① ㈱ Ⅱ included), like cp50220.

    Half-width katakana become full-width (not allowed in ISO-2022-JP), and the few characters in
    _JIS_SUBSTITUTES become their JIS X 0208 forms (¥ -> ￥, — -> ―). Raises
    UnicodeEncodeError for characters outside it (emoji): the caller sends UTF-8 then.
    """
    out = bytearray()
    mode = "ascii"
    for ch in text:
        if ord(ch) < 0x80:
            if mode != "ascii":
                out += b"\x1b(B"
                mode = "ascii"
            out.append(ord(ch))
            continue
        if 0xFF61 <= ord(ch) <= 0xFF9F:
            ch = unicodedata.normalize("NFKC", ch)
        ch = _JIS_SUBSTITUTES.get(ch, ch)
        for c in ch:
            sj = c.encode("cp932")
            if len(sj) != 2 or sj[0] >= 0xF0:
                raise UnicodeEncodeError("iso-2022-jp", text, 0, 1, f"{c!r} not in ISO-2022-JP")
            if mode != "jis":
                out += b"\x1b$B"
                mode = "jis"
            out += bytes(_sjis_to_jis(sj[0], sj[1]))
    if mode != "ascii":
        out += b"\x1b(B"
    return bytes(out)


def _jis_words(text: str) -> str:
    """RFC 2047 B-encoded ISO-2022-JP words, each a complete escape run under 76 chars."""
    if all(ord(c) < 0x80 for c in text):
        return text
    words, chunk = [], ""
    for ch in text:
        trial = chunk + ch
        if len(base64.b64encode(encode_iso2022jp(trial))) > 56 and chunk:
            words.append(chunk)
            chunk = ch
        else:
            chunk = trial
    if chunk:
        words.append(chunk)
    return "\r\n ".join(f"=?ISO-2022-JP?B?{base64.b64encode(encode_iso2022jp(w)).decode()}?=" for w in words)


def _attachment_args(att: Attachment) -> dict[str, Any]:
    """How an agent's file becomes a MIME part. The name goes in Content-Disposition and, for
    older Outlook versions, as Content-Type's ``name``; Python's email package writes a
    non-ASCII name as RFC 2231 ``filename*=utf-8''...`` (split into numbered sections when long),
    which Gmail, Outlook, Apple Mail and Thunderbird decode."""
    maintype, _, subtype = (att.content_type or "").partition("/")
    if not maintype or not subtype or maintype in ("multipart", "message"):
        maintype, subtype = "application", "octet-stream"
    return {"maintype": maintype, "subtype": subtype, "filename": att.filename, "params": {"name": att.filename}}


class _LineTooLong(Exception):
    """A body line over SMTP's 998 octets: relays refuse it or break it inside an escape sequence."""


def _jis_message(from_name: str, from_addr: str, to_addr: str, subject: str, body: str,
                 headers: Mapping[str, str], files: list[Attachment] | None = None) -> bytes:
    payload = encode_iso2022jp(body.replace("\n", "\r\n"))
    # 7bit has no soft line breaks; base64 UTF-8 (the caller's fallback) keeps the text as written.
    if any(len(line) > MAX_LINE_OCTETS for line in payload.split(b"\r\n")):
        raise _LineTooLong
    subject_words = _jis_words(subject)
    name_words = _jis_words(from_name) if from_name else ""
    if name_words and name_words == from_name:
        name_words = '"' + from_name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    lines = [
        f"From: {name_words} <{from_addr}>" if name_words else f"From: {from_addr}",
        f"To: {to_addr}",
        f"Subject: {subject_words}",
    ]
    lines += [f"{k}: {v}".replace(" <", "\r\n <") if k == "References" else f"{k}: {v}"
              for k, v in headers.items() if v]
    text_headers = 'Content-Type: text/plain; charset="ISO-2022-JP"\r\nContent-Transfer-Encoding: 7bit'
    if not files:
        lines += ["MIME-Version: 1.0", text_headers]
        # the body ends with its own line break (_compose_body); one more would add an empty line
        end = b"" if payload.endswith(b"\r\n") else b"\r\n"
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + payload + end
    # multipart/mixed by hand around the hand-encoded text; the file parts come from the email
    # package, so their names are encoded exactly as in the UTF-8 path.
    boundary = "=_helpdesk_" + hashlib.sha256(payload + b"".join(f.data or b"" for f in files)).hexdigest()[:32]
    lines += ["MIME-Version: 1.0", f'Content-Type: multipart/mixed; boundary="{boundary}"']
    out = [("\r\n".join(lines) + "\r\n\r\n").encode("ascii"),
           f"--{boundary}\r\n{text_headers}\r\n\r\n".encode("ascii"), payload, b"\r\n"]
    for att in files:
        part = EmailMessage(policy=email_policy.SMTP)
        part.set_content(att.data, disposition="attachment", **_attachment_args(att))
        del part["MIME-Version"]
        out += [f"--{boundary}\r\n".encode("ascii"), part.as_bytes(), b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)


__all__ = ["EmailAdapter", "encode_iso2022jp", "message_ids", "normalize_address"]
