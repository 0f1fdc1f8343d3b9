"""One writer at a time on a SQLite file, queued on locks instead of SQLite's busy handler.

SQLite allows one writing transaction at a time. Left to itself, a second writer
gets SQLITE_BUSY and its busy handler sleeps and retries in growing steps, so under
concurrent webhooks most time is spent asleep. Taking the locks at a session's first
write (a flush, or an INSERT/UPDATE/DELETE run through the session) and releasing them
at commit or rollback hands the database from writer to writer with no sleeping:

* a process-wide lock queues the threads of one process;
* an exclusive ``flock`` on ``<database>-writer`` beside the file queues the processes:
  several web servers on one SQLite file, ``flask worker``, or a CLI command run while
  the desk is serving (docs/architecture.md).

The lock file is opened for each write transaction, not kept open: a descriptor
inherited across a fork would share its lock with the parent. Other databases, and
SQLite in memory, are untouched by the file lock.
"""

from __future__ import annotations

import fcntl
import os
import threading

from sqlalchemy import event
from sqlalchemy.orm import Session

_lock = threading.RLock()
_HELD = "helpdesk.sqlite_write_lock"


def _sqlite_file(session: Session) -> str | None:
    """The database file's path when the session writes to SQLite ("" in memory), else None."""
    url = session.get_bind().url
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:" or url.query.get("mode") == "memory":
        return ""
    return url.database


def _acquire(session: Session) -> None:
    if _HELD in session.info:
        return
    path = _sqlite_file(session)
    if path is None:
        return
    _lock.acquire()
    fd = None
    try:
        if path:
            fd = os.open(f"{path}-writer", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks (without the GIL) until the other process commits
    except BaseException:
        if fd is not None:
            os.close(fd)
        _lock.release()
        raise
    session.info[_HELD] = fd


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
    if transaction.parent is None and _HELD in session.info:
        fd = session.info.pop(_HELD)
        if fd is not None:
            os.close(fd)  # closing the only descriptor of the open file releases its flock
        _lock.release()
