"""The presence registry on a real Redis. Each Presence stands for one process: two of
them are two web servers, one with no sockets is an RQ worker."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest
from redis import Redis

from helpdesk.realtime.presence import Presence
from tests.live import free_port
from tests.procs import REDIS_URL, ROOT, redis_available, wait_until

A = {"id": 1, "name": "Aさん"}
B = {"id": 2, "name": "Bさん"}


@pytest.fixture
def prefix():
    if not redis_available():
        pytest.skip("needs Redis")
    prefix = f"hd-presence-{uuid.uuid4().hex[:8]}"
    yield prefix
    r = Redis.from_url(REDIS_URL)
    for key in r.scan_iter(f"{prefix}:*"):
        r.delete(key)


@pytest.mark.redis
def test_two_servers_and_a_worker_see_the_same_viewers_agents_and_visitors(prefix):
    one, two, worker = (Presence(REDIS_URL, prefix) for _ in range(3))
    one.agent_connected("sid-a", A, {10, 11})
    two.agent_connected("sid-b", B, {20})
    one.view("sid-a", 7)
    two.view("sid-b", 7)
    one.visitor_connected("sid-v", "v:abc")

    for p in (one, two, worker):
        assert p.viewers(7) == [A, B]
        assert p.agents_online(11) and p.agents_online(20) and not p.agents_online(30)
        assert p.visitor_online("v:abc") and not p.visitor_online("v:other")
    assert not Presence(REDIS_URL, prefix + "-other").visitor_online("v:abc")  # another deployment

    assert one.disconnected("sid-a") == [7]
    one.disconnected("sid-v")
    assert two.viewers(7) == [B]
    assert not worker.agents_online(10) and worker.agents_online(20)
    assert not worker.visitor_online("v:abc")
    two.leave("sid-b", 7)
    assert one.viewers(7) == [] and two.disconnected("sid-b") == []
    assert not worker.agents_online(20)


@pytest.mark.redis
def test_which_agents_are_online_on_any_server(prefix):
    one, two, worker = (Presence(REDIS_URL, prefix) for _ in range(3))
    one.agent_connected("sid-a", A, [1])
    two.agent_connected("sid-b", B, [2])
    assert worker.online_among([A["id"], B["id"], 99]) == {A["id"], B["id"]}
    assert one.online_among([A["id"], 99]) == {A["id"]} and one.online_among([]) == set()
    two.disconnected("sid-b")
    assert worker.online_among([A["id"], B["id"]]) == {A["id"]}
    one.disconnected("sid-a")
    assert worker.online_among([A["id"], B["id"]]) == set()


@pytest.mark.redis
def test_an_agent_in_tabs_on_two_servers_is_listed_once_until_the_last_tab_closes(prefix):
    one, two = Presence(REDIS_URL, prefix), Presence(REDIS_URL, prefix)
    for p, sid in ((one, "tab-1"), (two, "tab-2")):
        p.agent_connected(sid, A, [1])
        p.view(sid, 3)
    assert one.viewers(3) == [A] and two.viewers(3) == [A]
    one.disconnected("tab-1")
    assert one.viewers(3) == [A] and one.agents_online(1)
    two.disconnected("tab-2")
    assert one.viewers(3) == [] and not one.agents_online(1)


@pytest.mark.redis
def test_a_crashed_servers_sockets_expire_while_a_live_ones_heartbeat_keeps_them(prefix):
    # A real process that registers sockets, keeps them alive with its heartbeat, then dies
    # without a word (SIGKILL), as a crashed server would.
    code = (
        "import time\n"
        "from helpdesk.realtime.presence import Presence\n"
        f"p = Presence({REDIS_URL!r}, {prefix!r}, ttl=1.5)\n"
        "p.agent_connected('doomed', {'id': 9, 'name': '落ちるサーバー'}, [5])\n"
        "p.view('doomed', 3)\n"
        "p.visitor_connected('doomed-v', 'v:doomed')\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        reader = Presence(REDIS_URL, prefix)
        time.sleep(3.5)  # more than twice the TTL: only the heartbeat can have kept them
        assert reader.viewers(3) == [{"id": 9, "name": "落ちるサーバー"}]
        assert reader.agents_online(5) and reader.visitor_online("v:doomed")
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
    killed = time.monotonic()
    assert wait_until(lambda: not reader.agents_online(5), 5)
    assert time.monotonic() - killed < 2.5
    assert reader.viewers(3) == [] and not reader.visitor_online("v:doomed")


def test_with_redis_down_nothing_raises_and_the_answer_is_this_process(caplog):
    down = Presence(f"redis://127.0.0.1:{free_port()}/0", "down")
    down.agent_connected("sid-a", A, [1])
    down.view("sid-a", 2)
    down.visitor_connected("sid-v", "v:here")
    # Every yes is still true; a no may be wrong, which costs an email, never a message.
    assert down.viewers(2) == [A] and down.agents_online(1) and down.visitor_online("v:here")
    assert down.viewers(3) == [] and not down.agents_online(4) and not down.visitor_online("v:elsewhere")
    assert down.online_among([A["id"], 4]) == {A["id"]}
    down.leave("sid-a", 2)
    assert down.viewers(2) == []
    assert down.disconnected("sid-a") == [] and down.disconnected("sid-v") == []
    assert not down.visitor_online("v:here")
    assert "Redis unavailable" in caplog.text


def test_without_redis_one_process_answers_alone():
    p = Presence()
    p.agent_connected("sid-a", A, [1])
    p.agent_connected("sid-b", B, [1])
    p.view("sid-a", 2)
    p.view("sid-b", 2)
    assert p.viewers(2) == [A, B] and p.agents_online(1)
    assert p.disconnected("sid-b") == [2]
    assert p.viewers(2) == [A]
