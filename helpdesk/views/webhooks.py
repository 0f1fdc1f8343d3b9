"""Provider webhooks: verify the signature, parse, ingest, answer fast.

One route for every webhook channel: /webhooks/<kind>/<inbox key>.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, jsonify, request
from sqlalchemy import bindparam, select

from channels import ChannelError, Inbound, StatusUpdate, get_adapter

from ..extensions import csrf, db, limiter
from ..jobs import jobs
from ..models import Inbox
from ..realtime.agent_ns import on_agent_typing
from ..services.ingest import ingest
from ..services.replies import last_inbound
from ..services.status import apply_status
from ..sqlite_writes import write_now

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)
log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 1024 * 1024


_INBOX = select(Inbox).where(Inbox.key == bindparam("key"), Inbox.kind == bindparam("kind"),
                             Inbox.active.is_(True))  # built once: every webhook runs it


def _inbox(kind: str, key: str) -> Inbox:
    inbox = db.session.scalar(_INBOX, {"key": key, "kind": kind})
    if inbox is None:
        log.warning("webhook for unknown %s inbox %r", kind, key[:40])
        abort(404)
    return inbox


@bp.get("/<kind>/<key>")
def handshake(kind: str, key: str):
    inbox = _inbox(kind, key)
    answer = get_adapter(inbox).handshake(request.args)
    if answer is None:
        abort(404)
    status, body = answer
    if status != 200:
        log.warning("%s webhook verification failed for inbox %s", kind, inbox.id)
    mimetype = "application/json" if body.startswith("{") else "text/plain"
    return current_app.response_class(body, status=status, mimetype=mimetype)


@bp.post("/<kind>/<key>")
# Counts refused posts only (no such inbox, a bad signature, too large): a provider's own posts
# are never throttled, since LINE, for one, redelivers nothing unless the account turned that on.
@limiter.limit(lambda: current_app.config.get("WEBHOOK_RATE_LIMIT", "600 per minute"),
               deduct_when=lambda response: 400 <= response.status_code < 500)
def receive(kind: str, key: str):
    if (request.content_length or 0) > MAX_WEBHOOK_BYTES:
        log.warning("%s webhook body of %s bytes refused", kind, request.content_length)
        return jsonify(error="payload too large"), 413
    raw = request.get_data(cache=False)
    if len(raw) > MAX_WEBHOOK_BYTES:
        return jsonify(error="payload too large"), 413
    # Database down: the app-wide handler answers 503 so the provider retries; each
    # message is its own commit, so nothing is half-written. The writer lock comes before
    # the inbox's lookup, as for an API post (views/api.py).
    write_now(db.session)
    inbox = _inbox(kind, key)
    adapter = get_adapter(inbox)
    # Only providers that sign their posts come in here (Adapter.verify).
    if not adapter.verify(request.headers, raw):
        if adapter.webhook:
            log.warning("%s webhook with a bad signature for inbox %s from %s", kind, inbox.id, request.remote_addr)
        else:
            log.warning("%s inbox %s has no webhook; post from %s refused", kind, inbox.id, request.remote_addr)
        return jsonify(error="invalid signature"), 401
    try:
        items = adapter.parse(raw)
    except ChannelError as exc:
        log.warning("%s webhook payload rejected for inbox %s: %s", kind, inbox.id, exc)
        return jsonify(error=str(exc)), 400
    created = 0
    for item in items:
        if isinstance(item, Inbound):
            result = ingest(inbox, item)
            created += result.created
            if result.created and hasattr(adapter, "enrich"):
                _enqueue_enrich(kind, result.message.id)
        elif isinstance(item, StatusUpdate):
            apply_status(inbox, item)
    return jsonify(ok=True, received=len(items), created=created), 200


def _enqueue_enrich(kind: str, message_id: int) -> None:
    """Profile and media fetch, off the hot path. The message is already stored: a queue
    outage costs a name or picture, never the message, so it must not fail the webhook."""
    try:
        jobs.enqueue("enrich_message", message_id)
    except Exception:
        log.exception("could not queue enrich_message for %s message %s", kind, message_id)


@on_agent_typing("line")
@on_agent_typing("messenger")
def _show_typing(ticket) -> None:
    """LINE's loading animation / Messenger's typing_on while an agent writes (a job: no I/O here)."""
    jobs.enqueue("show_typing", ticket.id)


@bp.app_template_global("reply_window")
def reply_window(ticket):
    """Messenger's messaging window for the composer; None on channels without one."""
    if ticket.channel != "messenger":
        return None
    from channels.messenger import window_state

    last = last_inbound(ticket)
    return window_state(last.sent_at if last else None)
