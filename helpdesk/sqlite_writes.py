"""One writer at a time per process on SQLite, queued on a Python lock.

SQLite allows one writing transaction at a time. Left to itself, a second writer
gets SQLITE_BUSY and its busy handler sleeps and retries in growing steps, so under
concurrent webhooks most time is spent asleep. Taking a process-wide lock at a
session's first write (a flush, or an INSERT/UPDATE/DELETE run through the session)
and releasing it at commit or rollback hands the database from writer to writer with
no sleeping. Other databases are untouched.
"""

from __future__ import annotations

import threading

from sqlalchemy import event
from sqlalchemy.orm import Session

_lock = threading.RLock()
_HELD = "helpdesk.sqlite_write_lock"


def _is_sqlite(session: Session) -> bool:
    bind = session.get_bind()
    return bind.dialect.name == "sqlite"


def _acquire(session: Session) -> None:
    if session.info.get(_HELD) or not _is_sqlite(session):
        return
    _lock.acquire()
    session.info[_HELD] = True


@event.listens_for(Session, "before_flush")
def _before_flush(session, flush_context, instances) -> None:
    _acquire(session)


@event.listens_for(Session, "do_orm_execute")
def _before_dml(state) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        _acquire(state.session)


@event.listens_for(Session, "after_transaction_end")
def _release(session, transaction) -> None:
    # Commit, rollback or close: whichever ends the outermost transaction lets go.
    if transaction.parent is None and session.info.pop(_HELD, False):
        _lock.release()
