"""Nothing lost, nothing doubled, with real processes and real faults:
a worker killed mid-batch, the database refusing connections, Redis restarting."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
import requests

from tests.conftest import PG_BASE, pg_available
from tests.live import free_port
from tests.procs import (REDIS_URL, Cluster, agent_session, agent_socket, kill_hard, redis_available,
                         redis_server_cmd, wait_until)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


class Receiver:
    """A stand-in integration endpoint that honours Idempotency-Key like a provider's
    retry key: a repeated key is answered 409 and not delivered again."""

    def __init__(self):
        self.delivered: dict[str, dict] = {}
        self.attempts = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers.get("Idempotency-Key")
                with receiver.lock:
                    receiver.attempts += 1
                    status = 409 if key in receiver.delivered else 200
                    receiver.delivered.setdefault(key, body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cluster(tmp_path):
    if not (pg_available() and redis_available()):
        pytest.skip("needs PostgreSQL and Redis")
    with Cluster(tmp_path, SENTIMENT_BATCH="16", SWEEP_SECONDS="5") as c:
        yield c


def sql(cluster, query: str):
    with psycopg.connect(cluster.db_url) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else cur.rowcount


def lost_reply(cluster) -> int:
    """An agent's reply stored while its job could not be queued (Redis down at that moment),
    an hour ago: only the sweep sends it."""
    out = cluster.python(
        "from helpdesk import create_app\nfrom helpdesk.extensions import db\nfrom helpdesk.jobs import jobs\n"
        "from helpdesk.models import Agent, Ticket\nfrom helpdesk.services.replies import post_reply\n"
        "from sqlalchemy import select, text\napp = create_app()\njobs.enqueue = lambda *args, **kwargs: False\n"
        "with app.app_context():\n"
        "    m = post_reply(db.session.scalar(select(Ticket)), db.session.scalar(select(Agent)), 'お待たせしました')\n"
        "    db.session.execute(text(\"update messages set created_at = created_at - interval '1 hour' "
        "where id = :id\"), {'id': m.id})\n"
        "    db.session.commit()\n    print(m.id)\n")
    return int(out.split()[-1])


def rq_queue(cluster):
    """The cluster's RQ queue, on a connection of the test's own."""
    from redis import Redis
    from rq import Queue

    return Queue(cluster.env["HELPDESK_JOBS_QUEUE"], connection=Redis.from_url(REDIS_URL))


def rq_registries(cluster) -> tuple[list[str], list[str]]:
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry

    queue = rq_queue(cluster)
    return ScheduledJobRegistry(queue=queue).get_job_ids(), FailedJobRegistry(queue=queue).get_job_ids()


def sweeps_due_now(cluster) -> list[str]:
    """Sweep runs queued to run now, or running: one the dead worker's scheduler queued before the
    kill still runs, on the restarted worker, before the dead scheduler's lock lapses."""
    from rq.registry import StartedJobRegistry

    queue = rq_queue(cluster)
    return [j for j in queue.get_job_ids() + StartedJobRegistry(queue=queue).get_job_ids() if "sweep" in j]


def post_many(url: str, token: str, n: int, prefix: str) -> list[int]:
    headers = {"Authorization": f"Bearer {token}"}
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=8))

    def one(i):
        r = session.post(url + "/api/v1/messages", headers=headers,
                         json={"external_id": f"{prefix}-{i}", "user_id": f"c{i % 100}",
                               "text": f"注文番号{i}の件、まだ届いていません。確認をお願いします。"})
        return r.status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def test_worker_killed_mid_batch_loses_and_doubles_nothing(cluster):
    N = 400  # over 100 customers; the worker is killed after its first batch
    receiver = Receiver()
    try:
        ids = cluster.setup()
        sql(cluster, f"update inboxes set settings = '{json.dumps({'callback_url': receiver.url})}'")
        web = cluster.start_web()
        statuses = post_many(web, ids["token"], N, "k")
        assert statuses.count(201) == N
        # One agent reply on each of the 100 tickets: 100 outbound sends queued.
        out = cluster.python(
            "from helpdesk import create_app\nfrom helpdesk.extensions import db\n"
            "from helpdesk.models import Agent, Ticket\nfrom helpdesk.services.replies import post_reply\n"
            "from sqlalchemy import select\napp = create_app()\nwith app.app_context():\n"
            "    agent = db.session.scalar(select(Agent))\n"
            "    for t in db.session.scalars(select(Ticket)).all():\n"
            "        post_reply(t, agent, f'チケット{t.id}への回答です')\n"
            "    print('ok')\n")
        assert "ok" in out
        worker = cluster.start_worker()
        labelled = lambda: sql(cluster, "select count(*) from messages where direction='inbound' "  # noqa: E731
                                        "and sentiment_label is not null")[0][0]
        assert wait_until(lambda: labelled() >= 64, 180), "worker labelled nothing"
        kill_hard(worker)
        at_kill = labelled()
        assert at_kill < N, "the batch finished before the kill; nothing was tested"
        cluster.start_worker()
        assert wait_until(lambda: labelled() == N, 300), f"only {labelled()} of {N} labelled"
        sent = lambda: sql(cluster, "select count(*) from messages where direction='outbound' "  # noqa: E731
                                    "and delivery='sent'")[0][0]
        assert wait_until(lambda: sent() == 100, 120), f"only {sent()} of 100 replies sent"
        assert len(receiver.delivered) == 100
        assert sorted(b["message_id"] for b in receiver.delivered.values()) == [
            r[0] for r in sql(cluster, "select id from messages where direction='outbound' order by id")]
        dupes = sql(cluster, "select count(*) from (select external_id from messages where direction='inbound' "
                             "group by inbox_id, external_id having count(*) > 1) d")[0][0]
        assert dupes == 0
        # The sweep goes on after the kill (it once stopped: its fixed job id expired while the dead
        # worker's scheduler lock was held): a reply whose job was lost is sent by a sweep of the
        # restarted worker, and RQ lists no job that is still to run as failed. No sweep runs before
        # the dead worker's scheduler lock lapses (RQ: 61 s), which is most of this test's time.
        assert wait_until(lambda: not sweeps_due_now(cluster), 60), sweeps_due_now(cluster)
        lost = lost_reply(cluster)
        assert wait_until(lambda: sql(cluster, f"select delivery from messages where id = {lost}")[0][0] == "sent",
                          150), "no sweep ran after the worker was started again"
        scheduled, failed = rq_registries(cluster)
        assert len([job_id for job_id in scheduled if "sweep" in job_id]) == 1, scheduled  # one chain
        assert not set(failed) & set(scheduled), "a job RQ lists as failed is the one scheduled to run"
        print(f"\nkill at {at_kill}/{N} labelled; sends attempted {receiver.attempts}, delivered "
              f"{len(receiver.delivered)}, lost 0, duplicated 0")
    finally:
        receiver.close()


