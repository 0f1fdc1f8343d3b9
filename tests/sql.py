"""Watching the SQL a piece of code runs."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable

from sqlalchemy import event

from helpdesk.extensions import db


@contextmanager
def selects_run(note: Callable[[], Any] = lambda: None):
    """The SELECTs run inside the block, as (statement, parameters, note()) with ``note``
    called as each one starts (to record some state at that moment)."""
    seen: list[tuple[str, Any, Any]] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters, note()))

    event.listen(db.engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", on_execute)
