"""Fixtures for channel tests: provider stand-ins, signed webhook posts, an agent socket."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from channels import messenger as messenger_mod
from helpdesk.extensions import db, socketio
from tests.conftest import login

from .standins import GraphStandIn, LineStandIn, XStandIn


@pytest.fixture
def line_api():
    with LineStandIn() as s:
        yield s


@pytest.fixture
def line_data():
    with LineStandIn(data_host=True) as s:
        yield s


@pytest.fixture
def graph():
    with GraphStandIn() as s:
        yield s


@pytest.fixture
def xapi():
    with XStandIn() as s:
        yield s


@pytest.fixture(autouse=True)
def _fresh_line_state():
    """Process-local throttles must not leak between tests."""
    from channels import line

    line._spent_tokens.clear()
    line._loading_sent.clear()
    yield


def body_of(payload) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()


def post_hub(client, kind: str, inbox, payload, secret: str = "app-secret"):
    raw = body_of(payload)
    sig = messenger_mod.hub_signature(secret, raw)
    return client.post(f"/webhooks/{kind}/{inbox.key}", data=raw, content_type="application/json",
                       headers={"X-Hub-Signature-256": sig})


def count(model, *where) -> int:
    q = select(func.count()).select_from(model)
    for w in where:
        q = q.where(w)
    return db.session.scalar(q)


def agent_socket(app, client, agent):
    login(client, agent.email)
    sio = socketio.test_client(app, namespace="/agent", flask_test_client=client)
    assert sio.is_connected("/agent")
    return sio


def received(sio, name: str) -> list[dict]:
    return [e["args"][0] for e in sio.get_received("/agent") if e["name"] == name]