def test_database_unavailable_for_10s_answers_503_then_recovers(cluster):
    ids = cluster.setup()
    web = cluster.start_web()
    headers = {"Authorization": f"Bearer {ids['token']}"}
    assert requests.post(web + "/api/v1/messages", headers=headers,
                         json={"external_id": "before", "user_id": "u", "text": "前"}).status_code == 201
    with psycopg.connect(PG_BASE, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{cluster.db_name}" ALLOW_CONNECTIONS false')
        admin.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s",
                      (cluster.db_name,))
        try:
            down: list[int] = []
            deadline = time.monotonic() + 10
            n = 0
            while time.monotonic() < deadline:
                r = requests.post(web + "/api/v1/messages", headers=headers,
                                  json={"external_id": f"down-{n}", "user_id": "u", "text": f"障害中{n}"})
                down.append(r.status_code)
                n += 1
                time.sleep(0.5)
            health = requests.get(web + "/healthz")
        finally:
            admin.execute(f'ALTER DATABASE "{cluster.db_name}" ALLOW_CONNECTIONS true')
    assert set(down) == {503}, down
    assert health.status_code == 503 and health.json()["checks"]["database"] == "down"
    # The provider retries: every message sent while down is stored exactly once afterwards.
    after = [requests.post(web + "/api/v1/messages", headers=headers,
                           json={"external_id": f"down-{i}", "user_id": "u", "text": f"障害中{i}"}).status_code
             for i in range(n)]
    assert set(after) == {201}
    assert sql(cluster, "select count(*) from messages")[0][0] == n + 1
    assert requests.get(web + "/healthz").status_code == 200


def test_redis_restart_servers_and_clients_recover(tmp_path):
    if not pg_available():
        pytest.skip("needs PostgreSQL")
    port = free_port()
    redis_cmd = redis_server_cmd(port)
    redis_proc = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)
    os.environ["HELPDESK_TEST_REDIS_PRIVATE"] = f"redis://127.0.0.1:{port}/0"
    try:
        with Cluster(tmp_path, REDIS_URL=f"redis://127.0.0.1:{port}/0") as cluster:
            ids = cluster.setup()
            a, b = cluster.start_web(), cluster.start_web()
            cluster.start_worker()
            received: list = []
            session = agent_session(a, "e2e@example.com", "e2e-password")
            sio = agent_socket(a, session, received)
            headers = {"Authorization": f"Bearer {ids['token']}"}

            def post(i):
                return requests.post(b + "/api/v1/messages", headers=headers,
                                     json={"external_id": f"r-{i}", "user_id": "u", "text": f"再起動{i}"})

            assert post(0).status_code == 201
            assert wait_until(lambda: any(e == "message.created" for e, _ in received), 20)
            last_seen = max(d["event_id"] for e, d in received if "event_id" in d)
            redis_proc.terminate()
            redis_proc.wait(10)
            during = [post(i).status_code for i in range(1, 4)]  # ingest does not need Redis to store
            redis_proc = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)
            time.sleep(1.5)
            assert post(4).status_code == 201
            # Live delivery resumes through the restarted Redis...
            assert wait_until(lambda: any(e == "message.created" and d["body"] == "再起動4" for e, d in received), 30)
            # ...and what the socket missed while Redis was down comes from the resync feed.
            missed = session.get(a + f"/api/v1/events?since={last_seen}").json()["events"]
            bodies = {ev["payload"]["body"] for ev in missed if ev["name"] == "message.created"}
            assert {"再起動1", "再起動2", "再起動3", "再起動4"} <= bodies
            assert during == [201, 201, 201]
            # The worker reconnected too: the messages posted after the restart get labelled.
            assert wait_until(lambda: any(e == "message.sentiment" for e, _ in received), 60)
            sio.disconnect()
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)
