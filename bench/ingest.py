"""Ingest throughput and post -> screen latency, against a bare Flask-SocketIO floor.

Posts N messages through the API channel as fast as C concurrent posters can
while one agent Socket.IO client listens; measures msgs/s and the time from the
POST leaving to ``message.created`` arriving. The same measurement against a
bare Flask-SocketIO emit (no DB, no auth) runs in the same invocation: compare
the ratio, not the absolute numbers (these machines are noisy). The posters use
plain ``http.client`` so that this process, which shares the machine's cores with
the server, costs as little as it can (``requests`` cost twice as much CPU).

``--servers N`` runs N desk servers on the one SQLite file instead of one, with Redis
carrying events between them (the production layout of README.md on SQLite: one process
cannot use more than one core); the posters are spread over them, the agent listens
on the first. Their CPU then counts Redis's.

``--rounds R`` measures floor, floor+db and desk R times over, and prints the median of
the rounds' ratios: on a machine whose speed drifts, one round's floor can land in a
faster or slower minute than its desk. With labelling on, each round waits for the labels
of all its messages before the next round's floors (which would otherwise measure a
machine still busy labelling), and the desk's CPU counts that labelling.

    python bench/ingest.py [-n 1000] [-c 4] [--rounds 3] [--no-sentiment] [--servers N]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench._servers import (ROOT, agent_socket, cpu_seconds, desk_env, free_port, prepare_desk,  # noqa: E402
                            start_desk, wait_http)


class Listener:
    def __init__(self):
        self.received: dict[str, float] = {}
        self.duplicates = 0
        self.lock = threading.Lock()
        self.all_in = threading.Event()
        self.expected = 0
        self.labelled: set[int] = set()
        self.all_labelled = threading.Event()

    def __call__(self, event, payload):
        if event == "message.sentiment":
            with self.lock:
                self.labelled.add(payload["id"])
                if len(self.labelled) >= self.expected:
                    self.all_labelled.set()
            return
        if event != "message.created":
            return
        key = payload.get("body") or payload.get("text")
        now = time.perf_counter()
        with self.lock:
            if key in self.received:
                self.duplicates += 1
            else:
                self.received[key] = now
            if len(self.received) >= self.expected:
                self.all_in.set()


class Poster:
    """JSON POSTs over one keep-alive connection per poster thread; with several URLs
    (the same path on several servers) the threads take them in turn."""

    def __init__(self, urls: str | list[str], headers: dict[str, str] | None = None):
        parts = [urlsplit(u) for u in ([urls] if isinstance(urls, str) else urls)]
        self.servers = [(p.hostname, p.port) for p in parts]
        self.path = parts[0].path
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.local = threading.local()
        self.next = 0
        self.lock = threading.Lock()

    def __call__(self, payload: dict) -> int:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            with self.lock:
                host, port = self.servers[self.next % len(self.servers)]
                self.next += 1
            conn = self.local.conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("POST", self.path, json.dumps(payload).encode(), self.headers)
        response = conn.getresponse()
        response.read()
        return response.status


def warm_up(client, post, timeout: float = 120) -> None:
    """Measure a desk that has loaded its model: one message, until its label arrives."""
    labelled = threading.Event()
    client.on("*", lambda event, payload: event == "message.sentiment" and labelled.set(), namespace="/agent")
    post({"external_id": "warm-up", "user_id": "warm-up", "text": "ウォームアップ"})
    if not labelled.wait(timeout):
        raise RuntimeError(f"no message.sentiment within {timeout:.0f} s: is labelling running?")


def run(label: str, post, n: int, concurrency: int, listener: Listener) -> dict:
    listener.expected = n
    sent_at: dict[str, float] = {}
    errors = 0

    def one(i: int) -> None:
        nonlocal errors
        key = f"{label}-{i} 注文した商品がまだ届きません"
        sent_at[key] = time.perf_counter()
        if not post(i, key):
            errors += 1

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    posted = time.perf_counter()
    listener.all_in.wait(timeout=60)
    end = time.perf_counter()
    lat = sorted((listener.received[k] - t) * 1000 for k, t in sent_at.items() if k in listener.received)
    lost = n - len(lat)
    return {
        "label": label, "n": n, "rate": n / (posted - start), "delivered_rate": len(lat) / (end - start),
        "p50": statistics.median(lat) if lat else float("nan"),
        "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
        "lost": lost, "duplicated": listener.duplicates, "errors": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("-c", "--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3,
                    help="floors then desk, this many times over; the ratios are the rounds' median")
    ap.add_argument("--no-sentiment", action="store_true", help="leave labels pending (desk cost only)")
    ap.add_argument("--servers", type=int, default=1,
                    help="desk servers on the one SQLite file, events between them through Redis")
    ap.add_argument("--redis", default=os.environ.get("HELPDESK_BENCH_REDIS", "redis://127.0.0.1:6379/0"),
                    help="Redis for --servers above 1")
    args = ap.parse_args()

    # The floor: bare Flask-SocketIO.
    port = free_port()
    floor = subprocess.Popen([sys.executable, "bench/floor_app.py", str(port)], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = desk_env(HELPDESK_SENTIMENT_ENABLED="false" if args.no_sentiment else "true")
    redis_pids: list[int] = []
    if args.servers > 1:
        from redis import Redis

        tag = uuid.uuid4().hex[:8]
        env.update(HELPDESK_REDIS_URL=args.redis, HELPDESK_SOCKETIO_CHANNEL=f"hd-bench-{tag}",
                   HELPDESK_JOBS="rq", HELPDESK_JOBS_QUEUE=f"hd-bench-{tag}")
        redis_pids = [Redis.from_url(args.redis).info("server")["process_id"]]
    email, token = prepare_desk(env)
    desks = [start_desk(env) for _ in range(args.servers)]
    procs = [proc for proc, _ in desks]
    if args.servers > 1 and not args.no_sentiment:
        procs.append(subprocess.Popen([sys.executable, "-m", "flask", "worker"], env=env, cwd=ROOT,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))  # its forked job process goes with it
    desk_url = desks[0][1]
    try:
        floor_url = f"http://127.0.0.1:{port}"
        wait_http(floor_url + "/healthz")
        import socketio

        fc = socketio.Client(reconnection=False)
        fc.connect(floor_url, namespaces=["/agent"], transports=["websocket"])
        emit, emit_stored = Poster(floor_url + "/emit"), Poster(floor_url + "/emit-stored")
        dc = agent_socket(desk_url, email, "bench-password", Listener())
        api = Poster([url + "/api/v1/messages" for _, url in desks], {"Authorization": f"Bearer {token}"})
        server_pids = [p.pid for p in procs] + redis_pids
        if not args.no_sentiment:
            warm_up(dc, api)

        listener_of: dict = {}

        def measure(label: str, client, post) -> dict:
            listener = listener_of[client] = Listener()
            client.on("*", listener, namespace="/agent")
            return run(label, post, args.n, args.concurrency, listener)

        # Each round measures both floors and then the desk, seconds apart, so each round's
        # ratios compare the desk with floors taken in the same phase of the (drifting) machine.
        rounds = []
        desk_cpu = bench_cpu = 0.0
        for r in range(args.rounds):
            floor_r = measure(f"floor#{r}", fc, lambda i, k: emit({"body": k}) == 201)
            floor_db = measure(f"floor+db#{r}", fc, lambda i, k: emit_stored({"body": k}) == 201)

            def post_desk(i: int, key: str, r=r) -> bool:
                return api({"external_id": f"bench-{r}-{i}", "user_id": f"cust-{i % 50}", "text": key}) == 201

            cpu0, bench0 = cpu_seconds(server_pids), time.process_time()
            desk_r = measure(f"desk#{r}", dc, post_desk)
            if not args.no_sentiment:
                # The floors of the next round measure a quiet machine, not one where the
                # desk is still labelling this round's messages (and the desk's CPU counts
                # all of its labelling).
                waited = time.perf_counter()
                if not listener_of[dc].all_labelled.wait(300):
                    raise RuntimeError(f"{args.n} messages not all labelled within 300 s")
                desk_r["labelled_after"] = time.perf_counter() - waited
            desk_cpu += cpu_seconds(server_pids) - cpu0
            bench_cpu += time.process_time() - bench0
            rounds.append((floor_r, floor_db, desk_r))
        fc.disconnect()
        dc.disconnect()
    finally:
        for p in [*procs, floor]:
            p.terminate()
        for p in [*procs, floor]:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:  # the worker finishes its batch first; not worth waiting for
                if os.getpgid(p.pid) == p.pid:  # the worker leads its own group (its job process)
                    os.killpg(p.pid, signal.SIGKILL)
                else:
                    p.kill()
                p.wait(10)
        if args.servers > 1:
            from tests.procs import drop_rq_queue

            drop_rq_queue(args.redis, env["HELPDESK_JOBS_QUEUE"])

    if args.servers > 1:
        print(f"desk: {args.servers} servers on one SQLite file, events through Redis")
    print(f"{'':11} {'posted/s':>9} {'seen/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'lost':>5} {'dup':>4} {'err':>4}")
    for r in (r for trio in rounds for r in trio):
        print(f"{r['label']:11} {r['rate']:9.1f} {r['delivered_rate']:8.1f} {r['p50']:8.1f} {r['p99']:8.1f} "
              f"{r['lost']:5d} {r['duplicated']:4d} {r['errors']:4d}")
    for trio in rounds:
        if "labelled_after" in trio[2]:
            print(f"{trio[2]['label']}: the last of its {args.n} labels arrived {trio[2]['labelled_after']:.1f} s "
                  "after its last message (the next round waited for it)")
    n = args.n * args.rounds
    print(f"desk CPU per message: server {desk_cpu / n * 1000:.2f} ms, this bench's posters and "
          f"listener {bench_cpu / n * 1000:.2f} ms, ratio {desk_cpu / bench_cpu:.2f}")
    # The latency target compares the desk with the bare floor; floor+db shows what
    # keeping the message at all costs. (If a floor's seen/s falls behind its posted/s, the
    # listener is the limit and that floor's latency is a queue's: compare with the other.)
    # The ratio of a round cancels out how fast the (shared, drifting) machine ran just then;
    # the median over rounds keeps one unlucky round from deciding.
    for k, name in enumerate(("floor", "floor+db")):
        p50 = [trio[2]["p50"] / trio[k]["p50"] for trio in rounds]
        p99 = [trio[2]["p99"] / trio[k]["p99"] for trio in rounds]
        rate = [trio[2]["rate"] / trio[k]["rate"] for trio in rounds]
        each = " ".join(f"{x:.2f}" for x in p99)
        print(f"ratios desk/{name} (median of {len(rounds)}): p50 {statistics.median(p50):.2f}x  "
              f"p99 {statistics.median(p99):.2f}x  throughput {statistics.median(rate):.2f}x"
              + (f"   (p99 by round: {each})" if len(rounds) > 1 else ""))


if __name__ == "__main__":
    main()
