"""README command 1 for real: ``flask serve`` as a process on the embedded defaults
(SQLite, jobs in a thread of the server, the shipped model)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
import requests

from tests.live import free_port
from tests.procs import ROOT, agent_session, agent_socket, wait_http, wait_until

pytestmark = pytest.mark.slow


def _env(db_file, uploads) -> dict:
    env = dict(os.environ)
    env.update({
        "HELPDESK_DATABASE_URL": f"sqlite:///{db_file}",
        "HELPDESK_SECRET_KEY": "serve-test",
        "HELPDESK_UPLOAD_DIR": str(uploads),
        "FLASK_APP": "wsgi",
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("HELPDESK_JOBS", None)
    return env


@pytest.fixture(scope="module")
def demo_desk(tmp_path_factory):
    """A demo desk's database and an API token, made once; each test serves a copy."""
    db_file = tmp_path_factory.mktemp("demo") / "helpdesk.db"
    env = _env(db_file, db_file.parent / "uploads")
    for cmd in (["init-db"], ["demo"]):  # as bash .ci/dev does, but leaving the labels pending
        subprocess.run([sys.executable, "-m", "flask", *cmd], env={**env, "HELPDESK_SENTIMENT_ENABLED": "false"},
                       cwd=ROOT, check=True, capture_output=True, timeout=300)
    token = subprocess.run(
        [sys.executable, "-c",
         "from helpdesk import create_app\n"
         "from helpdesk.extensions import db\n"
         "from helpdesk.models import ApiToken, Inbox\n"
         "app = create_app()\n"
         "with app.app_context():\n"
         "    inbox = Inbox(name='API', kind='api'); db.session.add(inbox); db.session.flush()\n"
         "    row, tok = ApiToken.issue('serve-test', inbox.id); db.session.add(row); db.session.commit()\n"
         "    print(tok)\n"],
        env=env, cwd=ROOT, check=True, capture_output=True, text=True, timeout=120).stdout.split()[-1]
    assert _pending_labels(db_file) > 10  # the demo's customer messages, for the server to label
    return db_file, token


@pytest.fixture
def embedded(tmp_path, demo_desk):
    template, token = demo_desk
    db_file = tmp_path / "helpdesk.db"
    with sqlite3.connect(template) as src, sqlite3.connect(db_file) as dst:
        src.backup(dst)  # the file with whatever its WAL still holds
    env = _env(db_file, tmp_path / "uploads")
    port = free_port()
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "flask", "serve", "--port", str(port)], env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz")
        yield {"url": url, "proc": proc, "log": log, "db": db_file, "token": token}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def _pending_labels(db_file) -> int:
    with sqlite3.connect(db_file) as conn:
        return conn.execute("SELECT count(*) FROM messages WHERE direction = 'inbound' "
                            "AND sentiment_label IS NULL").fetchone()[0]


def test_serve_prints_the_login_labels_the_backlog_and_updates_live(embedded):
    url = embedded["url"]
    embedded["log"].seek(0)
    printed = embedded["log"].read()
    assert f"Helpdesk running at {url}/" in printed
    assert "Demo login: admin@example.com / helpdesk-demo" in printed
    # What the demo left unlabelled is labelled by the server's own job thread, unasked.
    assert wait_until(lambda: _pending_labels(embedded["db"]) == 0, timeout=180)

    session = agent_session(url, "admin@example.com", "helpdesk-demo")
    assert session.get(url + "/").status_code == 200
    # With no HELPDESK_PUBLIC_URL, the addresses handed out follow the port served (not 5000).
    with sqlite3.connect(embedded["db"]) as conn:
        line_inbox = conn.execute("SELECT id FROM inboxes WHERE kind = 'line'").fetchone()[0]
    assert f"{url}/webhooks/line/" in session.get(f"{url}/admin/inboxes/{line_inbox}").text
    received: list = []
    sock = agent_socket(url, session, received)
    try:
        r = requests.post(url + "/api/v1/messages", headers={"Authorization": f"Bearer {embedded['token']}"},
                          json={"external_id": "serve-1", "user_id": "u-1", "text": "届いた商品が壊れていました😢"},
                          timeout=30)
        assert r.status_code == 201, r.text
        message_id = r.json()["message"]["id"]
        assert wait_until(lambda: any(e == "message.created" and d["id"] == message_id for e, d in received), 30)
        labelled = wait_until(lambda: [d for e, d in received if e == "message.sentiment" and d["id"] == message_id],
                              60)
        assert labelled and labelled[0]["sentiment"]["label"] == "negative"
    finally:
        sock.disconnect()


def test_serve_stops_promptly_on_sigterm_with_agents_connected(embedded):
    url = embedded["url"]
    session = agent_session(url, "admin@example.com", "helpdesk-demo")
    sock = agent_socket(url, session, [])
    try:
        started = time.monotonic()
        embedded["proc"].send_signal(signal.SIGTERM)
        assert embedded["proc"].wait(15) == 0
        assert time.monotonic() - started < 10
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/healthz", timeout=5)
    finally:
        sock.disconnect()


def _stalled_agent_socket(url: str, session: requests.Session) -> socket.socket:
    """An agent's websocket that joins the agent namespace and then never reads again, with
    a receive buffer as small as the kernel allows: a laptop asleep, a stuck browser tab."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.connect((host, int(port)))
    cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    sock.sendall((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                  f"Sec-WebSocket-Key: c3RhbGxlZC1hZ2VudC0xMg==\r\nCookie: {cookie}\r\n\r\n").encode())
    sock.settimeout(10)

    def read_until(marker: bytes, seen: bytes = b"") -> bytes:
        while marker not in seen:
            chunk = sock.recv(4096)
            assert chunk, seen
            seen += chunk
        return seen

    read_until(b'0{"sid"')  # the upgrade and Engine.IO's open packet: the websocket is up
    mask = os.urandom(4)
    text = b"40/agent,"  # Socket.IO: connect to the /agent namespace (a client's frames are masked)
    sock.sendall(bytes([0x81, 0x80 | len(text)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(text)))
    read_until(b'40/agent,{"sid"')  # connected: the server has put this socket in the agent's rooms
    return sock


def test_an_agent_whose_page_stops_reading_holds_up_no_post_and_no_other_agent(embedded):
    """Events for a socket that does not read pile up in that socket's own queue. Once the
    kernel's buffers towards it are full, writing to it blocks: only its own writer thread
    may be the one blocked, never the request that stored the message (which on SQLite
    would hold the writer lock for everyone) nor the events for the other agents."""
    url = embedded["url"]
    session = agent_session(url, "admin@example.com", "helpdesk-demo")
    stalled = _stalled_agent_socket(url, session)
    received: list = []
    reader = agent_socket(url, session, received)
    try:
        text = "届いた商品が壊れていました。" * 1400  # 19,600 characters, about 120 kB as an event
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            send_buffer_max = int(f.read().split()[2])
        posts = send_buffer_max // 100_000 + 40  # more than the kernel can hold for the stalled socket
        headers = {"Authorization": f"Bearer {embedded['token']}"}
        ids = []
        with requests.Session() as api:
            for i in range(posts):
                r = api.post(url + "/api/v1/messages", headers=headers, timeout=20,
                             json={"external_id": f"stall-{i}", "user_id": f"stall-{i % 3}", "text": text})
                assert r.status_code == 201, r.text
                ids.append(r.json()["message"]["id"])
        created = lambda: {d["id"] for e, d in received if e == "message.created"}  # noqa: E731
        assert wait_until(lambda: set(ids) <= created(), timeout=60), len(set(ids) & created())
    finally:
        reader.disconnect()
        stalled.close()
