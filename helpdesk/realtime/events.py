"""Event names (server -> client) and the one way to publish them.

``publish`` records the event in the current transaction (so it gets a number a
client can resync from) and emits it only after the transaction commits: a
client never hears about a row it cannot read yet, and a rollback emits nothing.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Iterable

from sqlalchemy import event as sa_event
from sqlalchemy import insert
from sqlalchemy.orm import Session

from ..extensions import db, socketio

log = logging.getLogger(__name__)

# A message that changed its ticket (a customer's message, a reply sent) carries the ticket
# as "ticket": one event where a ticket.updated used to follow each message.
MESSAGE_CREATED = "message.created"
MESSAGE_UPDATED = "message.updated"
MESSAGE_SENTIMENT = "message.sentiment"
TICKET_CREATED = "ticket.created"
TICKET_UPDATED = "ticket.updated"
TICKET_ASSIGNED = "ticket.assigned"
SENTIMENT_ALERT = "sentiment.alert"
AGENT_TYPING = "agent.typing"
PRESENCE_UPDATED = "presence.updated"
# to the agent's own pages (their agent room) and the supervisors, outside the numbered stream
AGENT_AVAILABILITY = "agent.availability"

AGENT_NS = "/agent"
WIDGET_NS = "/widget"

_OUTBOX = "helpdesk.outbox"


def inbox_room(inbox_id: int) -> str:
    return f"inbox:{inbox_id}"


def ticket_room(ticket_id: int) -> str:
    return f"ticket:{ticket_id}"


def agent_room(agent_id: int) -> str:
    return f"agent:{agent_id}"


def visitor_room(token: str) -> str:
    return f"visitor:{token}"


SUPERVISORS = "supervisors"


def last_event_id() -> int:
    """The newest event id: a live page resyncs from the id read before its data."""
    from sqlalchemy import select

    from ..models import Event

    return db.session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) or 0


def publish(name: str, payload: dict[str, Any], *, inbox_id: int | None = None,
            ticket_id: int | None = None, supervisors_only: bool = False) -> None:
    """Record an agent-namespace event now; emit it after commit."""
    # A plain INSERT, not an ORM object: the row is never read back in this session, and
    # the unit of work would cost more than the statement (docs/performance.md). On SQLite
    # it takes the writer lock like a flush does (sqlite_writes.py).
    row = _row(name, payload, inbox_id, ticket_id, supervisors_only)
    _queue(row, db.session.execute(_insert_event(), row).inserted_primary_key[0])


def publish_many(items: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
    """``publish`` for several events, as (name, payload, publish's keyword arguments), in one
    INSERT: a labelling batch writes dozens while it holds the writer lock."""
    if not items:
        return
    rows = [_row(name, payload, **kw) for name, payload, kw in items]
    ids = db.session.scalars(_insert_events(), rows).all()
    for row, event_id in zip(rows, ids, strict=True):
        _queue(row, event_id)


def _row(name: str, payload: dict[str, Any], inbox_id: int | None = None, ticket_id: int | None = None,
         supervisors_only: bool = False) -> dict[str, Any]:
    return {"name": name, "payload": payload, "inbox_id": inbox_id, "ticket_id": ticket_id,
            "audience": "supervisors" if supervisors_only else "inbox"}  # created_at: the column's default


def _queue(row: dict[str, Any], event_id: int) -> None:
    inbox_id = row["inbox_id"]
    rooms = [SUPERVISORS] if row["audience"] == "supervisors" else [inbox_room(inbox_id)] if inbox_id else [SUPERVISORS]
    _outbox(db.session).append((row["name"], {**row["payload"], "event_id": event_id}, rooms, AGENT_NS))


@functools.cache
def _insert_event():
    from ..models import Event

    return insert(Event.__table__)


@functools.cache
def _insert_events():
    return _insert_event().returning(_insert_event().table.c.id, sort_by_parameter_order=True)


def publish_to(room: str, name: str, payload: dict[str, Any], namespace: str) -> None:
    """Emit after commit to a room outside the numbered agent stream (widget visitors)."""
    _outbox(db.session).append((name, payload, [room], namespace))


def _outbox(session) -> list:
    return session.info.setdefault(_OUTBOX, [])


@sa_event.listens_for(Session, "after_commit")
def _emit_after_commit(session) -> None:
    """Emit what the transaction published, in the committing thread (on SQLite still inside
    the writer lock, so events leave in commit order).

    Without Redis an emit only queues the packet for each client's socket: a writer thread
    per socket (Engine.IO's) sends it, so a client that stops reading holds up no one else
    (tests/desk/test_serve.py). With Redis an emit is a publish."""
    for name, payload, rooms, namespace in session.info.pop(_OUTBOX, ()):
        try:
            socketio.emit(name, payload, to=rooms if len(rooms) > 1 else rooms[0], namespace=namespace)
        except Exception:  # a lost emit is recovered by the client's resync; never fail the commit
            log.exception("emit %s failed", name)


@sa_event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session) -> None:
    session.info.pop(_OUTBOX, None)


def emit_now(name: str, payload: dict[str, Any], to: str | Iterable[str], namespace: str = AGENT_NS,
             skip_sid: str | None = None) -> None:
    """Ephemeral events (typing, presence) that are not worth storing."""
    socketio.emit(name, payload, to=to, namespace=namespace, skip_sid=skip_sid)
