"""One writer at a time on a SQLite file, queued on locks instead of SQLite's busy handler.

SQLite allows one writing transaction at a time. Left to itself, a second writer
gets SQLITE_BUSY and its busy handler sleeps and retries in growing steps, so under
concurrent webhooks most time is spent asleep. Taking the locks at a session's first
write (a flush, or an INSERT/UPDATE/DELETE run through the session) and releasing them
at commit or rollback hands the database from writer to writer with no sleeping:

* a process-wide lock queues the threads of one process, in the order they asked: a thread
  that lets go and asks again goes behind those already waiting (``_FifoLock``);
* an exclusive ``flock`` on ``<database>-writer`` beside the file queues the processes:
  several web servers on one SQLite file, ``flask worker``, or a CLI command run while
  the desk is serving (docs/architecture.md).

The lock file is opened for each write transaction, not kept open: a descriptor
inherited across a fork would share its lock with the parent. Other databases, and
SQLite in memory, are untouched by the file lock.

Background work in the desk's own process (the embedded labelling thread) gives way to
requests: before its reads and writes it waits for a lull, a moment when no request has
wanted the writer lock for a while (``yield_to_requests``). In a burst of incoming messages
its batches would otherwise take the lock, and the GIL for their reads, between every few
posts (docs/performance.md).

Checkpoints (copying the write-ahead log back into the database file) run in a thread
of their own, after writes, instead of inside whichever commit crosses SQLite's
1,000-page mark: that commit would otherwise hold the writer lock through two fsyncs
(10 ms and more on a VM disk), and every request queued behind it would wait too
(docs/performance.md). The connections' own automatic checkpoint stays on, at a
higher mark, for a process whose thread cannot keep up.
"""

from __future__ import annotations

import collections
import fcntl
import logging
import os
import sqlite3
import threading
import time
from urllib.request import pathname2url

from sqlalchemy import URL, event, make_url
from sqlalchemy.orm import Session, scoped_session

class _FifoLock:
    """A reentrant lock handed to its waiters in the order they asked."""

    def __init__(self):
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._waiters: collections.deque = collections.deque()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = threading.get_ident()
        with self._mutex:
            if self._owner is None or self._owner == me:
                self._owner = me
                self._depth += 1
                return True
            if not blocking:
                return False
            waiter = threading.Lock()
            waiter.acquire()
            self._waiters.append((me, waiter))
        if waiter.acquire(timeout=timeout):
            return True  # handed over: release() made this thread the owner
        with self._mutex:
            if self._owner == me:
                return True
            self._waiters.remove((me, waiter))
            return False

    def release(self) -> None:
        with self._mutex:
            if self._owner != threading.get_ident():
                raise RuntimeError("cannot release un-acquired lock")
            self._depth -= 1
            if self._depth:
                return
            if self._waiters:
                self._owner, waiter = self._waiters.popleft()
                self._depth = 1
                waiter.release()
            else:
                self._owner = None


_lock = _FifoLock()
_HELD = "helpdesk.sqlite_write_lock"
log = logging.getLogger(__name__)

# yield_to_requests: a lull is this long without a request wanting the lock; a background
# writer waits for one at most this long, so a desk that is never quiet still gets labels.
LULL = 0.02
LULL_WAIT_AT_MOST = 1.0
_background = threading.local()


class _Requests:
    """Threads not marked background (requests) asking for the writer lock: how many are
    waiting now, and when the last one asked or got it."""

    def __init__(self):
        self._mutex = threading.Lock()
        self.waiting = 0
        self.last = 0.0  # time.monotonic()

    def asking(self) -> None:
        with self._mutex:
            self.waiting += 1
            self.last = time.monotonic()

    def answered(self) -> None:
        with self._mutex:
            self.waiting -= 1
            self.last = time.monotonic()

    def quiet_for(self, now: float) -> float:
        """Seconds since a request last wanted the lock (none while one waits for it)."""
        return 0.0 if self.waiting else now - self.last


_requests = _Requests()

# Pages in the log before a committing connection checkpoints it itself: the safety net
# behind the checkpoint thread (SQLite's default is 1,000), about 40 MB of log.
AUTOCHECKPOINT_PAGES = 10_000


