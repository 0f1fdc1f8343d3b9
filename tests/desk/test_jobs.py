"""The embedded job runner: a thread per lane inside the server process."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from helpdesk.jobs import job, jobs

pytestmark = pytest.mark.config(JOBS="thread", SENTIMENT_ENABLED=False)

seen: dict[str, object] = {}
started, release = threading.Event(), threading.Event()


@job(lane="sentiment")
def _probe_labelling_lane():
    seen["sentiment"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    started.set()
    release.wait(10)  # a long labelling batch
    seen["sentiment done"] = True


@job
def _probe_default_lane():
    seen["default"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_labelling_yields_the_cpu_and_never_holds_other_jobs(app):
    seen.clear()
    started.clear()
    release.clear()
    process_nice = os.getpriority(os.PRIO_PROCESS, 0)
    jobs.enqueue("_probe_labelling_lane")
    jobs.enqueue("_probe_default_lane")
    assert started.wait(10)
    state = app.extensions["helpdesk.jobs"]
    assert state["runners"]["default"].wait_idle(10)  # while the labelling job still runs
    assert "sentiment done" not in seen
    assert seen["default"] == process_nice  # replies, emails: the requests' own priority
    assert seen["sentiment"] == min(19, process_nice + 10)
    release.set()
    assert jobs.wait_idle(10)
    assert seen["sentiment done"] is True


drained: list[int] = []
blocking, unblock = threading.Event(), threading.Event()


@job(lane="probe-coalesce")
def _probe_busy():
    blocking.set()
    unblock.wait(10)


@job(lane="probe-coalesce", coalesce=True)
def _probe_drain():
    drained.append(1)


def test_a_queued_coalescing_job_stands_for_the_requests_after_it(app):
    drained.clear()
    blocking.clear()
    unblock.clear()
    jobs.enqueue("_probe_busy")
    assert blocking.wait(10)
    for _ in range(5):  # five messages stored while the lane is busy: one run will label them all
        jobs.enqueue("_probe_drain")
    unblock.set()
    assert jobs.wait_idle(10)
    assert drained == [1]
    jobs.enqueue("_probe_drain")  # the earlier run has started (and ended): this one runs too
    assert jobs.wait_idle(10)
    assert drained == [1, 1]


def test_ingest_queues_no_labelling_when_sentiment_is_off(app):
    from helpdesk.services.ingest import ingest
    from tests import factories as f

    assert ingest(f.inbox(), f.inbound()).created
    assert "sentiment" not in app.extensions["helpdesk.jobs"]["runners"]
