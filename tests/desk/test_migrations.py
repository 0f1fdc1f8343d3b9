"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade

from helpdesk.extensions import db
from tests.conftest import PG_URL, make_app, pg_available


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_matches_models(tmp_path, backend):
    if backend == "postgresql":
        if not pg_available():
            pytest.skip("PostgreSQL not reachable")
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path / 'm.db'}"
    app = make_app(url, tmp_path)
    with app.app_context():
        if backend == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade()
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, db.metadata)
        assert diff == []
        if backend == "postgresql":  # leave an empty schema for the tests that follow
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        db.engine.dispose()
