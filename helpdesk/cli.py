"""``flask`` commands: database, agents, demo data, sentiment, workers, serve."""

from __future__ import annotations

import os
import sys

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from .extensions import db
from .models import Agent, Message, Role


def register_cli(app: Flask) -> None:
    for cmd in (init_db, reset_db, create_agent, demo, label_sentiment, backfill_sentiment, worker, serve,
                poll_social):
        app.cli.add_command(cmd)
    for cmd in (poll_email, smtp_listen):  # email channel (services/mailbox.py)
        app.cli.add_command(cmd)


@click.command("init-db")
@with_appcontext
def init_db():
    """Create or upgrade the schema (Alembic migrations, SQLite and PostgreSQL)."""
    from flask_migrate import upgrade

    upgrade()
    click.echo("database ready")


@click.command("reset-db")
@click.option("--yes", is_flag=True, help="Do not ask.")
@with_appcontext
def reset_db(yes: bool):
    """Drop everything and recreate the schema."""
    if not yes:
        click.confirm("This deletes every ticket, contact and agent. Continue?", abort=True)
    from flask_migrate import upgrade
    from sqlalchemy import text

    db.drop_all()
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade()
    click.echo("database reset")


def _checked_email(ctx, param, value: str) -> str:
    from channels.base import valid_email

    value = value.strip()
    if not valid_email(value):
        raise click.BadParameter(f"{value!r} is not an email address (name@example.jp)")
    return value


def _checked_name(ctx, param, value: str) -> str:
    value = value.strip()
    if not value:
        raise click.BadParameter("the name must not be empty")
    if len(value) > 120:  # the column's, as in the admin form
        raise click.BadParameter("use at most 120 characters")
    return value


@click.command("create-agent")
@click.option("--email", required=True, callback=_checked_email)
@click.option("--name", required=True, callback=_checked_name)
@click.option("--role", type=click.Choice([r.value for r in Role]), default="agent")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@with_appcontext
def create_agent(email: str, name: str, role: str, password: str):
    """Create an agent (or reset an existing agent's password and role)."""
    if len(password) < 10:
        raise click.BadParameter("use at least 10 characters", param_hint="--password")
    agent = db.session.scalar(select(Agent).where(func.lower(Agent.email) == email.lower()))
    if agent is None:
        agent = Agent(email=email.lower(), name=name)
        db.session.add(agent)
    agent.name, agent.role = name, Role(role)
    agent.set_password(password)
    db.session.commit()
    click.echo(f"agent {agent.email} ({agent.role.value}) ready")


@click.command("demo")
@click.option("--force", is_flag=True, help="Load even if demo data exists.")
@with_appcontext
def demo(force: bool):
    """Load demo agents, inboxes and Japanese tickets on every channel."""
    from .demo import DEMO_LOGIN, load_demo

    if load_demo(force=force):
        pending = _finish_jobs()
        click.echo("demo data loaded" + (f" ({pending} messages wait for sentiment)" if pending else ""))
    else:
        click.echo("demo data already present")
    click.echo(f"login: {DEMO_LOGIN[0]} / {DEMO_LOGIN[1]}")


def _finish_jobs() -> int:
    """Before a one-shot command that stored messages ends: wait for what they queued on this
    process's job thread (embedded setup), their labelling first. Without the wait the process
    ended while the model loaded, and left every label pending until the server's next run.
    Returns how many messages still wait for their label (none while labelling is off)."""
    from .jobs import jobs
    from .services.sentiment import PENDING

    jobs.wait_idle(timeout=300)
    if not current_app.config["SENTIMENT_ENABLED"]:
        return 0
    db.session.remove()  # a fresh read: the labels were written by the job thread's session
    return db.session.scalar(select(func.count()).select_from(Message).where(PENDING))


@click.command("label-sentiment")
@with_appcontext
def label_sentiment():
    """Label every message still waiting for sentiment."""
    from .services.sentiment import label_pending

    _model_or_fail()
    click.echo(f"labelled {label_pending()} messages")


def _model_or_fail() -> None:
    """The sentiment model, loaded before a labelling command: a missing or broken one is the
    command's failure, said in one line (the job path only logs it and leaves labels pending)."""
    from nlp.sentiment import ModelLoadError

    from .services.sentiment import model

    if not current_app.config["SENTIMENT_ENABLED"]:
        return
    try:
        model()
    except ModelLoadError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("backfill-sentiment")
@click.option("--all", "everything", is_flag=True, help="Re-label even messages labelled by the current model.")
@with_appcontext
def backfill_sentiment(everything: bool):
    """Re-label stored messages after the model changed."""
    from .services.sentiment import backfill

    _model_or_fail()
    n = backfill("" if everything else None)
    click.echo(f"re-labelled {n} messages")


