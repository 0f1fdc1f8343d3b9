"""Sustained load: real webhooks in, 20 agent screens listening, latency webhook -> screen.

Open-loop: each step offers a fixed rate for a bounded time (requests leave on schedule,
whatever the server's answer time, and latency counts from the *scheduled* send so a
slow server cannot hide its queue). The offered rate steps up until the p99 from the
webhook leaving to ``message.created`` on every agent socket passes the target, or a
message is lost. Traffic is the API channel (``/api/v1/messages``) and, when the LINE
adapter exists, LINE webhooks with real signatures, half each.

Both configurations of the desk, each on a fresh database:

* embedded:   ``flask serve`` (gunicorn gthread, SQLite WAL, jobs in a thread), one worker process;
* production: 2 gunicorn processes + 1 ``flask worker`` on PostgreSQL and Redis
              (agents spread over both web processes; posts round-robin between them).

    python bench/load.py [--config embedded|production|both] [--rates 10,20,40,80]
                         [--step-seconds 10] [--agents 20] [--target-ms 100] [--sentiment]

Numbers on a shared 2-core machine are noisy: the harness (correct and reproducible)
matters more than any one figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import requests

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench._servers import ROOT, agent_socket, cpu_seconds, desk_env, free_port, proc_tree, wait_http

LINE_SECRET = "bench-line-channel-secret"
LINE_TOKEN = "bench-line-token"
PASSWORD = "bench-password"

_SETUP = """
import json
from helpdesk import create_app
from helpdesk.extensions import db
from helpdesk.models import Agent, ApiToken, Inbox, Role
app = create_app()
with app.app_context():
    db.create_all()
    api = Inbox(name='bench-api', kind='api'); db.session.add(api)
    line = None
    try:
        import channels.line  # noqa: F401
        line = Inbox(name='bench-line', kind='line', settings={{'api_base': '{standin}', 'api_data_base': '{standin}'}},
                     secrets={{'channel_secret': '{secret}', 'channel_token': '{token}'}})
        db.session.add(line)
    except ImportError:
        pass
    a = Agent(email='bench@example.com', name='bench', role=Role.admin); a.set_password('{password}')
    db.session.add(a); db.session.flush()
    row, tok = ApiToken.issue('bench', api.id); db.session.add(row); db.session.commit()
    print(json.dumps({{'token': tok, 'line_key': line.key if line else None}}))
