"""The production configuration for real: gunicorn web processes and RQ workers on
PostgreSQL + Redis. Events cross processes through Redis; jobs run on workers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import pg_available
from tests.procs import Cluster, agent_session, agent_socket, redis_available, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def cluster(tmp_path):
    if not (pg_available() and redis_available()):
        pytest.skip("needs PostgreSQL and Redis")
    with Cluster(tmp_path) as c:
        yield c


def test_message_posted_to_b_reaches_agent_on_a_labelled_by_worker(cluster):
    ids = cluster.setup()
    a, b = cluster.start_web(), cluster.start_web()
    cluster.start_worker()
    received: list = []
    sio = agent_socket(a, agent_session(a, "e2e@example.com", "e2e-password"), received)
    try:
        r = requests.post(b + "/api/v1/messages", headers={"Authorization": f"Bearer {ids['token']}"},
                          json={"external_id": "x-1", "user_id": "cust", "text": "いい加減にしてください！返金はまだですか"})
        assert r.status_code == 201
        message_id = r.json()["message"]["id"]
        created = wait_until(lambda: [d for e, d in received if e == "message.created" and d["id"] == message_id], 20)
        assert created and created[0]["body"].startswith("いい加減に")
        labelled = wait_until(lambda: [d for e, d in received if e == "message.sentiment" and d["id"] == message_id],
                              60)
        assert labelled and labelled[0]["sentiment"]["label"] == "negative"
        health = requests.get(b + "/healthz").json()
        assert health["checks"] == {"database": "ok", "redis": "ok"}
    finally:
        sio.disconnect()


def test_same_webhook_three_times_to_two_servers_is_one_message(cluster):
    ids = cluster.setup()
    a, b = cluster.start_web(), cluster.start_web()
    headers = {"Authorization": f"Bearer {ids['token']}"}
    body = {"external_id": "redelivered-1", "user_id": "cust", "text": "二重登録されていませんか"}
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda url: requests.post(url + "/api/v1/messages", headers=headers, json=body),
                                [a, b, a, b, a, b]))
    assert sorted(r.status_code for r in results).count(201) == 1
    assert {r.json()["message"]["id"] for r in results} == {results[0].json()["message"]["id"]}
    assert cluster.count("messages") == 1
