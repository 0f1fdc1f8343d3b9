"""Fixtures for the chat widget: a chat inbox, an agent, visitors as socket clients."""

from __future__ import annotations

import pytest

from helpdesk.extensions import socketio
from helpdesk.models import Role
from tests import factories as f
from tests.conftest import login
from tests.widget.helpers import NS, SECRET


@pytest.fixture
def chat_inbox(app):
    return f.inbox(kind="chat", name="サイトチャット", secrets={"identity_secret": SECRET})


@pytest.fixture
def agent(app, chat_inbox):
    return f.agent(inboxes=[chat_inbox], name="佐藤 花子", role=Role.agent)


class Sockets:
    """Socket clients opened by a test, all disconnected at the end so no room outlives it."""

    def __init__(self, app):
        self.app = app
        self.clients = []

    def visitor(self, inbox_, **auth):
        c = socketio.test_client(self.app, namespace=NS, auth={"inbox": inbox_.key, **auth})
        self.clients.append((c, NS))
        return c

    def agent(self, agent):
        http = self.app.test_client()
        login(http, agent.email)
        c = socketio.test_client(self.app, namespace="/agent", flask_test_client=http)
        assert c.is_connected("/agent")
        self.clients.append((c, "/agent"))
        return c

    def close(self):
        for c, ns in self.clients:
            if c.is_connected(ns):
                c.disconnect(namespace=ns)


@pytest.fixture
def sockets(app):
    s = Sockets(app)
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _no_sentiment(app):
    """Widget tests do not need labels; loading the model would cost seconds per test."""
    app.config["SENTIMENT_ENABLED"] = False
