"""Defaults for the embedded setup; every key can be overridden by a
``HELPDESK_<KEY>`` environment variable (parsed as JSON where possible)."""

from __future__ import annotations

import os
from pathlib import Path

from .sqlite_writes import sqlite_file

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"


class Defaults:
    SECRET_KEY = "dev-only-change-me"
    # Embedded default: one SQLite file in WAL mode beside the code.
    DATABASE_URL = f"sqlite:///{INSTANCE / 'helpdesk.db'}"
    # Empty means in-process fan-out and jobs; set to redis://... for production.
    REDIS_URL = ""
    # Names on Redis, so several desks (or test runs) can share one server.
    SOCKETIO_CHANNEL = "helpdesk-socketio"
    JOBS_QUEUE = "helpdesk"
    # "thread": in-process worker thread (embedded); "rq": Redis queue workers;
    # "inline": run right after commit in the caller (tests).
    JOBS = "thread"
    SENTIMENT_MODEL = str(ROOT / "nlp" / "models" / "ja-sentiment")
    # Messages labelled per write transaction. On SQLite a batch holds the writer lock while
    # it writes, and in the embedded desk it holds the GIL in long stretches: with 16 instead
    # of 32, posts made while labelling had a p99 a third lower, for the same CPU
    # (docs/performance.md).
    SENTIMENT_BATCH = 16
    # Off switch for environments that only want the desk (labels stay pending).
    SENTIMENT_ENABLED = True
    UPLOAD_DIR = str(INSTANCE / "uploads")
    MAX_MESSAGE_CHARS = 20_000
    # Each file an agent attaches to a reply (services/replies.py caps the count and the total).
    MAX_REPLY_ATTACHMENT_MB = 10
    MAX_CONTENT_LENGTH = 32 * 1024 * 1024
    PAGE_SIZE = 25
    BABEL_DEFAULT_LOCALE = "ja"
    BABEL_DEFAULT_TIMEZONE = "Asia/Tokyo"
    LANGUAGES = ["ja", "en"]
    SEND_MAX_ATTEMPTS = 5
    SEND_BACKOFF_SECONDS = 2.0
    # Escalation thresholds (see services/escalation.py).
    ESCALATE_SCORE = -0.6
    ESCALATE_ANGER_PROB = 0.5
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    WTF_CSRF_TIME_LIMIT = None
    # WTForms' own validation messages in the UI language (Flask-Babel's locale; WTForms ships ja).
    WTF_I18N_ENABLED = True
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_ENABLED = True
    PUBLIC_URL = "http://127.0.0.1:5000"


def load(app, overrides: dict | None = None) -> None:
    """Defaults, then HELPDESK_* from the environment, then explicit overrides (tests)."""
    app.config.from_object(Defaults)
    app.config.from_prefixed_env("HELPDESK")
    if overrides:
        app.config.update(overrides)
    cfg = app.config
    cfg["SQLALCHEMY_DATABASE_URI"] = _normalise_db_url(cfg["DATABASE_URL"])
    options: dict = {}
    if not cfg["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # A server connection can die between requests; a file database cannot.
        options["pool_pre_ping"] = True
    if cfg["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        # A transaction left open by a crashed process releases its row locks after a minute.
        options["connect_args"] = {"options": "-c idle_in_transaction_session_timeout=60000"}
    if sqlite_file(cfg["SQLALCHEMY_DATABASE_URI"]):
        # The connection given back last is taken first: after a write, it is the one whose
        # page cache SQLite kept (sqlite_writes.write_now). And a thread never waits for a
        # connection, which here is an open file and not a server's slot: write_now takes
        # the writer lock before one, while other threads may hold one and wait for the lock.
        options.update(pool_use_lifo=True, max_overflow=-1)
    cfg.setdefault("SQLALCHEMY_ENGINE_OPTIONS", options)
    if str(cfg.get("PUBLIC_URL", "")).lower().startswith("https://"):
        # Served over TLS: session and remember-me cookies must never travel over plain HTTP.
        cfg["SESSION_COOKIE_SECURE"] = True
        cfg["REMEMBER_COOKIE_SECURE"] = True
    if cfg["REDIS_URL"] and cfg["RATELIMIT_STORAGE_URI"] == "memory://":
        cfg["RATELIMIT_STORAGE_URI"] = cfg["REDIS_URL"]
    if cfg["SECRET_KEY"] == Defaults.SECRET_KEY and not (app.debug or app.testing):
        app.logger.warning("HELPDESK_SECRET_KEY is not set; using the development key")


def _normalise_db_url(url: str) -> str:
    # Users paste postgres:// or postgresql:// URLs; we speak psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in {"1", "true", "yes"}
