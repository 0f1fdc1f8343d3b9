"""Test data with ``create(**overrides)``, in the Redash style."""

from __future__ import annotations

import itertools

from channels.base import Inbound
from helpdesk.extensions import db
from helpdesk.models import Agent, ApiToken, Inbox, Role, Team

_n = itertools.count(1)
PASSWORD = "correct horse battery"


def agent(**kw) -> Agent:
    n = next(_n)
    inboxes = kw.pop("inboxes", [])
    password = kw.pop("password", PASSWORD)
    a = Agent(email=kw.pop("email", f"agent{n}@example.com"), name=kw.pop("name", f"担当者{n}"),
              role=kw.pop("role", Role.agent), **kw)
    a.set_password(password)
    db.session.add(a)
    for inbox in inboxes:
        inbox.members.append(a)
    db.session.commit()
    return a


def inbox(**kw) -> Inbox:
    i = Inbox(name=kw.pop("name", f"受信箱{next(_n)}"), kind=kw.pop("kind", "test"), **kw)
    db.session.add(i)
    db.session.commit()
    return i


def team(**kw) -> Team:
    t = Team(name=kw.pop("name", f"チーム{next(_n)}"), **kw)
    db.session.add(t)
    db.session.commit()
    return t


def api_token(inbox: Inbox) -> str:
    row, secret = ApiToken.issue("test", inbox.id)
    db.session.add(row)
    db.session.commit()
    return secret


def inbound(**kw) -> Inbound:
    n = next(_n)
    defaults = dict(external_id=f"ext-{n}", user_id=kw.pop("user_id", "user-1"), text="注文した商品が届きません",
                    display_name="山田 太郎")
    defaults.update(kw)
    return Inbound(**defaults)
