"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade

from helpdesk.extensions import db
from tests.conftest import PG_URL, make_app, pg_available


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_app(request, tmp_path):
    """An app on an empty database of each backend, for the migrations to build."""
    if request.param == "postgresql":
        if not pg_available():
            pytest.skip("PostgreSQL not reachable")
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path / 'm.db'}"
    app = make_app(url, tmp_path)
    with app.app_context():
        if request.param == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        yield app
        if request.param == "postgresql":  # leave an empty schema for the tests that follow
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        db.engine.dispose()


def test_upgrade_matches_models(empty_app):
    upgrade()
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, db.metadata)
    assert diff == []


def test_upgrading_a_desk_keeps_its_conversations(empty_app):
    """Migrations run on desks full of tickets. On SQLite a batch copy of ``tickets`` (what
    Alembic does to add a reference there) drops the table, and with foreign keys on that
    deletes every message; the upgrades must add what they add in place."""
    upgrade(revision="b9b76e103696")  # the first schema, then a desk in use on it
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO inboxes (id, name, kind, key, settings, secrets, active, created_at) "
                          "VALUES (1, '受信箱', 'test', 'k1', '{}', '{}', true, CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO contacts (id, name, attributes, created_at) "
                          "VALUES (1, '山田', '{}', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO tickets (id, inbox_id, contact_id, channel, subject, status, priority, "
                          "reply_to, created_at, updated_at, last_message_at) VALUES (1, 1, 1, 'test', '件名', "
                          "'open', 'normal', 'u', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO messages (id, ticket_id, inbox_id, direction, body, attachments, meta, "
                          "sent_at, created_at, delivery, delivery_attempts, unsent, search_text) VALUES (1, 1, 1, "
                          "'in', '届きません', '[]', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'none', 0, false, "
                          "'届く')"))
    upgrade()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT body FROM messages")).scalars().all() == ["届きません"]
        assert conn.execute(text("SELECT subject FROM tickets")).scalars().all() == ["件名"]
