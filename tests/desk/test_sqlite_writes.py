"""SQLite writers queue on our locks, across threads and across processes, instead of
meeting SQLITE_BUSY and sleeping in SQLite's busy handler."""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from helpdesk import create_app, sqlite_writes
from helpdesk.extensions import db
from helpdesk.models import ApiToken, Inbox
from tests.conftest import in_thread
from tests.procs import ROOT
from tests.sql import selects_run


def _file_lock_is_free(database: str | None = None) -> bool:
    fd = os.open((database or db.engine.url.database) + "-writer", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_the_file_lock_is_held_from_the_first_write_to_the_end_of_the_transaction(app):
    assert _file_lock_is_free()
    db.session.scalar(db.select(Inbox.id))  # reads take nothing
    assert _file_lock_is_free()
    db.session.add(Inbox(name="a", kind="api"))
    db.session.flush()
    assert not _file_lock_is_free()
    db.session.commit()
    assert _file_lock_is_free()
    db.session.add(Inbox(name="b", kind="api"))
    db.session.flush()
    db.session.rollback()
    assert _file_lock_is_free()


def test_ingest_reads_inside_the_writer_lock(app):
    """Ingest takes the lock before its first read: no other writer commits between the
    customer's open ticket being read and the message being added to it (and under load
    the reads queue asleep instead of competing for the GIL with the writer)."""
    from helpdesk.services.ingest import ingest
    from tests import factories as f

    app.config["SENTIMENT_ENABLED"] = False  # the labelling job reads after the commit
    inbox = f.inbox()
    ingest(inbox, f.inbound(user_id="U1"))
    db.session.expire_all()
    with selects_run(_file_lock_is_free) as reads:
        ingest(inbox, f.inbound(user_id="U1"))
    assert len(reads) >= 2  # the contact and the ticket, at least
    assert [statement for statement, _params, free in reads if free] == []
    assert _file_lock_is_free()  # and let go at the commit


@pytest.mark.config(SENTIMENT_ENABLED=False)
def test_concurrent_api_posts_write_through_the_connection_the_last_writer_gave_back(app):
    """A post takes the writer lock before a connection, and the pool hands out the one
    given back last: the previous writer's, whose page cache SQLite kept. Connections taken
    before the lock, in whatever order, each had their cache emptied by the others' writes
    and read every page again (about 35 reads a message, docs/performance.md)."""
    inbox = Inbox(name="api", kind="api")
    db.session.add(inbox)
    db.session.flush()
    row, token = ApiToken.issue("t", inbox.id)
    db.session.add(row)
    db.session.commit()
    db.session.close()  # the test's own connection back to the pool, as a server's would be
    writers: list[int] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO messages"):
            writers.append(id(conn.connection.dbapi_connection))

    def poster(n: int) -> None:
        client = app.test_client()
        for i in range(10):
            r = client.post("/api/v1/messages", headers={"Authorization": f"Bearer {token}"},
                            json={"external_id": f"{n}-{i}", "user_id": f"u{i % 3}", "text": "届きません"})
            assert r.status_code == 201, r.get_json()

    event.listen(db.engine, "before_cursor_execute", on_execute)
    try:
        threads = [threading.Thread(target=poster, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        event.remove(db.engine, "before_cursor_execute", on_execute)
    assert len(writers) == 40
    assert len(set(writers)) == 1


def test_a_writer_that_holds_the_lock_never_waits_for_a_connection(app):
    """write_now takes the lock before its connection, so threads can hold every connection
    while they wait for the lock. The pool must not make the lock's holder wait for one of
    those (a pool with slots would stall here for its timeout, then fail)."""
    session = db.session()
    sqlite_writes._acquire(session)  # write_now, between taking the lock and a connection
    have_read = threading.Semaphore(0)

    def read_then_write(i: int) -> None:
        with app.app_context():
            db.session.scalar(db.select(Inbox.id))  # holds a connection from here
            have_read.release()
            db.session.add(Inbox(name=f"waiter {i}", kind="api"))
            db.session.commit()  # waits for the lock

    threads = [threading.Thread(target=read_then_write, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for _ in threads:
        assert have_read.acquire(timeout=10)  # 20 connections out, more than a 5 + 10 pool
    started = time.monotonic()
    session.add(Inbox(name="holder", kind="api"))
    session.commit()
    assert time.monotonic() - started < 5
    for t in threads:
        t.join(30)
    assert db.session.scalar(db.select(db.func.count(Inbox.id))) == 21


def test_write_now_lets_go_of_the_lock_when_no_connection_opens(tmp_path):
    (tmp_path / "not-a-database").mkdir()  # the lock's file can be made; the database cannot be opened
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "JOBS": "inline",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'not-a-database'}"})
    with app.app_context():
        with pytest.raises(OperationalError):
            sqlite_writes.write_now(db.session)
        assert _file_lock_is_free(str(tmp_path / "not-a-database"))
        free: list[bool] = []

        def take_and_give_back() -> None:
            free.append(sqlite_writes._lock.acquire(timeout=2))
            if free[0]:
                sqlite_writes._lock.release()

        other = threading.Thread(target=take_and_give_back)
        other.start()
        other.join()
        assert free == [True]


# Another desk process on the same file, with SQLite's own busy handler off: without the
# file lock its write would fail at once with "database is locked".
_OTHER_PROCESS = textwrap.dedent("""
    import sys
    from helpdesk import create_app
    from helpdesk.extensions import db
    from helpdesk.models import Inbox

    app = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": sys.argv[1], "JOBS": "inline"})
    with app.app_context():
        db.session.connection().exec_driver_sql("PRAGMA busy_timeout=0")
        print("ready", flush=True)
        db.session.add(Inbox(name="from the other process", kind="api"))
        db.session.commit()
        print("written", flush=True)
""")


def test_a_second_process_waits_for_the_writer_instead_of_failing(app):
    db.session.add(Inbox(name="ours", kind="api"))
    db.session.flush()  # this process now holds the write
    other = subprocess.Popen([sys.executable, "-c", _OTHER_PROCESS, str(db.engine.url)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "ready"
        try:
            other.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        assert other.poll() is None, other.stderr.read()  # waiting, not failed
        db.session.commit()
        out, err = other.communicate(timeout=30)
    finally:
        if other.poll() is None:
            other.kill()
            other.communicate()
    assert other.returncode == 0, err
    assert out.strip() == "written"
    db.session.expire_all()
    assert set(db.session.scalars(db.select(Inbox.name))) == {"ours", "from the other process"}


def test_committed_writes_reach_the_database_file_from_the_checkpoint_thread(app, tmp_path):
    # Far below SQLite's automatic checkpoint, and no connection closes: before the thread,
    # the rows stayed in the write-ahead log until some commit crossed 1,000 pages and paid
    # for the copy (two fsyncs) while holding the writer lock.
    db.session.add(Inbox(name="checkpointed", kind="api"))
    db.session.commit()
    copy = tmp_path / "file-alone.db"
    deadline = time.monotonic() + 10
    names: list = []
    while time.monotonic() < deadline:
        shutil.copyfile(db.engine.url.database, copy)  # the database file without its -wal
        with sqlite3.connect(copy) as conn:
            try:
                names = [n for (n,) in conn.execute("SELECT name FROM inboxes")]
            except sqlite3.OperationalError:  # not even the tables are in the file yet
                names = []
        if names:
            break
        time.sleep(0.05)
    assert names == ["checkpointed"]
    mark = db.session.connection().exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert mark > 1000  # a commit checkpoints only when the thread falls far behind


def _request_writes(app, seconds: float, every: float = 0.005) -> threading.Thread:
    """A request thread that wants the writer lock every few milliseconds for ``seconds``;
    its ``last_write`` is when it last did (just before asking for the lock: a lull is
    counted from the asking)."""
    def writing():
        with app.app_context():
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                t.last_write = time.monotonic()
                sqlite_writes.write_now(db.session)
                db.session.rollback()
                time.sleep(every)
            db.session.remove()

    t = threading.Thread(target=writing)
    t.start()
    return t


def test_background_work_waits_for_a_lull_in_the_requests_writes(app, monkeypatch):
    """The embedded labelling thread reads and writes when no request has wanted the lock for
    a moment: in a burst of posts it would otherwise take the lock between every few."""
    monkeypatch.setattr(sqlite_writes, "LULL", 0.1)  # 20 times the requests' pace: a held-up request is no lull
    requests = _request_writes(app, 0.4)
    time.sleep(0.05)
    waited = in_thread(app, lambda: (sqlite_writes.yield_to_requests(), time.monotonic()), background=True)
    requests.join()
    assert waited[0] > 0.1
    assert requests.last_write + 0.05 <= waited[1] < requests.last_write + 0.5
    # A request thread itself never waits, even right after another request's write.
    sqlite_writes.write_now(db.session)
    db.session.rollback()
    assert in_thread(app, sqlite_writes.yield_to_requests) == 0.0


def test_background_work_waits_at_most_a_while_and_not_for_its_own_writes(app, monkeypatch):
    # A lull far longer than the cap, so only the cap ends the wait: with the default lull
    # (20 ms) a request thread held up on a loaded machine made one and ended it (CI, 63 ms).
    monkeypatch.setattr(sqlite_writes, "LULL", 0.3)
    monkeypatch.setattr(sqlite_writes, "LULL_WAIT_AT_MOST", 0.1)
    requests = _request_writes(app, 1.0)
    time.sleep(0.05)
    waited = in_thread(app, sqlite_writes.yield_to_requests, background=True)
    assert 0.1 <= waited < 0.3  # a desk that is never quiet still gets its labels
    requests.join()
    time.sleep(sqlite_writes.LULL)

    def write_then_yield():
        sqlite_writes.write_now(db.session)
        db.session.commit()
        return sqlite_writes.yield_to_requests()

    assert in_thread(app, write_then_yield, background=True) < 0.005


@pytest.mark.config(SENTIMENT_ENABLED=False)
def test_background_labelling_starts_the_model_in_a_lull(app, monkeypatch):
    """The embedded labelling thread runs the model only in a lull of the requests' writes,
    as it does its reads and writes: in a burst of posts the model would take the CPU the
    requests need (docs/performance.md: ingest p99 with labelling on 34-45 -> 25-30 ms)."""
    from helpdesk.services import sentiment
    from helpdesk.services.ingest import ingest
    from tests import factories as f

    msg = ingest(f.inbox(), f.inbound(text="注文番号を教えてください")).message
    app.config["SENTIMENT_ENABLED"] = True
    model = in_thread(app, sentiment.model, background=True)  # the lane's, in a child process
    started = []

    def predict(texts, *args, real=model.predict, **kwargs):
        started.append(time.monotonic())
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(model, "predict", predict)
    monkeypatch.setattr(sqlite_writes, "LULL", 0.1)
    requests = _request_writes(app, 0.4)
    time.sleep(0.05)
    assert in_thread(app, sentiment.label_pending, background=True) == 1
    requests.join()
    assert requests.last_write + 0.05 <= started[0] < requests.last_write + 0.5
    db.session.refresh(msg)
    assert msg.sentiment_label == "neutral"


def test_a_request_waiting_for_the_lock_is_no_lull(app, monkeypatch):
    """A request that has waited out a long write by the background thread wants the lock
    still: the background thread's next yield waits for it, where it used to count the
    request's wait as quiet and go on at once (taking the lock again in a burst)."""
    monkeypatch.setattr(sqlite_writes, "LULL", 0.05)
    holding = threading.Event()

    def long_write_then_yield():
        sqlite_writes.write_now(db.session)
        holding.set()
        time.sleep(0.3)  # a request asks meanwhile and waits
        db.session.commit()
        return sqlite_writes.yield_to_requests()

    def request():
        holding.wait(5)
        time.sleep(0.05)
        in_thread(app, lambda: (sqlite_writes.write_now(db.session), db.session.rollback()))

    asker = threading.Thread(target=request)
    asker.start()
    waited = in_thread(app, long_write_then_yield, background=True)
    asker.join()
    assert waited >= 0.04


def test_writers_take_the_lock_in_the_order_they_asked():
    """No barging: a thread letting go of the lock and asking again at once (it still has the
    GIL) goes behind the threads already waiting, and they go in their order. Under concurrent
    posts an unfair lock let a request be passed over, which is the ingest tail's p99
    (docs/performance.md)."""
    lock = sqlite_writes._lock
    order = []

    def writer(name):
        lock.acquire()
        order.append(name)
        lock.release()

    lock.acquire()
    threads = []
    try:
        for k, name in enumerate("abc", start=1):
            threads.append(threading.Thread(target=writer, args=(name,)))
            threads[-1].start()
            deadline = time.monotonic() + 10
            while len(lock._waiters) < k and time.monotonic() < deadline:  # queued behind the holder
                time.sleep(0.001)
    finally:
        lock.release()
    writer("again")
    for t in threads:
        t.join(10)
    assert order == ["a", "b", "c", "again"]


def test_the_lock_is_reentrant_and_times_out():
    lock = sqlite_writes._lock
    assert lock.acquire() and lock.acquire(blocking=False)  # the holder again: reentrant
    got = []
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(timeout=0.05)))
    waiter.start()
    waiter.join(10)
    assert got == [False] and not lock._waiters  # gave up, and left the queue
    lock.release()
    other = threading.Thread(target=lambda: got.append(lock.acquire(blocking=False)))
    other.start()
    other.join(10)
    assert got == [False, False]  # still held once
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()
    third = threading.Thread(target=lambda: got.append(lock.acquire(blocking=False) and lock.release() is None))
    third.start()
    third.join(10)
    assert got == [False, False, True]
