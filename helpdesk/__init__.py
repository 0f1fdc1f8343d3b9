"""The helpdesk web app. ``create_app`` only wires: no I/O at import or here."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, has_request_context, request, session
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config
from .extensions import babel, csrf, db, limiter, login_manager, migrate, socketio
from .jobs import jobs

__version__ = "0.1.0"


class HelpdeskResponse(Response):
    """Every cookie set in answer to an HTTPS request is Secure (the session, remember-me),
    also where the config does not say so (HELPDESK_PUBLIC_URL left at http): behind nginx the
    request is HTTPS through X-Forwarded-Proto, which HELPDESK_PROXY_FIX makes the desk trust."""

    def set_cookie(self, key: str, *args: Any, **kwargs: Any) -> None:
        if has_request_context() and request.is_secure:
            kwargs["secure"] = True
        super().set_cookie(key, *args, **kwargs)


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    app = Flask(
        __name__,
        static_folder=str(config.ROOT / "static"),
        template_folder=str(config.ROOT / "templates"),
    )
    app.response_class = HelpdeskResponse
    # Before anything logs: the app's logger is "helpdesk", the parent of every module's, and
    # Flask gives it a handler of its own if none is configured when it is first used, so
    # each line of the desk's would be printed twice (by that handler, then by the root's).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config.load(app, overrides)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(config.ROOT / "helpdesk" / "migrations"))
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    csrf.init_app(app)
    babel.init_app(app, locale_selector=_select_locale, timezone_selector=lambda: app.config["BABEL_DEFAULT_TIMEZONE"],
                   default_translation_directories=str(config.ROOT / "helpdesk" / "translations"))
    limiter.init_app(app)
    jobs.init_app(app)
    # Flask-SocketIO keeps options across init_app calls; a Redis client manager left by
    # an earlier app in this process must not leak into this one.
    socketio.server_options.pop("client_manager", None)
    queue: dict[str, Any] = {}
    if app.config["REDIS_URL"]:
        from .realtime.queue import RedisQueue

        # Not Flask-SocketIO's own from message_queue: its emits could hang on a hung Redis.
        queue["client_manager"] = RedisQueue(app.config["REDIS_URL"], channel=app.config["SOCKETIO_CHANNEL"],
                                             timeout=float(app.config["REDIS_TIMEOUT_SECONDS"]))
    socketio.init_app(
        app,
        message_queue=app.config["REDIS_URL"] or None,
        channel=app.config["SOCKETIO_CHANNEL"],
        **queue,
        async_mode="threading",
        cors_allowed_origins=app.config.get("SOCKETIO_CORS_ORIGINS", "*"),
        max_http_buffer_size=2 * 1024 * 1024,
    )
    if app.config["PROXY_FIX"]:
        # Outermost, around Socket.IO's middleware too: the client's address and scheme as nginx
        # passes them (X-Forwarded-For, -Proto), for rate limits, logs and Secure cookies.
        app.wsgi_app = ProxyFix(app.wsgi_app, **app.config["PROXY_FIX"])  # type: ignore[method-assign]

    from . import models  # noqa: F401  (register tables with the metadata)
    from . import sqlite_writes  # noqa: F401  (session hooks)
    from .realtime import agent_ns, events  # noqa: F401  (commit hooks, namespaces)
    from .views import register_blueprints

    register_blueprints(app)
    agent_ns.register(socketio)
    _register_widget_namespace()

    from .cli import register_cli

    register_cli(app)
    _sqlite_pragmas(app)
    app.after_request(_security_headers)
    from .views.errors import register_error_pages

    register_error_pages(app)
    from flask_babel import get_locale

    from .labels import (availability_label, channel_label, channel_labels, language_name, priority_label,
                         priority_labels, role_label, status_label, status_labels)
    from .realtime.events import last_event_id

    app.jinja_env.globals.update(
        channel_name=channel_label,
        channel_names=channel_labels,
        get_locale=get_locale,
        locale_choices=app.config["LANGUAGES"],
        language_name=language_name,
        status_name=status_label,
        priority_name=priority_label,
        status_names=status_labels,
        priority_names=priority_labels,
        role_name=role_label,
        availability_label=availability_label,
        has_endpoint=lambda name: name in app.view_functions,
        last_event_id=last_event_id,
    )
    return app


def _register_widget_namespace() -> None:
    try:
        from .realtime import widget_ns
    except ImportError:
        return
    widget_ns.register(socketio)


def _select_locale() -> str:
    from flask import current_app

    langs = current_app.config["LANGUAGES"]
    wanted = request.args.get("lang") if request else None
    if wanted in langs:
        session["lang"] = wanted
        return wanted
    if session.get("lang") in langs:
        return session["lang"]
    if current_user and current_user.is_authenticated and current_user.locale in langs:
        return current_user.locale
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def _sqlite_pragmas(app: Flask) -> None:
    """SQLite in WAL mode with a busy timeout, so readers never block the writer thread."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _on_sqlite_connect):
        event.listen(Engine, "connect", _on_sqlite_connect)


def _on_sqlite_connect(dbapi_conn, _record) -> None:
    from nlp.text import normalize

    from .sqlite_writes import AUTOCHECKPOINT_PAGES

    if dbapi_conn.__class__.__module__.startswith("sqlite3"):
        # models._types.folded: what PostgreSQL's lower(normalize(x, NFKC)) does there
        dbapi_conn.create_function("hd_fold", 1, lambda text: None if text is None else normalize(text),
                                   deterministic=True)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")  # checkpoints: sqlite_writes.py
        cur.close()


_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)


def _security_headers(resp):
    resp.headers.setdefault("Content-Security-Policy", _CSP)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    return resp
