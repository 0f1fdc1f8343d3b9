"""Blueprints per audience."""

from __future__ import annotations

import importlib

from flask import Flask, redirect, url_for

# Each module defines ``bp``; optional ones may not exist yet in a given build.
_BLUEPRINTS = ["auth", "agent", "api", "webhooks", "admin", "supervisor", "widget", "survey", "files"]


def form_error_text(form) -> str:
    """A form's errors as the person reads them: field labels and messages in the UI language
    (WTForms' own messages are translated through Flask-WTF's WTF_I18N_ENABLED)."""
    return " ".join(f"{form[name].label.text}: {msg}" if name in form else str(msg)
                    for name, msgs in form.errors.items() for msg in msgs)


def register_blueprints(app: Flask) -> None:
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
