"""A job that raises on an RQ worker (HELPDESK_JOBS=rq) is run again after a wait, and when every
retry failed too it stays in RQ's failed job registry with its error: it never counts as done.
A real RQ worker on the real Redis, in this process (the jobs are registered here)."""

from __future__ import annotations

import time
import uuid

import pytest

from helpdesk.jobs import job, jobs
from tests.conftest import make_app
from tests.procs import REDIS_URL, drop_rq_queue, redis_available

pytestmark = [pytest.mark.redis]

RUNS: list[tuple[str, int]] = []


@job
def qa_flaky_job(key: str, failures: int) -> str:
    """Fails its first ``failures`` runs (a dropped database connection, say), then works."""
    RUNS.append((key, failures))
    if sum(1 for k, _ in RUNS if k == key) <= failures:
        raise RuntimeError(f"transient failure of {key}")
    return f"done {key}"


@pytest.fixture
def rq_app(tmp_path):
    if not redis_available():
        pytest.skip("needs Redis")
    queue = f"hd-retry-{uuid.uuid4().hex[:8]}"

    def build(**config):
        return make_app(f"sqlite:///{tmp_path / 'desk.db'}", tmp_path, JOBS="rq", REDIS_URL=REDIS_URL,
                        JOBS_QUEUE=queue, SOCKETIO_CHANNEL=queue, **config)

    yield build
    drop_rq_queue(REDIS_URL, queue)


def work(until, timeout: float = 15.0) -> None:
    """A SimpleWorker with its scheduler, as ``flask worker`` runs, in bursts until ``until()``."""
    from rq import SimpleWorker

    q = jobs.queue()
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        SimpleWorker([q], connection=q.connection).work(burst=True, with_scheduler=True)
        time.sleep(0.2)


def the_job(key: str):
    from rq.job import Job

    q = jobs.queue()
    ids = [j for j in q.job_ids] + q.scheduled_job_registry.get_job_ids() + q.failed_job_registry.get_job_ids() \
        + q.finished_job_registry.get_job_ids()
    for job_id in ids:
        found = Job.fetch(job_id, connection=q.connection)
        if found.args[:2] == ("qa_flaky_job", key):
            return found
    raise AssertionError(f"no job for {key}")


def test_every_job_is_queued_with_the_retry_policy(rq_app):
    app = rq_app()
    with app.app_context():
        key = uuid.uuid4().hex
        assert jobs.enqueue("qa_flaky_job", key, 0)
        queued = the_job(key)
        assert queued.retries_left == 3 and queued.retry_intervals == [10, 60, 300]


def test_the_sweep_and_email_polling_are_not_retried_beside_their_next_run(rq_app):
    from rq.job import Job

    from helpdesk.tasks import schedule_sweep

    app = rq_app()
    with app.app_context():
        schedule_sweep()
        jobs.enqueue("poll_email")
        q = jobs.queue()
        queued = [Job.fetch(i, connection=q.connection) for i in q.job_ids + q.scheduled_job_registry.get_job_ids()]
        assert sorted(j.args[0] for j in queued) == ["poll_email", "sweep"]
        assert all(not j.retries_left for j in queued)


def test_a_failing_job_is_run_again_after_its_wait_and_then_done(rq_app):
    app = rq_app(JOB_RETRY_SECONDS=[2, 2])
    with app.app_context():
        key = uuid.uuid4().hex
        started = time.monotonic()
        jobs.enqueue("qa_flaky_job", key, 1)
        work(lambda: the_job(key).get_status() == "finished")
        done = the_job(key)
        assert done.get_status() == "finished", done.get_status()
        assert done.return_value() == f"done {key}"
        assert [k for k, _ in RUNS].count(key) == 2
        # The retry waited for its interval (RQ's scheduler keeps whole seconds, so a little less).
        assert time.monotonic() - started >= 1


def test_a_job_failing_every_retry_ends_in_the_failed_registry_with_its_error(rq_app):
    app = rq_app(JOB_RETRY_SECONDS=[0, 0])
    with app.app_context():
        key = uuid.uuid4().hex
        jobs.enqueue("qa_flaky_job", key, 99)
        work(lambda: the_job(key).get_status() == "failed")
        failed = the_job(key)
        assert failed.get_status() == "failed"
        assert failed.id in jobs.queue().failed_job_registry.get_job_ids()
        assert f"transient failure of {key}" in (failed.latest_result().exc_string or "")
        assert [k for k, _ in RUNS].count(key) == 3  # the first run and two retries


@pytest.mark.parametrize("value", ['"10"', "[10, -1]", '{"a": 1}', "[true]"])
def test_a_bad_retry_setting_is_refused(rq_app, value):
    import json

    from helpdesk.config import ConfigError

    with pytest.raises(ConfigError, match="HELPDESK_JOB_RETRY_SECONDS must be a JSON list"):
        rq_app(JOB_RETRY_SECONDS=json.loads(value))
