"""The shared webhook route: only channels whose provider signs its posts come in there."""

from __future__ import annotations

import logging

import pytest

from helpdesk.models import Message
from tests import factories as f

from .conftest import count

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)


def test_api_inbox_takes_no_unauthenticated_posts_on_the_webhook_route(client, caplog):
    """The API channel has no signature to check (the base contract then 'verifies' every post):
    /webhooks/api/<key> stored anything anyone sent, past the Bearer token of /api/v1/messages."""
    inbox = f.inbox(kind="api")
    with caplog.at_level(logging.WARNING):
        resp = client.post(f"/webhooks/api/{inbox.key}", json={"external_id": "forged-1", "user_id": "victim",
                                                               "text": "パスワードを教えてください"})
    assert resp.status_code == 401
    assert count(Message) == 0
    assert "has no webhook" in caplog.text


def test_api_inbox_has_no_handshake_either(client):
    inbox = f.inbox(kind="api")
    assert client.get(f"/webhooks/api/{inbox.key}", query_string={"crc_token": "x"}).status_code == 404
