"""Real processes for the production-configuration tests: gunicorn web servers and
RQ workers on PostgreSQL + Redis, each with its own database, queue and channel."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

from tests.conftest import PG_BASE
from tests.live import free_port

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("HELPDESK_TEST_REDIS", "redis://127.0.0.1:6379/0")


def redis_available() -> bool:
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        return bool(Redis.from_url(REDIS_URL, socket_timeout=2).ping())
    except RedisError:
        return False


def redis_server_cmd(port: int) -> list[str]:
    """A private, memory-only Redis on ``port``, for tests that stop and start it."""
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


def drop_rq_queue(redis_url: str, queue: str) -> None:
    """Remove a test's or a bench's RQ queue from Redis: its entry in the list of queues
    (RQ's dashboards read it), the queue, its registries and its jobs (a job still queued
    when it stops never expires). What RQ gives an expiry (results, a worker's record) is
    left to expire."""
    from redis import Redis

    r = Redis.from_url(redis_url)
    r.srem("rq:queues", f"rq:queue:{queue}")
    for key in [*r.scan_iter(f"rq:*{queue}*"), *r.scan_iter(f"helpdesk:coalesce:{queue}:*")]:
        r.delete(key)
    for key in r.scan_iter("rq:job:*"):
        if key.count(b":") == 2 and r.hget(key, "origin") == queue.encode():
            r.delete(key)


class Cluster:
    """N web processes and M workers sharing one PostgreSQL database (or, with
    ``sqlite=True``, one SQLite file: the single-machine layout) and Redis."""

    def __init__(self, tmp_path: Path, sqlite: bool = False, **config: str):
        tag = uuid.uuid4().hex[:8]
        self.db_name = None if sqlite else f"hd_e2e_{tag}"
        self.db_url = f"sqlite:///{tmp_path / 'desk.db'}" if sqlite else PG_BASE.rsplit("/", 1)[0] + "/" + self.db_name
        self.tmp = tmp_path
        self.env = dict(os.environ)
        self.env.update({
            "HELPDESK_DATABASE_URL": self.db_url,
            "HELPDESK_REDIS_URL": REDIS_URL,
            "HELPDESK_JOBS": "rq",
            "HELPDESK_SOCKETIO_CHANNEL": f"hd-e2e-{tag}",
            "HELPDESK_JOBS_QUEUE": f"hd-e2e-{tag}",
            "HELPDESK_SECRET_KEY": "e2e-secret",
            "HELPDESK_UPLOAD_DIR": str(tmp_path / "uploads"),
            "HELPDESK_RATELIMIT_ENABLED": "false",
            "FLASK_APP": "wsgi",
            "PYTHONUNBUFFERED": "1",
        })
        self.env.update({f"HELPDESK_{k}": v for k, v in config.items()})
        self.procs: list[subprocess.Popen] = []
        self.logs: list = []
        self.web_urls: list[str] = []

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> Cluster:
        import psycopg

        if self.db_name:
            with psycopg.connect(PG_BASE, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.db_name}"')
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
            _kill_group(p)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        for log in self.logs:
            log.close()
        import psycopg

        if self.db_name:
            with psycopg.connect(PG_BASE, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        drop_rq_queue(REDIS_URL, self.env["HELPDESK_JOBS_QUEUE"])

    def _log(self, name: str):
        log = open(self.tmp / name, "w")
        self.logs.append(log)
        return log

    def python(self, code: str) -> str:
        out = subprocess.run([sys.executable, "-c", code], env=self.env, cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
        if out.returncode:
            raise RuntimeError(out.stderr[-3000:])
        return out.stdout

    def count(self, table: str) -> int:
        """Rows in a table of the cluster's database, read by a process of its own."""
        return int(self.python(
            "from helpdesk import create_app\nfrom helpdesk.extensions import db\nfrom sqlalchemy import text\n"
            "app = create_app()\nwith app.app_context():\n"
            f"    print(db.session.execute(text('select count(*) from {table}')).scalar())\n"))

    def setup(self) -> dict[str, str]:
        """Schema via migrations, an admin agent, a test-channel inbox and its API token."""
        subprocess.run([sys.executable, "-m", "flask", "init-db"], env=self.env, cwd=ROOT, check=True,
                       capture_output=True, timeout=120)
        out = self.python(
            "from helpdesk import create_app\n"
            "from helpdesk.extensions import db\n"
            "from helpdesk.models import Agent, ApiToken, Inbox, Role\n"
            "app = create_app()\n"
            "with app.app_context():\n"
            "    inbox = Inbox(name='e2e', kind='api'); db.session.add(inbox)\n"
            "    a = Agent(email='e2e@example.com', name='E2E', role=Role.admin); a.set_password('e2e-password')\n"
            "    db.session.add(a); db.session.flush()\n"
            "    row, tok = ApiToken.issue('e2e', inbox.id); db.session.add(row); db.session.commit()\n"
            "    print(inbox.id, inbox.key, tok)\n"
        )
        inbox_id, key, token = out.split()[-3:]
        return {"inbox_id": inbox_id, "inbox_key": key, "token": token}

    def start_web(self) -> str:
        port = free_port()
        log = self._log(f"web-{port}.log")
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "32", "-b", f"127.0.0.1:{port}",
             "--graceful-timeout", "2", "wsgi:app"],
            env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz")
        self.web_urls.append(url)
        return url

    def start_worker(self) -> subprocess.Popen:
        log = self._log(f"worker-{len(self.procs)}.log")
        # Its own session: killing the group takes the worker's forked scheduler with it,
        # as a crashed container would.
        proc = subprocess.Popen([sys.executable, "-m", "flask", "worker"], env=self.env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc


def _kill_group(proc: subprocess.Popen) -> None:
    """Children a worker forked (the RQ scheduler) go with it."""
    import signal

    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


def kill_hard(proc: subprocess.Popen) -> None:
    """SIGKILL a worker and everything it forked, mid-whatever-it-was-doing."""
    import signal

    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def embedded_flask(command: str, db_url: str, tmp_path: Path, secret_key: str = "cli-test",
                   timeout: float = 300) -> subprocess.CompletedProcess:
    """``flask <command>`` in its own process on the embedded defaults (thread jobs, the shipped
    model; no HELPDESK_* setting of this environment), as an operator runs it; asserts it ends well."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env.update(HELPDESK_DATABASE_URL=db_url, HELPDESK_SECRET_KEY=secret_key,
               HELPDESK_UPLOAD_DIR=str(tmp_path / "uploads"), FLASK_APP="wsgi")
    out = subprocess.run([sys.executable, "-m", "flask", *command.split()], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def wait_until(predicate, timeout: float = 60, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def agent_session(url: str, email: str, password: str) -> requests.Session:
    s = requests.Session()
    html = s.get(url + "/login").text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    r = s.post(url + "/login", data={"email": email, "password": password, "csrf_token": token},
               allow_redirects=False)
    assert r.status_code == 302, r.text[:500]
    return s


def agent_socket(url: str, session: requests.Session, received: list):
    import socketio

    cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    client = socketio.Client(reconnection=True, reconnection_delay=0.2)
    client.on("*", lambda event, data: received.append((event, data)), namespace="/agent")
    client.connect(url, namespaces=["/agent"], headers={"Cookie": cookie}, transports=["websocket"])
    return client
