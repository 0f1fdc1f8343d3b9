"""Event names (server -> client) and the one way to publish them.

``publish`` records the event in the current transaction (so it gets a number a
client can resync from) and emits it only after the transaction commits: a
client never hears about a row it cannot read yet, and a rollback emits nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import functools
import queue
import threading

from flask import current_app, has_app_context
from sqlalchemy import event as sa_event
from sqlalchemy import insert
from sqlalchemy.orm import Session

from ..extensions import db, socketio

log = logging.getLogger(__name__)

MESSAGE_CREATED = "message.created"
MESSAGE_UPDATED = "message.updated"
MESSAGE_SENTIMENT = "message.sentiment"
TICKET_CREATED = "ticket.created"
TICKET_UPDATED = "ticket.updated"
TICKET_ASSIGNED = "ticket.assigned"
SENTIMENT_ALERT = "sentiment.alert"
AGENT_TYPING = "agent.typing"
PRESENCE_UPDATED = "presence.updated"

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
    pending = session.info.pop(_OUTBOX, None)
    if not pending:
        return
    batch = [(name, payload, rooms if len(rooms) > 1 else rooms[0], namespace)
             for name, payload, rooms, namespace in pending]
    if has_app_context() and current_app.config.get("EMIT_IN_BACKGROUND", False):
        _emitter.put(batch)
    else:
        _emit(batch)


def _emit(batch) -> None:
    for name, payload, to, namespace in batch:
        try:
            socketio.emit(name, payload, to=to, namespace=namespace)
        except Exception:  # a lost emit is recovered by the client's resync; never fail the commit
            log.exception("emit %s failed", name)


class _Emitter:
    """One thread per process that writes events to in-process sockets, in commit order.

    Without a message queue, ``socketio.emit`` writes to every connected client's socket
    in the calling thread; one slow client would then hold the committing request (and,
    on SQLite, the writer lock behind it). With Redis the emit is a publish and this is off.
    """

    def __init__(self):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, batch) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="helpdesk-emitter", daemon=True)
                self._thread.start()
        self._queue.put(batch)

    def _loop(self) -> None:
        while True:
            _emit(self._queue.get())


_emitter = _Emitter()


@sa_event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session) -> None:
    session.info.pop(_OUTBOX, None)


def emit_now(name: str, payload: dict[str, Any], to: str | Iterable[str], namespace: str = AGENT_NS,
             skip_sid: str | None = None) -> None:
    """Ephemeral events (typing, presence) that are not worth storing."""
    socketio.emit(name, payload, to=to, namespace=namespace, skip_sid=skip_sid)
