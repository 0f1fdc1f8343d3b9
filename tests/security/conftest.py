"""A small world for the security tests: two inboxes, a customer ticket in one of them,
and one person per role, with the agent a member of the *other* inbox only."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from helpdesk.extensions import db
from helpdesk.models import Role
from helpdesk.services.ingest import ingest
from tests import factories as f
from tests.conftest import csrf_token, login, make_app

ROLES = ("anonymous", "agent", "supervisor", "admin")


@dataclass
class World:
    app: object
    inbox_a: object  # holds the customer's ticket
    inbox_b: object  # the plain agent's inbox
    ticket_id: int
    message_id: int
    contact_id: int
    emails: dict

    def client(self, role: str):
        """A logged-in (or anonymous) test client plus a CSRF token valid for its session."""
        c = self.app.test_client()
        token = csrf_token(c, "/login")
        if role != "anonymous":
            resp = login(c, self.emails[role])
            assert resp.status_code == 302, f"{role} could not log in"
        return c, token


def build_world(app) -> World:
    inbox_a = f.inbox(kind="test", name="A")
    inbox_b = f.inbox(kind="test", name="B")
    emails = {}
    for role in ("agent", "supervisor", "admin"):
        a = f.agent(role=Role(role), inboxes=[inbox_b] if role == "agent" else [], email=f"{role}@sec.example")
        emails[role] = a.email
    result = ingest(inbox_a, f.inbound(text="注文した商品が届きません"))
    msg = result.message
    return World(app, inbox_a, inbox_b, msg.ticket_id, msg.id, msg.ticket.contact_id, emails)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Module-scoped: the role matrix makes ~150 requests against one unchanging world."""
    tmp = tmp_path_factory.mktemp("secworld")
    app = make_app(f"sqlite:///{tmp / 'sec.db'}", tmp, SENTIMENT_ENABLED=False)
    with app.app_context():
        db.create_all()
        yield build_world(app)
        db.session.remove()
        db.engine.dispose()


def is_login_redirect(resp) -> bool:
    return resp.status_code in (301, 302, 303) and re.search(r"/login(\?|$)", resp.headers.get("Location", "")) is not None
