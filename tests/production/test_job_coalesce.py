"""Labelling on RQ (HELPDESK_JOBS=rq): every stored message asks for a labelling run, and one
run labels everything pending, so one queued run that has not started stands for all the
messages stored before it starts; a message stored once a run has started gets a run of its
own. A real SimpleWorker on the real Redis, in this process."""

from __future__ import annotations

import uuid

import pytest

from helpdesk.jobs import job, jobs
from tests import factories as f
from tests.conftest import make_app
from tests.procs import REDIS_URL, drop_rq_queue, redis_available

pytestmark = [pytest.mark.redis]

RUNS: list[str] = []


@job(coalesce=True)
def qa_drain(key: str) -> None:
    """Drains a backlog; on its first run a message arrives while it works."""
    RUNS.append(key)
    if RUNS.count(key) == 1:
        assert jobs.enqueue("qa_drain", key)


@pytest.fixture
def rq_app(tmp_path):
    if not redis_available():
        pytest.skip("needs Redis")
    queue = f"hd-coalesce-{uuid.uuid4().hex[:8]}"
    app = make_app(f"sqlite:///{tmp_path / 'desk.db'}", tmp_path, JOBS="rq", REDIS_URL=REDIS_URL,
                   JOBS_QUEUE=queue, SOCKETIO_CHANNEL=queue)
    with app.app_context():
        from helpdesk.extensions import db

        db.create_all()
        yield app
    drop_rq_queue(REDIS_URL, queue)


def queued(name: str) -> int:
    from rq.job import Job

    q = jobs.queue()
    return sum(1 for j in Job.fetch_many(q.job_ids, connection=q.connection) if j and j.args[0] == name)


def work() -> None:
    from rq import SimpleWorker

    q = jobs.queue()
    SimpleWorker([q], connection=q.connection).work(burst=True)


def test_messages_stored_before_a_run_starts_share_it(rq_app):
    from sqlalchemy import func, select

    from helpdesk.extensions import db
    from helpdesk.models import Inbox, Message
    from helpdesk.services.ingest import ingest

    assert rq_app.config["SENTIMENT_ENABLED"]
    inbox = f.inbox()
    inbox_id = inbox.id
    for n in range(20):
        assert ingest(inbox, f.inbound(text=f"届いていません {n}")).created
    assert queued("label_sentiment") == 1  # not 20
    work()  # in this process: its job ends by removing the session
    assert db.session.scalar(select(func.count()).where(Message.sentiment_label.is_(None))) == 0
    assert queued("label_sentiment") == 0
    assert ingest(db.session.get(Inbox, inbox_id), f.inbound(text="まだですか")).created  # after the run: a run of its own
    assert queued("label_sentiment") == 1


def test_a_message_stored_while_a_run_works_gets_a_run_of_its_own(rq_app):
    key = uuid.uuid4().hex
    for _ in range(3):
        assert jobs.enqueue("qa_drain", key)
    assert queued("qa_drain") == 1
    work()  # the run queues another while it works (its marker is gone by then), and that one runs
    assert RUNS.count(key) == 2
    assert queued("qa_drain") == 0


def test_other_arguments_and_delayed_runs_are_not_coalesced(rq_app):
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    jobs.enqueue("qa_drain", a)
    jobs.enqueue("qa_drain", b)
    jobs.enqueue("qa_drain", a)
    assert queued("qa_drain") == 2
    jobs.enqueue("qa_drain", a, delay=30)
    assert jobs.queue().scheduled_job_registry.count == 1


def test_a_lost_run_holds_off_the_next_for_a_minute_at_most(rq_app):
    from helpdesk.jobs import COALESCE_MARK_SECONDS, _coalesced

    key = uuid.uuid4().hex
    jobs.enqueue("qa_drain", key)
    jobs.queue().empty()  # the queued run is lost; its marker stays, with an expiry
    ttl = jobs.queue().connection.ttl(_coalesced(jobs.queue().name, "qa_drain", (key,)))
    assert 0 < ttl <= COALESCE_MARK_SECONDS <= 60