# A worker killed with kill -9 leaves RQ's scheduler lock (which moves due delayed jobs, the
# sweep among them, onto the queue) held for about 60 s. The workers left, or the restarted
# one, try to take it over at their maintenance runs, and an idle worker gets to those only
# when its wait for a job times out (worker TTL - 15 s): RQ's defaults, 600 s and 420 s,
# stopped the sweep for up to ten minutes. Both are cheap: a few Redis commands.
WORKER_TTL = 30
WORKER_MAINTENANCE_SECONDS = 15


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@with_appcontext
def worker(burst: bool):
    """Run an RQ worker for background jobs (production: HELPDESK_JOBS=rq): sentiment,
    outbound sends, email polling, surveys, and the sweep every 30 s.

    A SimpleWorker (no fork per job) keeps the sentiment model loaded between jobs;
    jobs are idempotent, so a worker killed mid-job loses nothing but time.
    """
    from rq import SimpleWorker

    from .jobs import jobs
    from .tasks import requeue_pending_sends, schedule_sweep

    if current_app.config["JOBS"] != "rq":
        raise click.UsageError("set HELPDESK_JOBS=rq and HELPDESK_REDIS_URL to run separate workers")
    jobs.enqueue("label_sentiment")  # pick up what a dead worker left pending
    requeue_pending_sends()
    jobs.enqueue("poll_email")  # now, not at the first sweep
    schedule_sweep()  # the one chain of sweeps, if no other worker has scheduled it
    # The RQ scheduler is a forked child: it must not inherit our database connection,
    # or a killed worker's open transaction (and its row locks) would outlive it.
    db.session.remove()
    db.engine.dispose()
    from redis import Redis

    # A connection of the worker's own, with redis-py's default retries and no short timeout:
    # jobs.queue()'s, which jobs enqueue on, gives up after REDIS_TIMEOUT_SECONDS (for requests).
    connection = Redis.from_url(current_app.config["REDIS_URL"])
    SimpleWorker([jobs.queue().name], connection=connection, worker_ttl=WORKER_TTL,
                 maintenance_interval=WORKER_MAINTENANCE_SECONDS).work(burst=burst, with_scheduler=True)


@click.command("poll-social")
@click.option("--inbox", "inbox_id", type=int, default=None, help="Only this inbox id.")
@click.option("--every", type=float, default=0, help="Keep polling every N seconds (0: once).")
@with_appcontext
def poll_social(inbox_id: int | None, every: float):
    """Fetch new mentions for social inboxes without webhooks (settings.poll = true)."""
    import time

    from .tasks import poll_social as poll

    while True:
        stored = poll(inbox_id)
        click.echo(f"stored {stored} new posts")
        if every <= 0:
            if stored and (pending := _finish_jobs()):
                click.echo(f"{pending} messages wait for sentiment")
            return
        db.session.remove()
        time.sleep(every)


@click.command("serve")
@click.option("--host", default=lambda: os.environ.get("HELPDESK_HOST", "127.0.0.1"))
@click.option("--port", default=lambda: int(os.environ.get("HELPDESK_PORT", "5000")), type=int)
@with_appcontext
def serve(host: str, port: int):
    """Serve the desk with live updates (embedded setup: one process, jobs in a thread)."""
    from .demo import DEMO_LOGIN
    from .server import EmbeddedServer

    app = current_app._get_current_object()
    demo_agent = db.session.scalar(select(Agent).where(Agent.email == DEMO_LOGIN[0]))
    db.session.remove()
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    if "HELPDESK_PUBLIC_URL" not in os.environ:  # links we hand out (webhooks, files, surveys) point here
        app.config["PUBLIC_URL"] = url
    click.echo(f"\n  Helpdesk running at {url}/")
    if demo_agent:
        click.echo(f"  Demo login: {DEMO_LOGIN[0]} / {DEMO_LOGIN[1]}\n")
    sys.stdout.flush()
    EmbeddedServer(app, f"{host}:{port}").run()  # returns when stopped (Ctrl-C, SIGTERM)


@click.command("poll-email")
@click.option("--inbox", "inbox_id", type=int, help="Only this inbox id.")
@click.option("--every", type=float, default=0, help="Keep polling every N seconds (0: once).")
@with_appcontext
def poll_email(inbox_id: int | None, every: float):
    """Import new mail from the IMAP mailboxes of email inboxes."""
    import time

    from .services.mailbox import poll_all

    while True:
        reports = poll_all(inbox_id)
        if not reports:
            click.echo("no email inbox with an IMAP host to poll")
        for report in reports:
            click.echo(str(report))
        if every <= 0:
            if any(r.imported for r in reports) and (pending := _finish_jobs()):
                click.echo(f"{pending} messages wait for sentiment")
            if any(r.errors for r in reports):
                sys.exit(1)
            return
        db.session.remove()
        time.sleep(every)


@click.command("smtp-listen")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2525, type=int, show_default=True)
@with_appcontext
def smtp_listen(host: str, port: int):
    """Receive forwarded mail over SMTP for the inboxes whose address matches."""
    import signal
    import threading

    from .services.mailbox import smtp_controller

    controller = smtp_controller(current_app._get_current_object(), host=host, port=port)
    controller.start()
    click.echo(f"SMTP listener on {host}:{port}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
