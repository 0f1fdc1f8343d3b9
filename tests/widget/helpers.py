"""Small helpers for widget socket tests."""

from __future__ import annotations

import uuid

from channels.chat import identity_hash

SECRET = "host-site-identity-secret"
NS = "/widget"


def hello(c) -> dict:
    return c.emit("hello", {}, namespace=NS, callback=True)


def say(c, text, client_id=None, **extra) -> dict:
    return c.emit("message", {"text": text, "client_id": client_id or uuid.uuid4().hex, **extra},
                  namespace=NS, callback=True)


def received(c, name=None) -> list:
    events = c.get_received(NS)
    return [e["args"][0] for e in events if name is None or e["name"] == name]


def signed(identifier: str) -> str:
    return identity_hash(SECRET, identifier)
