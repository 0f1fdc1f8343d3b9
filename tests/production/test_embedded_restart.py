"""The embedded desk (``flask serve``, jobs in a thread of the server) stopped while a reply was
still to be sent (its send waiting to be retried after a timeout, or in flight when SIGTERM came):
the jobs in the server's memory end with it, the reply stays pending in the database, and the
next start sends it. Without RQ there is no sweep to find it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from tests.live import free_port
from tests.procs import ROOT, wait_http, wait_until

from .test_faults import Receiver

pytestmark = pytest.mark.slow

SETUP = """
from channels.base import Inbound
from helpdesk import create_app
from helpdesk.extensions import db
from helpdesk.jobs import jobs
from helpdesk.models import Agent, Inbox, Role
from helpdesk.services.ingest import ingest
from helpdesk.services.replies import post_reply
import sys
app = create_app()
jobs.enqueue = lambda *args, **kwargs: False  # the server stopped before its job ran
with app.app_context():
    inbox = Inbox(name='API', kind='api', settings={'callback_url': sys.argv[1]}); db.session.add(inbox)
    agent = Agent(email='a@example.jp', name='A', role=Role.admin); agent.set_password('a-long-password')
    db.session.add(agent); db.session.commit()
    found = ingest(inbox, Inbound(external_id='m-1', user_id='c-1', text='届いていません'))
    db.session.commit()
    print(post_reply(found.message.ticket, agent, 'お待たせしました').id)
"""


def test_a_reply_left_pending_by_a_stopped_server_is_sent_when_it_starts_again(tmp_path):
    db_file = tmp_path / "helpdesk.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env.update({"HELPDESK_DATABASE_URL": f"sqlite:///{db_file}", "HELPDESK_SECRET_KEY": "restart-test",
                "HELPDESK_UPLOAD_DIR": str(tmp_path / "uploads"), "HELPDESK_SENTIMENT_ENABLED": "false",
                "FLASK_APP": "wsgi", "PYTHONUNBUFFERED": "1"})
    subprocess.run([sys.executable, "-m", "flask", "init-db"], env=env, cwd=ROOT, check=True, capture_output=True,
                   timeout=120)
    receiver = Receiver()
    proc = None
    log = open(tmp_path / "serve.log", "w+")
    try:
        out = subprocess.run([sys.executable, "-c", SETUP, receiver.url], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        reply_id = int(out.stdout.split()[-1])

        def delivery() -> str:
            with sqlite3.connect(db_file) as conn:
                return conn.execute("select delivery from messages where id = ?", (reply_id,)).fetchone()[0]

        assert delivery() == "pending" and not receiver.delivered
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "flask", "serve", "--port", str(port)], env=env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(f"http://127.0.0.1:{port}/healthz")
        log.flush()
        assert wait_until(lambda: delivery() == "sent", 20), \
            f"the reply is still {delivery()}: {(tmp_path / 'serve.log').read_text()[-2000:]}"
        assert [body["message_id"] for body in receiver.delivered.values()] == [reply_id]
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        receiver.close()
        log.close()
