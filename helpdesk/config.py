"""Defaults for the embedded setup; every key can be overridden by a
``HELPDESK_<KEY>`` environment variable (parsed as JSON where possible)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

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
    # Behind a reverse proxy (docs/nginx.conf): how many proxies set X-Forwarded-For and
    # X-Forwarded-Proto (1 for one nginx), or a JSON object of werkzeug ProxyFix's counts
    # ({"x_for": 2, "x_proto": 1}). 0: the headers are ignored, since anyone could send them.
    PROXY_FIX = 0
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
    # HELPDESK_JOBS=rq: a job that raises is run again after each of these waits (seconds), then
    # kept in RQ's failed job registry (``rq info``; tests/production/test_job_retry.py).
    JOB_RETRY_SECONDS = [10, 60, 300]
    SEND_BACKOFF_SECONDS = 2.0
    # HELPDESK_JOBS=rq: how often the sweep runs (tasks.sweep): it polls the email inboxes that
    # are due, and queues again the work whose job was lost. An inbox is polled at most this often.
    SWEEP_SECONDS = 30
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
    # How long a web process waits on Redis (rate limits, live events, queueing a job) before it
    # goes on without: a Redis that hangs (paused, a network partition) must not hang every request
    # that stores a message. Workers' own waits for jobs are RQ's (longer).
    REDIS_TIMEOUT_SECONDS = 1.0
    # PostgreSQL: how long opening a connection may take. Unreachable without a refusal (a server
    # that hangs, a dropped route), libpq waits for ever, and so did every request and /healthz.
    DATABASE_CONNECT_TIMEOUT = 5
    RATELIMIT_ENABLED = True
    PUBLIC_URL = "http://127.0.0.1:5000"


JOB_MODES = ("thread", "rq", "inline")
_PROXY_FIX_KEYS = {"x_for", "x_proto", "x_host", "x_port", "x_prefix"}


class ConfigError(click.ClickException):
    """A setting the desk cannot start with. A ClickException, so that ``flask ...`` commands
    print the message alone (no traceback); under gunicorn the worker does not boot."""


def load(app, overrides: dict | None = None) -> None:
    """Defaults, then HELPDESK_* from the environment, then explicit overrides (tests)."""
    app.config.from_object(Defaults)
    app.config.from_prefixed_env("HELPDESK")
    if overrides:
        app.config.update(overrides)
    cfg = app.config
    if cfg["JOBS"] not in JOB_MODES:
        raise ConfigError(f"HELPDESK_JOBS must be one of {', '.join(JOB_MODES)}, not {cfg['JOBS']!r}")
    if cfg["JOBS"] == "rq" and not cfg["REDIS_URL"]:
        raise ConfigError("HELPDESK_JOBS=rq needs HELPDESK_REDIS_URL (the queue the workers read)")
    waits = cfg["JOB_RETRY_SECONDS"]
    if not (isinstance(waits, list) and all(isinstance(w, int) and not isinstance(w, bool) and w >= 0
                                            for w in waits)):
        raise ConfigError(f"HELPDESK_JOB_RETRY_SECONDS must be a JSON list of seconds, e.g. [10, 60, 300], "
                          f"not {waits!r}")
    sweep = cfg["SWEEP_SECONDS"]
    if not (isinstance(sweep, int) and not isinstance(sweep, bool) and sweep >= 1):
        raise ConfigError(f"HELPDESK_SWEEP_SECONDS must be a whole number of seconds, at least 1, not {sweep!r}")
    cfg["PROXY_FIX"] = _proxy_fix_options(cfg["PROXY_FIX"])
    cfg["SQLALCHEMY_DATABASE_URI"] = _checked_db_url(cfg["DATABASE_URL"])
    _check_redis_url(cfg["REDIS_URL"])
    _check_public_url(cfg.get("PUBLIC_URL"))
    options: dict = {}
    if not cfg["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # A server connection can die between requests; a file database cannot.
        options["pool_pre_ping"] = True
    if cfg["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        # A transaction left open by a crashed process releases its row locks after a minute.
        options["connect_args"] = {"options": "-c idle_in_transaction_session_timeout=60000",
                                   "connect_timeout": max(1, int(cfg["DATABASE_CONNECT_TIMEOUT"]))}
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
    if cfg["RATELIMIT_STORAGE_URI"].startswith(("redis://", "rediss://", "unix://")):
        cfg.setdefault("RATELIMIT_STORAGE_OPTIONS", redis_timeouts(cfg))
    _check_secret_key(app)


def redis_timeouts(cfg) -> dict:
    """redis-py's options for a client that must not wait on Redis for long (REDIS_TIMEOUT_SECONDS)."""
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.retry import Retry

    seconds = float(cfg["REDIS_TIMEOUT_SECONDS"])
    # One retry, for a connection that died (Redis restarted): a timeout is not tried again.
    return {"socket_timeout": seconds, "socket_connect_timeout": seconds,
            "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))}


def _check_secret_key(app) -> None:
    """The key signs sessions and the links we hand out (files, surveys, the widget's visitors):
    with the development key, which is public, anyone could forge them. A desk configured for
    production does not start with it; the embedded desk on this machine warns."""
    cfg = app.config
    how = ("set HELPDESK_SECRET_KEY to a long random value, "
           "e.g. python -c 'import secrets; print(secrets.token_hex(32))'")
    if not cfg.get("SECRET_KEY"):
        raise ConfigError(f"HELPDESK_SECRET_KEY is empty: {how}")
    if cfg["SECRET_KEY"] != Defaults.SECRET_KEY or app.debug or app.testing:
        return
    if _production(cfg):
        raise ConfigError("HELPDESK_SECRET_KEY is not set, and the development key would let anyone forge "
                          f"sessions and signed links: {how}")
    app.logger.warning("HELPDESK_SECRET_KEY is not set; using the development key")


def _production(cfg) -> bool:
    """The README's production layout (Redis, RQ workers), or a desk reached over HTTPS or through a proxy."""
    return bool(cfg["REDIS_URL"] or cfg["JOBS"] == "rq" or cfg["PROXY_FIX"]
                or str(cfg.get("PUBLIC_URL", "")).lower().startswith("https://"))


def _proxy_fix_options(value) -> dict[str, int]:
    """HELPDESK_PROXY_FIX as werkzeug ProxyFix's keyword arguments ({} when off)."""
    if value is True:
        value = 1
    if value in (None, False, "", 0):
        return {}
    if isinstance(value, int) and value > 0:
        # Only what docs/nginx.conf sets: it passes a client's own X-Forwarded-Host through.
        return {"x_for": value, "x_proto": value}
    if (isinstance(value, dict) and value and set(value) <= _PROXY_FIX_KEYS
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value.values())):
        return dict(value)
    raise ConfigError("HELPDESK_PROXY_FIX must be the number of proxies in front (1 for one nginx) or a JSON "
                      f"object of counts for {', '.join(sorted(_PROXY_FIX_KEYS))}, not {value!r}")