"""


# ---- measuring -------------------------------------------------------------------------------------

class Screens:
    """The agent sockets, in child processes (so their threads do not compete with the posters
    for this process's GIL, nor 20 sockets' JSON decoding for one child's); each child reports
    ``key screen monotonic-time`` per first sighting."""

    PROCESSES = 4

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[str, dict[int, float]] = {}
        self.duplicates = 0
        self.procs: list[subprocess.Popen] = []

    def connect(self, urls: list[str], n: int) -> None:
        per = -(-n // self.PROCESSES)
        for first in range(0, n, per):
            proc = subprocess.Popen([sys.executable, __file__, "--screens", ",".join(urls), "--agents",
                                     str(min(per, n - first)), "--first-screen", str(first)],
                                    cwd=ROOT, stdout=subprocess.PIPE, text=True, bufsize=1)
            self.procs.append(proc)
        for proc in self.procs:
            line = proc.stdout.readline()
            if line.strip() != "READY":
                raise RuntimeError(f"agent screens did not connect: {line!r}")
            threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            key, screen, at = line.split()
            with self.lock:
                per = self.seen.setdefault(key, {})
                if int(screen) in per:
                    self.duplicates += 1
                else:
                    per[int(screen)] = float(at)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            proc.wait(10)


def screens_child(urls: list[str], n: int, first: int) -> None:
    """Child side: log in n agent sockets (screens first, first+1, ...) and print every
    message.created as it lands."""
    out_lock = threading.Lock()

    def handler(screen: int):
        def on_event(event, payload):
            if event != "message.created" or not isinstance(payload, dict):
                return
            at = time.monotonic()
            key = (payload.get("body") or "").split(" ", 1)[0]
            with out_lock:
                sys.stdout.write(f"{key} {screen} {at}\n")
                sys.stdout.flush()
        return on_event

    clients = [agent_socket(urls[(first + i) % len(urls)], "bench@example.com", PASSWORD, handler(first + i))
               for i in range(n)]
    print("READY", flush=True)
    try:
        while all(c.connected for c in clients):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


def rss_mb(pids: list[int]) -> float:
    total = 0
    for p in proc_tree(pids):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


# ---- offering load ---------------------------------------------------------------------------------

@dataclass
class Target:
    """Where and how to post: the web URLs (round-robin) and the credentials."""
    urls: list[str]
    token: str
    line_key: str | None
    pids: list[int]
    _local: threading.local = field(default_factory=threading.local)

    def session(self) -> requests.Session:
        s = getattr(self._local, "s", None)
        if s is None:
            s = self._local.s = requests.Session()
        return s

    def post(self, i: int, key: str) -> bool:
        url = self.urls[i % len(self.urls)]
        text = f"{key} 注文した商品がまだ届きません"
        if self.line_key and i % 2:
            from channels.line import signature

            ev = {"type": "message", "mode": "active", "timestamp": int(time.time() * 1000),
                  "source": {"type": "user", "userId": f"Ubench{i % 50:04d}"}, "replyToken": f"rt-{key}",
                  "webhookEventId": key, "deliveryContext": {"isRedelivery": False},
                  "message": {"id": str(uuid.uuid4().int)[:18], "type": "text", "text": text, "quoteToken": "q"}}
            raw = json.dumps({"destination": "U" + "0" * 32, "events": [ev]}, ensure_ascii=False).encode()
            r = self.session().post(f"{url}/webhooks/line/{self.line_key}", data=raw, timeout=10,
                                    headers={"Content-Type": "application/json",
                                             "X-Line-Signature": signature(LINE_SECRET, raw)})
            return r.status_code == 200
        r = self.session().post(url + "/api/v1/messages", headers={"Authorization": f"Bearer {self.token}"},
                                json={"external_id": key, "user_id": f"cust-{i % 50}", "text": text}, timeout=10)
        return r.status_code == 201


def run_step(target: Target, screens: Screens, rate: float, seconds: float, agents: int, label: str) -> dict:
    n = max(1, int(rate * seconds))
    scheduled: dict[str, float] = {}
    accepted: set[str] = set()  # answered 2xx: the desk owns these and must show every one
    errors = 0
    err_lock = threading.Lock()

    def fire(i: int, key: str) -> None:
        nonlocal errors
        try:
            ok = target.post(i, key)
        except requests.RequestException:
            ok = False
        with err_lock:
            if ok:
                accepted.add(key)
            else:
                errors += 1  # refused (5xx/timeout): a provider retries these

    cpu0, wall0 = cpu_seconds(target.pids), time.monotonic()
    start = time.monotonic() + 0.05
    with ThreadPoolExecutor(max_workers=64) as pool:
        for i in range(n):
            at = start + i / rate
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            key = f"{label}-{i:06d}-{uuid.uuid4().hex[:6]}"
            scheduled[key] = at
            pool.submit(fire, i, key)
        offered_for = time.monotonic() - start
    # Leaving the pool waited for every answer: ``accepted`` is final from here.
    # Drain: wait until every screen has every accepted message, or give up after 10 s.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with screens.lock:
            done = all(len(screens.seen.get(k, ())) >= agents for k in accepted)
        if done:
            break
        time.sleep(0.05)
    cpu = (cpu_seconds(target.pids) - cpu0) / (time.monotonic() - wall0)
    lat = []
    with screens.lock:
        delivered = 0
        for k, at in scheduled.items():
            per = screens.seen.get(k, {})
            if k in accepted:
                delivered += len(per)
            lat.extend((t - at) * 1000 for t in per.values())
    lat.sort()
    return {
        "rate": rate, "n": n, "achieved": n / offered_for, "errors": errors,
        "lost": len(accepted) * agents - delivered, "dup": screens.duplicates,
        "p50": statistics.median(lat) if lat else float("nan"),
        "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
        "cpu": cpu, "rss": rss_mb(target.pids),
    }


def sweep(name: str, target: Target, screens: Screens, args) -> list[dict]:
    # Warm-up, not recorded: first connections, lazy imports, SQL statement caches.
    run_step(target, screens, min(args.rates), 2, args.agents, f"{name[:3]}warm")
    rows = []
    for rate in args.rates:
        r = run_step(target, screens, rate, args.step_seconds, args.agents, f"{name[:3]}{int(rate)}")
        r["config"] = name
        rows.append(r)
        print(f"  {name:10} {rate:7.0f}/s  p50 {r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms  lost {r['lost']}  "
              f"dup {r['dup']}  err {r['errors']}  cpu {r['cpu']:.2f} cores  rss {r['rss']:.0f} MB", flush=True)
        if r["lost"] or r["errors"]:
            break  # the desk is failing, not just slow: a higher rate says nothing more
        if not r["p99"] < args.target_ms and not args.keep_going:
            break
    return rows


# ---- the two configurations ---------------------------------------------------------------------------

def _setup(env: dict, standin_url: str) -> dict:
    code = _SETUP.format(standin=standin_url, secret=LINE_SECRET, token=LINE_TOKEN, password=PASSWORD)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def embedded(args, standin_url: str) -> list[dict]:
    env = desk_env(HELPDESK_SENTIMENT_ENABLED="true" if args.sentiment else "false")
    creds = _setup(env, standin_url)
    port = free_port()
    log_path = Path(env["HELPDESK_UPLOAD_DIR"]).parent / "serve.log"
    print(f"  embedded: server log {log_path}")
    log = open(log_path, "w")  # noqa: SIM115  (closed in the finally below)
    proc = subprocess.Popen([sys.executable, "-m", "flask", "serve", "--port", str(port)], env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    screens = Screens()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz")
        screens.connect([url], args.agents)
        rows = sweep("embedded", Target([url], creds["token"], creds["line_key"], [proc.pid]), screens, args)
        if rows and rows[-1]["errors"]:
            print(f"  embedded: requests refused; see {log_path}")
        return rows
    finally:
        screens.close()
        proc.terminate()
        proc.wait(10)
        log.close()


def production(args, standin_url: str) -> list[dict]:
    from tests.procs import Cluster, redis_available

    if not redis_available():
        print("  production: Redis not reachable; skipped")
        return []
    with tempfile.TemporaryDirectory(prefix="hd-load-") as tmp, \
            Cluster(Path(tmp), SENTIMENT_ENABLED="true" if args.sentiment else "false") as cluster:
        creds = _setup(cluster.env, standin_url)
        urls = [cluster.start_web(), cluster.start_web()]
        cluster.start_worker()
        screens = Screens()
        try:
            screens.connect(urls, args.agents)
            pids = [p.pid for p in cluster.procs]
            return sweep("production", Target(urls, creds["token"], creds["line_key"], pids), screens, args)
        finally:
            screens.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=["embedded", "production", "both"], default="both")
    ap.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[10, 20, 40, 80, 160])
    ap.add_argument("--step-seconds", type=float, default=10)
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--target-ms", type=float, default=100)
    ap.add_argument("--keep-going", action="store_true", help="keep stepping after a p99 miss (noisy machines); errors or losses always stop")
    ap.add_argument("--sentiment", action="store_true", help="label sentiment too (default: desk cost only)")
    ap.add_argument("--screens", help=argparse.SUPPRESS)  # internal: run the agent sockets (child process)
    ap.add_argument("--first-screen", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.screens:
        screens_child(args.screens.split(","), args.agents, args.first_screen)
        return

    rows: list[dict] = []
    with ExitStack() as stack:
        standin_url = "http://127.0.0.1:9"
        try:  # LINE profile fetches (a background job per new message) go to a local stand-in
            from tests.channels.standins import LineStandIn

            standin = stack.enter_context(LineStandIn(token=LINE_TOKEN))
            standin_url = standin.url
            for n in range(50):
                uid = f"Ubench{n:04d}"
                standin.profiles[uid] = {"userId": uid, "displayName": f"顧客{n}"}
            import channels.line  # noqa: F401  (imported once here, not under load in 64 threads)
        except ImportError:
            pass
        if args.config in ("embedded", "both"):
            rows += embedded(args, standin_url)
        if args.config in ("production", "both"):
            rows += production(args, standin_url)

    print(f"\n{'config':10} {'offered/s':>9} {'sent/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'lost':>5} {'dup':>4} "
          f"{'err':>4} {'cpu':>5} {'rss MB':>7}")
    for r in rows:
        print(f"{r['config']:10} {r['rate']:9.0f} {r['achieved']:7.1f} {r['p50']:7.1f} {r['p99']:7.1f} {r['lost']:5d} "
              f"{r['dup']:4d} {r['errors']:4d} {r['cpu']:5.2f} {r['rss']:7.0f}")
    for name in ("embedded", "production"):
        good = [r["rate"] for r in rows if r["config"] == name and r["p99"] < args.target_ms
                and not r["lost"] and not r["errors"]]
        if any(r["config"] == name for r in rows):
            print(f"{name}: highest rate with p99 < {args.target_ms:.0f} ms and nothing lost: "
                  f"{max(good) if good else 'none'} msgs/s")


if __name__ == "__main__":
    main()
