"""Shared plumbing for the benchmarks: start the desk (or a bare Flask-SocketIO
floor) as a real server process, an authenticated agent Socket.IO client, and the
CPU time a process tree has used."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def prepare_desk(env: dict[str, str]) -> tuple[str, str]:
    """Create schema, one agent and one API inbox; returns (agent email, API token)."""
    code = (
        "from helpdesk import create_app\n"
        "from helpdesk.extensions import db\n"
        "from helpdesk.models import Agent, ApiToken, Inbox, Role\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        "    db.create_all()\n"
        "    inbox = Inbox(name='bench', kind='api'); db.session.add(inbox)\n"
        "    a = Agent(email='bench@example.com', name='bench', role=Role.admin); a.set_password('bench-password')\n"
        "    db.session.add(a); db.session.flush()\n"
        "    row, tok = ApiToken.issue('bench', inbox.id); db.session.add(row); db.session.commit()\n"
        "    print(tok)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    return "bench@example.com", out.stdout.strip().splitlines()[-1]


def desk_env(**extra: str) -> dict[str, str]:
    tmp = tempfile.mkdtemp(prefix="hd-bench-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # the servers are stopped by then
    env = dict(os.environ)
    env.update({
        "HELPDESK_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
        "HELPDESK_SECRET_KEY": "bench",
        "HELPDESK_RATELIMIT_ENABLED": "false",
        "HELPDESK_UPLOAD_DIR": f"{tmp}/uploads",
        "FLASK_APP": "wsgi",
    })
    env.update(extra)
    return env


def start_desk(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "flask", "serve", "--port", str(port)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz")
    return proc, url


def agent_socket(url: str, email: str, password: str, on_event):
    """Log in over HTTP, then connect the agent namespace with the session cookie."""
    import re

    import socketio

    s = requests.Session()
    html = s.get(url + "/login").text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    r = s.post(url + "/login", data={"email": email, "password": password, "csrf_token": token},
               allow_redirects=False)
    assert r.status_code == 302, r.status_code
    cookie = "; ".join(f"{k}={v}" for k, v in s.cookies.items())
    client = socketio.Client(reconnection=False)
    client.on("*", on_event, namespace="/agent")
    client.connect(url, namespaces=["/agent"], headers={"Cookie": cookie}, transports=["websocket"])
    return client


def proc_tree(pids: list[int]) -> list[int]:
    """The given pids and all their descendants, from /proc (no psutil needed)."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                parents[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, todo = set(), list(pids)
    while todo:
        p = todo.pop()
        if p in found:
            continue
        found.add(p)
        todo.extend(c for c, pp in parents.items() if pp == p)
    return sorted(found)


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in proc_tree(pids):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        except (OSError, ValueError, IndexError):
            continue
    return total