def _masked(url: str) -> str:
    """A URL as it may be printed: without the password it may carry."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def _checked_db_url(value) -> str:
    """HELPDESK_DATABASE_URL as SQLAlchemy's URL, or one line saying what is wrong with it (not a
    traceback from the engine, nor Flask's "No such command" when wsgi.py fails to import)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    how = "use sqlite:////path/to/helpdesk.db or postgresql://user:password@host:5432/dbname"
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"HELPDESK_DATABASE_URL is empty: {how}")
    url = _normalise_db_url(value.strip())
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend in ("sqlite", "postgresql"):
            parsed.get_dialect().import_dbapi()  # the driver named (or implied) is installed
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"HELPDESK_DATABASE_URL {_masked(value)!r} is not a database URL ({exc}): {how}") from None
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"HELPDESK_DATABASE_URL {_masked(value)!r} names a database driver that is not "
                          f"installed ({exc}): {how}") from None
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"HELPDESK_DATABASE_URL {_masked(value)!r}: the desk runs on SQLite or PostgreSQL, "
                          f"not {backend}: {how}")
    return url


def _check_redis_url(value) -> None:
    """HELPDESK_REDIS_URL, empty or a URL redis-py (and the rate limiter's storage) accepts."""
    if value in ("", None):
        return
    from redis import ConnectionPool

    how = "use redis://host:6379/0 (rediss:// with TLS, unix:///path/to/redis.sock), or leave it empty"
    try:
        if not isinstance(value, str) or not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("the scheme must be redis://, rediss:// or unix://")
        ConnectionPool.from_url(value)
    except ValueError as exc:
        raise ConfigError(f"HELPDESK_REDIS_URL {_masked(str(value))!r} is not a Redis URL ({exc}): {how}") from None


def _check_public_url(value) -> None:
    """HELPDESK_PUBLIC_URL is the start of every link the desk hands out (files and surveys sent to
    customers, the webhook addresses given to providers): without its scheme or host, each of
    those would be a link to nowhere, noticed only when a customer says so."""
    from urllib.parse import urlsplit

    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"HELPDESK_PUBLIC_URL must be the desk's address as customers reach it, e.g. "
                          f"https://desk.example.jp, not {value!r}")


def _normalise_db_url(url: str) -> str:
    # Users paste postgres:// or postgresql:// URLs; we speak psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in {"1", "true", "yes"}
