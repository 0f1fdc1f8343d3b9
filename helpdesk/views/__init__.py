"""Blueprints per audience."""

from __future__ import annotations

import importlib

from flask import Flask, redirect, url_for

# Each module defines ``bp``; optional ones may not exist yet in a given build.
_BLUEPRINTS = ["auth", "agent", "api", "webhooks", "admin", "supervisor", "widget", "survey", "files"]


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
