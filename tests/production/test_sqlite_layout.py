"""The single-machine production layout: gunicorn web processes and an RQ worker on one
SQLite file and Redis (README, "Production")."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.procs import Cluster, agent_session, agent_socket, redis_available, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]


@pytest.mark.skipif(not redis_available(), reason="needs Redis")
def test_two_servers_and_a_worker_share_one_sqlite_file(tmp_path):
    """The single-machine layout (README): concurrent posts to both servers are each stored
    once, reach the agent on A once, and the worker labels them; no process fails on
    "database is locked"."""
    with Cluster(tmp_path, sqlite=True) as cluster:
        ids = cluster.setup()
        a, b = cluster.start_web(), cluster.start_web()
        cluster.start_worker()
        received: list = []
        sio = agent_socket(a, agent_session(a, "e2e@example.com", "e2e-password"), received)
        headers = {"Authorization": f"Bearer {ids['token']}"}
        try:
            def post(i: int) -> requests.Response:
                return requests.post((a, b)[i % 2] + "/api/v1/messages", headers=headers, timeout=30, json={
                    "external_id": f"m-{i}", "user_id": f"cust-{i % 8}", "text": f"{i}件目：注文した商品がまだ届きません"})

            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(post, range(40)))
            assert [r.status_code for r in results] == [201] * 40, [r.text for r in results if r.status_code != 201]
            posted = {r.json()["message"]["id"] for r in results}
            assert len(posted) == 40

            def seen(event: str) -> list[int]:
                return [d["id"] for e, d in list(received) if e == event and d["id"] in posted]

            wait_until(lambda: set(seen("message.created")) == posted, 30)
            assert sorted(seen("message.created")) == sorted(posted)  # each once
            wait_until(lambda: set(seen("message.sentiment")) == posted, 120)
            assert set(seen("message.sentiment")) == posted
        finally:
            sio.disconnect()
        assert cluster.count("messages") == 40
    logs = "".join(p.read_text() for p in tmp_path.glob("*.log"))
    assert "database is locked" not in logs
