"""Fixtures in the flaskr style: app, client, runner, plus factories and helpers."""

from __future__ import annotations

import atexit
import contextvars
import os
import re
import threading

import pytest
from flask.testing import FlaskClient
from hypothesis import settings

from helpdesk import create_app
from helpdesk.extensions import db

# Property tests explore new inputs on every local run; CI, which gates what lands, replays
# the same ones (a bug they find locally becomes an explicit example in the parser's tests).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

PG_BASE = os.environ.get("HELPDESK_TEST_PG", "postgresql://postgres@127.0.0.1/test")
# Each test run gets its own database, so parallel runs never drop each other's tables.
PG_URL = PG_BASE.rsplit("/", 1)[0] + f"/hd_test_{os.getpid()}"
_pg_state: dict[str, bool] = {}


def pg_available() -> bool:
    """True when PostgreSQL answers; creates this run's database on first use."""
    if "ok" not in _pg_state:
        _pg_state["ok"] = _create_pg_database()
    return _pg_state["ok"]


def _create_pg_database() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_BASE, connect_timeout=2, autocommit=True) as conn:
            name = PG_URL.rsplit("/", 1)[1]
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception:
        return False
    atexit.register(_drop_pg_database)
    return True


def _drop_pg_database() -> None:
    import psycopg

    try:
        with psycopg.connect(PG_BASE, connect_timeout=2, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{PG_URL.rsplit("/", 1)[1]}" WITH (FORCE)')
    except Exception:
        pass


class DeskClient(FlaskClient):
    """Runs each request in a fresh context, as a real server does: its own app
    context, DB session and ``g`` (the test's own app context stays untouched)."""

    def open(self, *args, **kwargs):
        return contextvars.Context().run(super().open, *args, **kwargs)


def make_app(db_url: str, tmp_path, **overrides):
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": db_url,
        "JOBS": "inline",
        "UPLOAD_DIR": str(tmp_path / "uploads"),
        "RATELIMIT_ENABLED": False,
        "SEND_BACKOFF_SECONDS": 0.01,
        "SERVER_NAME": None,
    }
    config.update(overrides)
    app = create_app(config)
    app.test_client_class = DeskClient
    return app


@pytest.fixture(params=["sqlite"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    if not pg_available():
        pytest.skip("PostgreSQL not reachable")
    return PG_URL


@pytest.fixture
def app(db_url, tmp_path, request):
    overrides = getattr(request, "param", None) or {}
    marker = request.node.get_closest_marker("config")
    if marker:
        overrides = {**overrides, **marker.kwargs}
    app = make_app(db_url, tmp_path, **overrides)
    with app.app_context():
        db.create_all()  # PostgreSQL keeps its tables between tests; they are emptied below
        yield app
        db.session.remove()
        if db_url.startswith("postgresql"):
            _empty_postgres()
        db.engine.dispose()


def _empty_postgres() -> None:
    from sqlalchemy import text

    names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def csrf_token(client, path: str = "/login") -> str:
    html = client.get(path).get_data(as_text=True)
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html)
    assert m, f"no CSRF token on {path}"
    return m.group(1)


def login(client, email: str, password: str = "correct horse battery"):
    token = csrf_token(client, "/login")
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def in_thread(app, fn, *, background: bool = False):
    """Run fn in a thread of its own with an app context (and its own session); returns its
    result. ``background``: the thread is marked as the embedded desk's job lanes are."""
    from helpdesk import sqlite_writes

    out = {}

    def run():
        with app.app_context():
            if background:
                sqlite_writes.mark_background()
            try:
                out["value"] = fn()
            finally:
                db.session.remove()

    t = threading.Thread(target=run)
    t.start()
    t.join(120)
    return out["value"]


def pytest_configure(config):
    config.addinivalue_line("markers", "config(**overrides): app config overrides for this test")


def pytest_sessionfinish(session, exitstatus):
    from tests.live import close_chromium

    close_chromium()
