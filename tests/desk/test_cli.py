"""The flask commands an operator uses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import Agent, Message, Role, Ticket
from tests.procs import embedded_flask

ROOT = Path(__file__).resolve().parents[2]


def test_create_agent(runner):
    result = runner.invoke(args=["create-agent", "--email", "Sato@Example.jp", "--name", "佐藤", "--role",
                                 "supervisor", "--password", "long enough pw"])
    assert result.exit_code == 0, result.output
    agent = db.session.scalar(select(Agent))
    assert (agent.email, agent.role) == ("sato@example.jp", Role.supervisor)
    assert agent.check_password("long enough pw")


def test_create_agent_refuses_short_password(runner):
    result = runner.invoke(args=["create-agent", "--email", "a@example.jp", "--name", "a", "--password", "short"])
    assert result.exit_code != 0 and "10 characters" in result.output


def test_demo_loads_every_channel_once(runner):
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0 and "admin@example.com" in first.output
    channels = set(db.session.scalars(select(Ticket.channel)))
    assert channels == {"email", "chat", "line", "messenger", "social"}
    # The conversations are history: each ticket began with its first message, was answered
    # and resolved after it (the dashboard's response times were 0 when the tickets began at
    # the load and their answers before it).
    for ticket in db.session.scalars(select(Ticket)):
        first = db.session.scalar(select(func.min(Message.sent_at)).where(Message.ticket_id == ticket.id))
        assert ticket.created_at == first
        assert ticket.first_response_at is None or ticket.first_response_at > ticket.created_at
        assert ticket.resolved_at is None or ticket.resolved_at > (ticket.first_response_at or ticket.created_at)
    count = db.session.scalar(select(func.count()).select_from(Message))
    again = runner.invoke(args=["demo"])
    assert "already present" in again.output
    assert db.session.scalar(select(func.count()).select_from(Message)) == count
    # demo replies are history: recorded as sent, nothing is queued to real providers
    pending = db.session.scalar(select(func.count()).select_from(Message).where(Message.delivery == "pending"))
    assert pending == 0


def test_the_demo_command_labels_its_messages_before_it_ends(tmp_path):
    """As README's first command runs it: embedded jobs, the shipped model. The command used to
    end while its job thread loaded the model, leaving every label pending and two lines of
    "labelling stopped" in the terminal (and the model's progress bar, for a local file)."""
    for cmd in ("init-db", "demo"):
        out = embedded_flask(cmd, f"sqlite:///{tmp_path / 'desk.db'}", tmp_path)
    assert "demo data loaded\n" in out.stdout  # no "(N messages wait for sentiment)"
    assert "labelling stopped" not in out.stderr and "Loading weights" not in out.stderr, out.stderr
    import sqlite3

    with sqlite3.connect(tmp_path / "desk.db") as conn:
        labels = conn.execute("SELECT sentiment_label, count(*) FROM messages WHERE direction = 'inbound' "
                              "GROUP BY 1").fetchall()
    assert None not in dict(labels) and {"negative", "positive"} <= set(dict(labels)), labels


def test_reset_db(runner):
    runner.invoke(args=["demo"])
    result = runner.invoke(args=["reset-db", "--yes"])
    assert result.exit_code == 0
    assert db.session.scalar(select(func.count()).select_from(Ticket)) == 0


def test_each_log_line_is_printed_once(tmp_path):
    """The desk's log lines reach the terminal once: the configuration's warning (the first
    line the app logs) used to give Flask's logger a handler of its own beside the root's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env["HELPDESK_DATABASE_URL"] = f"sqlite:///{tmp_path / 'desk.db'}"  # no secret key: the warning
    code = ("import logging; from helpdesk import create_app; create_app(); "
            "logging.getLogger('helpdesk.services.ingest').info('marker 受信')")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("HELPDESK_SECRET_KEY is not set") == 1, out.stderr
    assert out.stderr.count("marker 受信") == 1, out.stderr


@pytest.mark.config(SENTIMENT_MODEL="/nonexistent/ja-sentiment")
@pytest.mark.parametrize("command", ["label-sentiment", "backfill-sentiment"])
def test_labelling_commands_fail_in_one_line_when_the_model_does_not_load(runner, command):
    result = runner.invoke(args=[command])
    assert result.exit_code == 1
    assert "/nonexistent/ja-sentiment" in result.output and "no such directory" in result.output
    assert "Traceback" not in result.output and "labelled" not in result.output