def sqlite_file(url: URL | str) -> str | None:
    """The database file's path when the URL is SQLite's ("" in memory), else None."""
    url = make_url(url)
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:" or url.query.get("mode") == "memory":
        return ""
    return url.database


def _acquire(session: Session) -> None:
    if _HELD in session.info:
        return
    path = sqlite_file(session.get_bind().url)
    if path is None:
        return
    if is_background():
        _lock.acquire()
    else:
        _requests.asking()
        try:
            _lock.acquire()
        finally:
            _requests.answered()
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
    session.info[_HELD] = fd, path


def write_now(session: Session | scoped_session) -> None:
    """Take the writer lock at once, for a short transaction that reads and then writes
    anyway (an API post, ingest): its reads then run inside the lock too.

    Under concurrent posts that is faster, not slower. Threads waiting here sleep
    without the GIL, whereas threads doing their reads before the lock compete for the
    GIL with the thread that holds it: every time the holder lets go of the GIL for
    SQLite, it waits to get it back (docs/performance.md). No other writer can commit
    between the reads and the writes either.

    A session with no transaction yet takes the lock before its connection: writers then
    take connections from the pool one at a time, each getting the one the writer before
    it gave back (the pool is last-in, first-out: config.py). SQLite empties a
    connection's whole page cache when another connection has written since its last
    transaction, so connections taken before the lock, in whatever order, read every
    page they touch again: about 35 page reads a message (docs/performance.md).
    """
    if isinstance(session, scoped_session):
        session = session()
    begin = not session.in_transaction()
    _acquire(session)
    if begin:
        try:
            session.connection()  # the transaction whose end lets go of the lock
        except BaseException:
            _let_go(session)
            raise


def mark_background() -> None:
    """This thread does background work (an embedded job lane): its writes are not requests,
    and ``yield_to_requests`` makes it wait for theirs."""
    _background.marked = True


def is_background() -> bool:
    return getattr(_background, "marked", False)


def yield_to_requests() -> float:
    """In a thread marked background, wait until no request has wanted the writer lock for
    ``LULL`` seconds (a request waiting for it wants it now), or ``LULL_WAIT_AT_MOST``;
    elsewhere return at once. Returns the seconds waited. Call it holding no writer lock
    (before a transaction's first write)."""
    if not is_background():
        return 0.0
    start = time.monotonic()
    while True:
        now = time.monotonic()
        quiet_for = _requests.quiet_for(now)
        if quiet_for >= LULL or now - start >= LULL_WAIT_AT_MOST:
            return now - start
        time.sleep(min(LULL - quiet_for, LULL_WAIT_AT_MOST - (now - start)))


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
    if transaction.parent is None:
        _let_go(session)


def _let_go(session: Session) -> None:
    if _HELD not in session.info:
        return
    fd, path = session.info.pop(_HELD)
    if fd is not None:
        os.close(fd)  # closing the only descriptor of the open file releases its flock
    _lock.release()
    if path:
        checkpoints.after_write(path)


class Checkpoints:
    """One thread per process that checkpoints the files this process wrote to.

    A PASSIVE checkpoint neither takes the writer lock nor waits for readers, so requests
    go on writing while it copies pages and syncs; the sqlite3 module lets go of the GIL
    meanwhile. It runs at most every ``PAUSE`` seconds, and not at all while nothing is
    written.
    """

    PAUSE = 0.2

    def __init__(self):
        self._written: set[str] = set()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._pid: int | None = None  # a forked child starts its own thread

    def after_write(self, path: str) -> None:
        with self._lock:
            self._written.add(path)
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._loop, name="helpdesk-checkpoints", daemon=True).start()
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                paths, self._written = self._written, set()
            for path in paths:
                self.checkpoint(path)
            time.sleep(self.PAUSE)

    @staticmethod
    def checkpoint(path: str) -> None:
        try:
            # mode=rw: a file deleted meanwhile (a test's) is not created again
            conn = sqlite3.connect(f"file:{pathname2url(path)}?mode=rw", uri=True)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            log.warning("checkpoint of %s failed: %s", path, exc)


checkpoints = Checkpoints()
