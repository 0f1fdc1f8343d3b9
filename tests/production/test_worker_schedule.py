"""What the RQ workers do on their own: one chain of sweeps every 30 s (HELPDESK_SWEEP_SECONDS; which queues again the
work whose job was lost; after a worker is killed with kill -9: tests/production/test_faults.py),
and IMAP polling with real processes (README: ``flask worker`` polls email)."""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from tests.conftest import pg_available
from tests.email.conftest import dovecot_server, mailbox, tls_cert  # noqa: F401  (fixtures here too: Dovecot)
from tests.procs import REDIS_URL, Cluster, redis_available, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def cluster(tmp_path):
    if not (pg_available() and redis_available()):
        pytest.skip("needs PostgreSQL and Redis")
    with Cluster(tmp_path, SENTIMENT_ENABLED="false", SWEEP_SECONDS="5") as c:
        yield c


def sql(cluster, query: str, *params):
    with psycopg.connect(cluster.db_url) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else cur.rowcount


APP = ("from helpdesk import create_app\nfrom helpdesk.extensions import db\nfrom helpdesk.jobs import jobs\n"
       "from sqlalchemy import select, text\napp = create_app()\n")


@pytest.mark.parametrize("every", [None, 7])  # the default (30 s), and as configured
def test_one_sweep_is_scheduled_however_many_workers_start_and_each_run_schedules_the_next(tmp_path, every):
    """Without processes: the chain's bookkeeping on the real Redis."""
    if not redis_available():
        pytest.skip("needs Redis")
    import uuid

    from helpdesk.extensions import db
    from helpdesk.tasks import schedule_sweep, sweep
    from tests.conftest import make_app
    from tests.procs import drop_rq_queue

    queue = f"hd-sweep-{uuid.uuid4().hex[:8]}"
    app = make_app(f"sqlite:///{tmp_path / 'desk.db'}", tmp_path, JOBS="rq", REDIS_URL=REDIS_URL, JOBS_QUEUE=queue,
                   SOCKETIO_CHANNEL=queue, **({"SWEEP_SECONDS": every} if every else {}))
    every = every or 30
    assert app.config["SWEEP_SECONDS"] == every
    try:
        with app.app_context():
            db.create_all()
            for _ in range(3):  # three workers start
                schedule_sweep()
            (first,) = scheduled_sweeps(queue)
            due = int(first.rsplit("-", 1)[1])
            assert due % every == 0 and 0 < due - time.time() <= every
            sweep(due)  # the run at that time (called here, before its time)
            assert scheduled_sweeps(queue) == [first, f"{queue}-sweep-{due + every}"]
            # A run on a worker whose clock lags still schedules the one after itself, not itself.
            later = due + 10 * every
            sweep(later)
            assert scheduled_sweeps(queue)[-1] == f"{queue}-sweep-{later + every}"
            db.session.remove()
    finally:
        drop_rq_queue(REDIS_URL, queue)


@pytest.mark.parametrize("value", [0, "5", 1.5, True])
def test_a_bad_sweep_interval_is_refused(tmp_path, value):
    from helpdesk.config import ConfigError
    from tests.conftest import make_app

    with pytest.raises(ConfigError, match="HELPDESK_SWEEP_SECONDS must be a whole number of seconds"):
        make_app(f"sqlite:///{tmp_path / 'desk.db'}", tmp_path, SWEEP_SECONDS=value)


def scheduled_sweeps(queue_name: str) -> list[str]:
    from redis import Redis
    from rq import Queue
    from rq.registry import ScheduledJobRegistry

    queue = Queue(queue_name, connection=Redis.from_url(REDIS_URL))
    return sorted(job_id for job_id in ScheduledJobRegistry(queue=queue).get_job_ids() if "sweep" in job_id)


RAW_MAIL = ("From: =?utf-8?b?5bGx55Sw?= <yamada@example.com>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            "Message-ID: <{mid}@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n")


def test_worker_polls_the_email_inboxes(cluster, mailbox):  # noqa: F811
    server, user, password, settings, secrets = mailbox
    cluster.setup()
    settings = {**settings, "from_address": user, "poll_interval": 5}
    cluster.python(APP + "import json\nfrom helpdesk.models import Inbox\nwith app.app_context():\n"
                         f"    settings = json.loads({json.dumps(settings)!r})\n"
                         f"    secrets = json.loads({json.dumps(secrets)!r})\n"
                         "    db.session.add(Inbox(name='mail', kind='email', settings=settings, secrets=secrets))\n"
                         "    db.session.commit()\n")

    def inbound() -> list[str]:
        return [r[0] for r in sql(cluster, "select body from messages where direction = 'inbound' order by id")]

    server.append(user, password, RAW_MAIL.format(to=user, subject="注文について", mid="poll-1",
                                                  body="注文した商品が届きません。").encode())
    cluster.start_worker()
    assert wait_until(lambda: len(inbound()) == 1, 60), "the worker did not poll the mailbox"
    # And again later: each sweep (every 5 s here, 30 s by default) polls the inboxes that are due.
    server.append(user, password, RAW_MAIL.format(to=user, subject="追加", mid="poll-2",
                                                  body="追加で質問があります。").encode())
    assert wait_until(lambda: len(inbound()) == 2, 75), "the worker polled the mailbox only once"
    assert "届きません" in inbound()[0] and "追加で質問" in inbound()[1]


def test_the_sweep_leaves_a_send_that_waits_for_its_retry_to_its_time(tmp_path):
    """A send that timed out, or that the provider answered 429 with Retry-After, is pending with
    its retry scheduled: the sweep must not send it before then (each early try uses up one of
    SEND_MAX_ATTEMPTS, so a rate-limited reply ended failed for good). One with no job is queued."""
    if not redis_available():
        pytest.skip("needs Redis")
    import uuid
    from datetime import timedelta

    from rq.job import Job

    from helpdesk.extensions import db
    from helpdesk.models import Message
    from helpdesk.jobs import jobs
    from helpdesk.models._types import utcnow
    from helpdesk.services.ingest import ingest
    from helpdesk.services.replies import post_reply
    from helpdesk.tasks import sweep
    from tests import factories
    from tests.conftest import make_app
    from tests.procs import drop_rq_queue

    queue = f"hd-sweep-{uuid.uuid4().hex[:8]}"
    app = make_app(f"sqlite:///{tmp_path / 'desk.db'}", tmp_path, JOBS="rq", REDIS_URL=REDIS_URL, JOBS_QUEUE=queue,
                   SOCKETIO_CHANNEL=queue)
    try:
        with app.app_context():
            db.create_all()
            inbox, agent = factories.inbox(), factories.agent(role="admin")
            ticket = ingest(inbox, factories.inbound()).message.ticket
            db.session.commit()
            waiting, lost = (post_reply(ticket, agent, text).id for text in ("429 の後で", "失われたジョブ"))
            for message_id in (waiting, lost):
                db.session.get(Message, message_id).created_at = utcnow() - timedelta(minutes=5)
            db.session.commit()
            q = jobs.queue()
            q.empty()  # their first jobs ran: one was told to wait, the other's retry was lost
            jobs.enqueue("send_message", waiting, delay=120)  # as replies.deliver does after a Retry-After
            sweep(int(time.time()))
            queued = [Job.fetch(i, connection=q.connection).args for i in q.job_ids]
            assert ("send_message", lost) in queued
            assert ("send_message", waiting) not in queued, queued
            db.session.remove()
    finally:
        drop_rq_queue(REDIS_URL, queue)
