"""Background jobs behind one ``enqueue``: an in-process worker thread for the
embedded setup, RQ on Redis in production, inline for tests.

Jobs are named functions in ``tasks.py`` that take ids, never objects, so the
same call works across processes. Handlers are idempotent: a job may run twice
(RQ is at-least-once, and a retried send must not send twice).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import re
import threading
import time
from typing import Any, Callable

from flask import Flask, current_app

log = logging.getLogger(__name__)

JOBS: dict[str, Callable[..., Any]] = {}
LANES: dict[str, str] = {}
COALESCE: set[str] = set()
NO_RETRY: set[str] = set()  # jobs RQ does not run again when they fail (see ``job``)
# Lanes whose thread yields to request threads: the CPU (this much nicer, on Linux), and the
# SQLite writer lock (sqlite_writes.yield_to_requests). Labelling can wait a moment, a
# customer's message on its way to the agents' screens cannot (docs/performance.md: ingest
# p99 with labelling on 337-356 -> 220-236 ms for the nice value).
NICE = {"sentiment": 10}


def job(fn: Callable[..., Any] | None = None, *, lane: str = "default", coalesce: bool = False,
        retry: bool = True):
    """Register a job by its function name. Jobs in different lanes never wait for
    each other in the embedded runner (a long labelling batch must not hold a reply).

    ``coalesce``: the job drains whatever is pending when it runs, so one queued run that has
    not started yet stands for any number of requests: in the embedded runner, and on RQ,
    where a marker in Redis says that a run is queued (``_coalesced``).

    ``retry``: with RQ, a run that raises is run again (``JOB_RETRY_SECONDS``). Off for a job
    that each sweep queues anyway: a retry would only run beside the next one.
    """

    def register(f: Callable[..., Any]) -> Callable[..., Any]:
        JOBS[f.__name__] = f
        LANES[f.__name__] = lane
        if coalesce:
            COALESCE.add(f.__name__)
        if not retry:
            NO_RETRY.add(f.__name__)
        return f

    return register(fn) if fn is not None else register


class _ThreadRunner:
    """One daemon thread draining a time-ordered heap inside an app context."""

    def __init__(self, app: Flask, lane: str = "default"):
        self.app = app
        self.lane = lane
        self._heap: list[tuple[float, int, str, tuple]] = []
        self._waiting: set[tuple[str, tuple]] = set()  # coalescing jobs queued, not started
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = False

    def enqueue(self, name: str, args: tuple, delay: float) -> None:
        with self._cv:
            if name in COALESCE and delay <= 0:
                if (name, args) in self._waiting:
                    return
                self._waiting.add((name, args))
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), name, args))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=f"helpdesk-jobs-{self.lane}", daemon=True)
                self._thread.start()
            self._cv.notify()

    def _loop(self) -> None:
        if self.lane in NICE:
            from .sqlite_writes import mark_background

            mark_background()
            self._lower_priority()
        while True:
            with self._cv:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = None if not self._heap else self._heap[0][0] - time.monotonic()
                    self._busy = False
                    self._cv.notify_all()
                    self._cv.wait(timeout)
                _, _, name, args = heapq.heappop(self._heap)
                self._waiting.discard((name, args))
                self._busy = True
            with self.app.app_context():
                run(name, *args)

    def _lower_priority(self) -> None:
        if not hasattr(os, "setpriority"):
            return
        try:  # this thread only (a Linux thread is a task); threads it starts inherit it
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + NICE[self.lane]))
        except OSError as exc:
            log.warning("could not lower the priority of the %s jobs: %s", self.lane, exc)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until nothing is due (tests and the demo loader use this)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._busy or (self._heap and self._heap[0][0] <= time.monotonic()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.05))
        return True


def run(name: str, *args: Any, own_session: bool = True, reraise: bool = False) -> Any:
    """Run one job by name; errors are logged, and raised into the runner only with ``reraise``.

    ``own_session`` is False for inline jobs, which share the caller's session.
    """
    from . import tasks  # noqa: F401  (registers the jobs)
    from .extensions import db

    try:
        return JOBS[name](*args)
    except Exception:
        log.exception("job %s%r failed", name, args)
        db.session.rollback()
        if reraise:
            raise
    finally:
        if own_session:
            db.session.remove()


def _rq_entry(name: str, *args: Any) -> Any:
    """What an RQ worker executes: the worker process already holds an app context. A job that
    raises (the database connection dropped, a provider's API down while fetching media) fails
    in RQ's eyes, so that RQ runs it again after ``JOB_RETRY_SECONDS`` and, when every retry
    failed too, keeps it in the queue's failed job registry with its traceback. Handled, it
    would count as done and the work nobody's sweep looks for (a chat reply's email copy, a
    LINE message's media) would be lost."""
    if name in COALESCE:
        from rq import get_current_job

        job_ = get_current_job()
        if job_ is not None:
            # Before the work: what is stored from now on may be after this run's last read, so
            # it queues a run of its own.
            job_.connection.delete(_coalesced(job_.origin, name, args))
    return run(name, *args, reraise=True)


# How long a queued coalescing run's marker lasts, should the run itself be lost
# (Redis flushed, the queue emptied by hand): after that the next request queues another.
COALESCE_MARK_SECONDS = 60


def _coalesced(queue: str, name: str, args: tuple) -> str:
    """The Redis key saying that a run of a coalescing job is queued and has not started yet."""
    return f"helpdesk:coalesce:{queue}:{name}:{args!r}"


def _rq_retry():
    """RQ's retry policy for every job: one retry per entry of JOB_RETRY_SECONDS, after that many
    seconds (the workers' scheduler moves it back onto the queue). Jobs are idempotent."""
    from rq import Retry

    waits = current_app.config["JOB_RETRY_SECONDS"]
    return Retry(max=len(waits), interval=list(waits)) if waits else None


class Jobs:
    def init_app(self, app: Flask) -> None:
        mode = app.config["JOBS"]  # one of config.JOB_MODES (checked when the config loads)
        state: dict[str, Any] = {"mode": mode}
        if mode == "thread":
            state["runners"] = {}
            state["app"] = app
        app.extensions["helpdesk.jobs"] = state

    def _state(self) -> dict[str, Any]:
        return current_app.extensions["helpdesk.jobs"]

    @property
    def mode(self) -> str:
        """"thread", "rq" or "inline" (tests: a job runs at once, its ``delay`` ignored, so a job
        that queues itself again for later must not do so there)."""
        return self._state()["mode"]

    def queue(self):
        """The RQ queue (production only); created lazily, no I/O in the factory."""
        state = self._state()
        if "queue" not in state:
            from redis import Redis
            from rq import Queue

            from .config import redis_timeouts

            # Timeouts: a hung Redis fails the enqueue (the sweep picks the work up) instead of the
            # request that stored it. An RQ worker gives its own connection a longer one.
            state["queue"] = Queue(current_app.config["JOBS_QUEUE"],
                                   connection=Redis.from_url(current_app.config["REDIS_URL"],
                                                             **redis_timeouts(current_app.config)))
        return state["queue"]

    def enqueue(self, name: str, *args: Any, delay: float = 0.0, job_id: str | None = None) -> bool:
        """Queue a job by name. ``job_id`` (RQ only) makes it one of a kind: while a job of that
        id exists, scheduled, queued, running or finished within RQ's result TTL, another
        enqueue of it is dropped (RQ's unique jobs). A job must not re-enqueue itself under its
        own id, then: give each run its own (``tasks.schedule_sweep``). Ids are kept per queue."""
        if name not in JOBS:
            from . import tasks  # noqa: F401
        if name not in JOBS:
            raise KeyError(f"unknown job {name!r}")
        state = self._state()
        mode = state["mode"]
        if mode == "inline":
            run(name, *args, own_session=False)
        elif mode == "thread":
            lane = LANES.get(name, "default")
            runner = state["runners"].get(lane)
            if runner is None:
                runner = state["runners"].setdefault(lane, _ThreadRunner(state["app"], lane))
            runner.enqueue(name, args, delay)
        else:
            from datetime import timedelta

            from redis.exceptions import ConnectionError as RedisConnectionError
            from redis.exceptions import TimeoutError as RedisTimeoutError
            from rq.exceptions import DuplicateJobError

            q = self.queue()
            # Job ids are global on the Redis server, which several desks may share.
            kwargs: dict[str, Any] = {"retry": None if name in NO_RETRY else _rq_retry()}
            if job_id:
                kwargs.update(job_id=re.sub(r"[^A-Za-z0-9_-]", "_", f"{q.name}-{job_id}"), unique=True)
            mark = _coalesced(q.name, name, args) if name in COALESCE and delay <= 0 and not job_id else None
            try:
                # Not RQ's unique job ids: a finished or running job keeps its id, but a run that has
                # started may already have read past what was stored since.
                if mark and not q.connection.set(mark, 1, nx=True, ex=COALESCE_MARK_SECONDS):
                    log.debug("job %s%r is already queued", name, args)
                    return True
                if delay > 0:
                    q.enqueue_in(timedelta(seconds=delay), _rq_entry, name, *args, **kwargs)
                else:
                    q.enqueue(_rq_entry, name, *args, **kwargs)
            except DuplicateJobError:
                log.debug("job %s (%s) is already queued", name, job_id)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                # Callers enqueue after their commit: the work is recorded in the database
                # (pending label, pending delivery) and the workers' sweep picks it up.
                log.error("could not queue job %s%r (Redis unavailable: %s); the sweep will retry", name, args, exc)
                if mark:
                    try:  # a marker set before the enqueue failed would hold off the sweep's run
                        q.connection.delete(mark)
                    except (RedisConnectionError, RedisTimeoutError):
                        pass  # it expires
                return False
        return True

    def scheduled_args(self, name: str) -> set[Any]:
        """The first argument of each RQ job of ``name`` waiting for its time (a send's retry after
        a timeout or a provider's Retry-After, or RQ's retry of a failed job): work the sweep must
        not run before then. Empty outside RQ, or when Redis does not answer."""
        if self.mode != "rq":
            return set()
        from redis.exceptions import RedisError
        from rq.job import Job

        q = self.queue()
        try:
            waiting = Job.fetch_many(q.scheduled_job_registry.get_job_ids(), connection=q.connection)
            return {j.args[1] for j in waiting if j is not None and len(j.args) > 1 and j.args[0] == name}
        except RedisError as exc:
            log.warning("could not read the scheduled jobs (Redis unavailable: %s)", exc)
            return set()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        state = self._state()
        if state["mode"] != "thread":
            return True
        return all(r.wait_idle(timeout) for r in list(state["runners"].values()))


jobs = Jobs()
