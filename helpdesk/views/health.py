"""Health check: the database answers, and Redis too when configured."""

from __future__ import annotations

import logging

from flask import current_app, jsonify
from sqlalchemy import text

from ..extensions import db

log = logging.getLogger(__name__)


def health():
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        log.warning("health: database unreachable: %s", exc)
        checks["database"] = "down"
        db.session.rollback()
    if current_app.config["REDIS_URL"]:
        from redis import Redis
        from redis.exceptions import RedisError

        try:
            Redis.from_url(current_app.config["REDIS_URL"], socket_timeout=2).ping()
            checks["redis"] = "ok"
        except RedisError as exc:
            log.warning("health: redis unreachable: %s", exc)
            checks["redis"] = "down"
    ok = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if ok else "degraded", checks=checks), 200 if ok else 503
