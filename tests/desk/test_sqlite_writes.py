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
import time

from helpdesk.extensions import db
from helpdesk.models import Inbox
from tests.procs import ROOT
from tests.sql import selects_run


def _file_lock_is_free() -> bool:
    fd = os.open(db.engine.url.database + "-writer", os.O_RDWR | os.O_CREAT)
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
