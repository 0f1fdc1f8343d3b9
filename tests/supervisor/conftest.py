"""Fixtures for the supervisor tests: a logged-in supervisor client and report filters."""

from __future__ import annotations

import pytest

from channels.testing import SENT
from helpdesk.models import Role
from helpdesk.services.reports import Filters
from tests import factories as f
from tests.conftest import login


@pytest.fixture(autouse=True)
def _clear_sent():
    """What the test channel sent (survey questions) belongs to one test."""
    SENT.clear()
    yield
    SENT.clear()


@pytest.fixture
def supervisor(app):
    return f.agent(role=Role.supervisor, email="boss@example.com", name="上長")


@pytest.fixture
def sv_client(client, supervisor):
    assert login(client, supervisor.email).status_code == 302
    return client


@pytest.fixture
def filters(app):
    """filters(from, to, **more) -> Filters, parsed the way the API parses them."""
    def make(first: str, last: str, **more) -> Filters:
        with app.test_request_context():
            return Filters.from_args({"from": first, "to": last, **{k: str(v) for k, v in more.items()}})
    return make


@pytest.fixture
def request_ctx(app):
    """Reports translate their labels, which needs a request (the locale comes from it)."""
    with app.test_request_context():
        yield
