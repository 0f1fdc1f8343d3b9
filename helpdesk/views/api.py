"""JSON API: the API channel (token) and the agent desk's own calls (session)."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Blueprint, abort, current_app, jsonify, request
from flask_login import current_user
from sqlalchemy import bindparam, or_, select, update

from channels import ChannelError, get_adapter

from ..extensions import csrf, db, limiter
from ..models import ApiToken, Event, Inbox, Message, Ticket
from ..models._types import utcnow
from ..realtime.serializers import contact_json, message_json, ticket_json
from ..services.access import visible_inbox_ids
from ..services.ingest import ingest
from ..sqlite_writes import write_now

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)

MAX_EVENTS = 500


_TOKEN_INBOX = (select(ApiToken.id, ApiToken.last_used_at, Inbox)  # built once: every API post runs it
                .join(Inbox, Inbox.id == ApiToken.inbox_id)
                .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked.is_(False)))
_TOKEN_USED = update(ApiToken).where(ApiToken.id == bindparam("token_id")).values(last_used_at=bindparam("now"))


def _token_inbox() -> Inbox:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():  # the scheme is case-insensitive (RFC 9110)
        _deny("missing bearer token")
    row = db.session.execute(_TOKEN_INBOX, {"token_hash": ApiToken.hash(token.strip())}).first()
    if row is None:
        _deny("invalid token")
    token_id, last_used_at, inbox = row
    if not inbox.active:
        _deny("inbox disabled")
    now = utcnow()
    if last_used_at is None or now - last_used_at > timedelta(minutes=5):
        # coarse on purpose: not one extra write per message
        db.session.execute(_TOKEN_USED, {"token_id": token_id, "now": now})
    return inbox


def _deny(reason: str):
    log.warning("API request refused from %s: %s", request.remote_addr, reason)
    resp = jsonify(error=reason)
    resp.status_code = 401
    resp.headers["WWW-Authenticate"] = "Bearer"
    abort(resp)


def _session_agent():
    if not current_user.is_authenticated:
        resp = jsonify(error="login required")
        resp.status_code = 401
        abort(resp)
    return current_user


@bp.post("/messages")
@csrf.exempt
@limiter.limit(lambda: current_app.config.get("API_RATE_LIMIT", "1200 per minute"))
def post_message():
    """The API channel: an integration posts one customer message."""
    # Every post that gets past the token writes, so the writer lock comes first, before
    # the connection and the token's lookup (sqlite_writes.write_now); a bad token holds it
    # for that one indexed lookup, under the rate limit.
    write_now(db.session)
    inbox = _token_inbox()
    try:
        payload = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the JSON parser goes
        payload = None
    if payload is None:
        log.warning("API message refused for inbox %s: the body is not JSON (Content-Type %r)",
                    inbox.id, request.content_type)
        return jsonify(error="body must be JSON (Content-Type: application/json)"), 400
    try:
        (inbound,) = get_adapter(inbox).parse(payload)
    except ChannelError as exc:
        log.warning("API message rejected for inbox %s: %s", inbox.id, exc)
        return jsonify(error=str(exc)), 400
    result = ingest(inbox, inbound)  # database down: the app-wide handler answers 503
    payload = result.message_payload()
    body = {"message": payload, "ticket_id": payload["ticket_id"],
            "duplicate": not result.created}
    return jsonify(body), 201 if result.created else 200


@bp.get("/events")
def missed_events():
    """Events after ``since`` that this agent may see: the resync after a reconnect."""
    agent = _session_agent()
    try:
        since = int(request.args.get("since", "0"))
    except ValueError:
        return jsonify(error="since must be an integer"), 400
    visible = visible_inbox_ids(agent)
    audience = (Event.audience == "inbox") & Event.inbox_id.in_(visible or {-1})
    if agent.is_supervisor:
        audience = or_(audience, Event.audience == "supervisors")
    rows = db.session.scalars(
        select(Event).where(Event.id > since, audience).order_by(Event.id).limit(MAX_EVENTS + 1)
    ).all()
    more = len(rows) > MAX_EVENTS
    rows = rows[:MAX_EVENTS]
    return jsonify(
        events=[{"event_id": e.id, "name": e.name, "payload": {**e.payload, "event_id": e.id}} for e in rows],
        more=more,
        last_event_id=rows[-1].id if rows else since,
    )


@bp.get("/events/latest")
def latest_event():
    _session_agent()
    last = db.session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1))
    return jsonify(last_event_id=last or 0)


@bp.get("/tickets/<int:ticket_id>")
def ticket(ticket_id: int):
    agent = _session_agent()
    t = db.session.get(Ticket, ticket_id)
    if t is None:
        return jsonify(error="not found"), 404
    if t.inbox_id not in visible_inbox_ids(agent):
        return jsonify(error="forbidden"), 403
    msgs = db.session.scalars(select(Message).where(Message.ticket_id == t.id).order_by(Message.id)).all()
    return jsonify(ticket=ticket_json(t), contact=contact_json(t.contact), messages=[message_json(m) for m in msgs])
