"""README command 1 for real: ``flask serve`` as a process on the embedded defaults
(SQLite, jobs in a thread of the server, the shipped model)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import requests

from tests.live import free_port
from tests.procs import ROOT, agent_session, agent_socket, wait_http, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def embedded(tmp_path):
    db_file = tmp_path / "helpdesk.db"
    env = dict(os.environ)
    env.update({
        "HELPDESK_DATABASE_URL": f"sqlite:///{db_file}",
        "HELPDESK_SECRET_KEY": "serve-test",
        "HELPDESK_UPLOAD_DIR": str(tmp_path / "uploads"),
        "FLASK_APP": "wsgi",
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("HELPDESK_JOBS", None)
    for cmd in (["init-db"], ["demo"]):  # as bash .ci/dev does, but leaving the labels pending
        subprocess.run([sys.executable, "-m", "flask", *cmd], env=env, cwd=ROOT, check=True, capture_output=True,
                       timeout=300)
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
