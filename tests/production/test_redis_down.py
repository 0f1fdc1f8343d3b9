"""Redis down, rate limits on (as in production): the API, webhooks and the login page still
answer and store, with the limits counted per process in memory until Redis is back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import requests

from tests.conftest import pg_available
from tests.live import free_port
from tests.procs import Cluster, agent_session, agent_socket, redis_server_cmd, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

LINE_SECRET = "line-secret-redis-down"


def line_event(n: int) -> bytes:
    event = {"type": "message", "mode": "active", "timestamp": int(time.time() * 1000),
             "source": {"type": "user", "userId": "U0000000000000000000000000000redis"}, "replyToken": f"rt-{n}",
             "webhookEventId": f"01HREDISDOWN{n:014d}", "deliveryContext": {"isRedelivery": False},
             "message": {"id": f"5100000000000{n:05d}", "type": "text", "text": f"返信がありません{n}"}}
    return json.dumps({"destination": "U" + "x" * 32, "events": [event]}).encode()


def test_redis_down_limits_fall_back_to_memory_and_nothing_is_lost(tmp_path):
    if not pg_available():
        pytest.skip("needs PostgreSQL")
    line = pytest.importorskip("channels.line")
    port = free_port()
    redis_proc = subprocess.Popen(redis_server_cmd(port), stdout=subprocess.DEVNULL)
    try:
        with Cluster(tmp_path, REDIS_URL=f"redis://127.0.0.1:{port}/0", RATELIMIT_ENABLED="true",
                     API_RATE_LIMIT="4 per minute") as cluster:
            ids = cluster.setup()
            key = cluster.python(
                "from helpdesk import create_app\nfrom helpdesk.extensions import db\n"
                "from helpdesk.models import Inbox\napp = create_app()\nwith app.app_context():\n"
                f"    inbox = Inbox(name='line', kind='line', secrets={{'channel_secret': '{LINE_SECRET}'}})\n"
                "    db.session.add(inbox); db.session.commit(); print(inbox.key)\n").split()[-1]
            web = cluster.start_web()
            headers = {"Authorization": f"Bearer {ids['token']}"}

            def post(n: int) -> int:
                return requests.post(web + "/api/v1/messages", headers=headers, timeout=30,
                                     json={"external_id": f"d-{n}", "user_id": "u", "text": f"障害中{n}"}).status_code

            assert post(0) == 201  # counted on Redis
            redis_proc.terminate()
            redis_proc.wait(10)
            api = [post(n) for n in range(1, 6)]
            raw = line_event(1)
            hook = requests.post(f"{web}/webhooks/line/{key}", data=raw, timeout=30,
                                 headers={"Content-Type": "application/json",
                                          "X-Line-Signature": line.signature(LINE_SECRET, raw)})
            agent_session(web, "e2e@example.com", "e2e-password")  # asserts the login's redirect
            # Stored, and still limited: 4 a minute, counted afresh in this process's memory.
            assert api == [201, 201, 201, 201, 429]
            assert hook.status_code == 200
            assert wait_until(lambda: cluster.count("messages") == 6, 30), cluster.count("messages")
            log = next(cluster.tmp.glob("web-*.log")).read_text()
            assert "Rate limit storage unreachable - falling back to in-memory storage" in log
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)


def test_a_hung_redis_does_not_hang_the_requests_that_store_messages(tmp_path):
    """Redis paused (SIGSTOP: it accepts connections and never answers, as in a network partition):
    the rate limit, the job queue and the live events each wait REDIS_TIMEOUT_SECONDS at most, so
    every post is answered and stored, and once Redis answers again the events flow again."""
    if not pg_available():
        pytest.skip("needs PostgreSQL")
    port = free_port()
    redis_proc = subprocess.Popen(redis_server_cmd(port), stdout=subprocess.DEVNULL)
    try:
        with Cluster(tmp_path, REDIS_URL=f"redis://127.0.0.1:{port}/0", RATELIMIT_ENABLED="true",
                     SENTIMENT_ENABLED="false") as cluster:
            ids = cluster.setup()
            web = cluster.start_web()
            headers = {"Authorization": f"Bearer {ids['token']}"}

            def post(n: int) -> tuple[int, float]:
                started = time.monotonic()
                try:
                    status = requests.post(web + "/api/v1/messages", headers=headers, timeout=20,
                                           json={"external_id": f"h-{n}", "user_id": "u",
                                                 "text": f"止まっています{n}"}).status_code
                except requests.Timeout:
                    status = 0
                return status, time.monotonic() - started

            assert post(0)[0] == 201
            os.kill(redis_proc.pid, signal.SIGSTOP)
            try:
                during = [post(n) for n in range(1, 5)]
            finally:
                os.kill(redis_proc.pid, signal.SIGCONT)
            assert [status for status, _ in during] == [201] * 4, during
            assert max(took for _, took in during) < 8, during
            assert sum(took for _, took in during) < 12, during
            assert cluster.count("messages") == 5
            # Redis answers again: live events reach an agent's page.
            received: list = []
            sio = agent_socket(web, agent_session(web, "e2e@example.com", "e2e-password"), received)
            try:
                def posted_and_seen() -> bool:
                    post(len(received) + 100)
                    return any(e == "message.created" for e, _ in received)

                assert wait_until(posted_and_seen, 30, interval=1)
            finally:
                sio.disconnect()
    finally:
        if redis_proc.poll() is None:
            os.kill(redis_proc.pid, signal.SIGCONT)
        redis_proc.terminate()
        redis_proc.wait(10)
