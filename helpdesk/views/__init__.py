"""Blueprints per audience."""

from __future__ import annotations

import importlib
import unicodedata

from flask import Flask, redirect, url_for
from werkzeug.routing import IntegerConverter

from ..models._types import ROW_ID_MAX

# Each module defines ``bp``; optional ones may not exist yet in a given build.
_BLUEPRINTS = ["auth", "agent", "api", "webhooks", "admin", "supervisor", "widget", "survey", "files"]


def form_error_text(form) -> str:
    """A form's errors as the person reads them: field labels and messages in the UI language
    (WTForms' own messages are translated through Flask-WTF's WTF_I18N_ENABLED)."""
    return " ".join(f"{form[name].label.text}: {msg}" if name in form else str(msg)
                    for name, msgs in form.errors.items() for msg in msgs)


def email_filter(value):
    """A WTForms filter: an address typed with the IME on (ｔａｎａｋａ＠ｅｘａｍｐｌｅ．ｊｐ) is the
    ASCII one."""
    return unicodedata.normalize("NFKC", value).strip() if isinstance(value, str) else value


class RowIdConverter(IntegerConverter):
    """``<int:...>`` up to the largest row id a database holds: /agent/tickets/<20 digits> is a
    404, where the number reached SQLite or PostgreSQL and failed there (a 500)."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", ROW_ID_MAX)
        super().__init__(url_map, *args, **kwargs)


def register_blueprints(app: Flask) -> None:
    app.url_map.converters["int"] = RowIdConverter  # before the routes that use it
    for name in _BLUEPRINTS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        app.register_blueprint(module.bp)

    @app.get("/")
    def index():
        return redirect(url_for("agent.inbox"))

    @app.get("/healthz")
    def healthz():
        from .health import health

        return health()
