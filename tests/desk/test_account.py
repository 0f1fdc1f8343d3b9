"""An agent's own account page: name, UI language, password (the current one first)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import AuditLog
from tests import factories as f
from tests.conftest import csrf_token, login


@pytest.fixture
def agent(app, client):
    agent = f.agent(name="田中")
    login(client, agent.email)
    return agent


def save(client, **data):
    form = {"name": "田中", "locale": "ja", "current_password": "", "new_password": "", "confirm": ""}
    form.update(data)
    return client.post("/account", data={**form, "csrf_token": csrf_token(client, "/account")})


def test_name_and_language_change_show_at_once(app, client, agent):
    assert 'href="/account"' in client.get("/agent/").get_data(as_text=True)  # the name in the top bar
    resp = save(client, name="田中 一郎", locale="en")
    assert resp.status_code == 302
    page = client.get("/account").get_data(as_text=True)
    assert "Your account is saved." in page and "田中 一郎" in page and '<html lang="en">' in page
    db.session.expire_all()
    assert (agent.name, agent.locale) == ("田中 一郎", "en")
    (entry,) = db.session.scalars(select(AuditLog)).all()
    assert (entry.action, entry.changes) == ("account.update", {"name": "田中 一郎", "locale": "en"})


def test_password_change_needs_the_current_password(app, client, agent):
    resp = save(client, current_password="wrong password", new_password="another secret 1", confirm="another secret 1")
    assert resp.status_code == 400
    assert "現在のパスワードが違います。" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert agent.check_password(f.PASSWORD)

    mismatch = save(client, current_password=f.PASSWORD, new_password="another secret 1", confirm="another secret 2")
    assert mismatch.status_code == 400 and "新しいパスワードが一致しません。" in mismatch.get_data(as_text=True)

    assert save(client, current_password=f.PASSWORD, new_password="another secret 1",
                confirm="another secret 1").status_code == 302
    db.session.expire_all()
    assert agent.check_password("another secret 1") and not agent.check_password(f.PASSWORD)
    changes = [a.changes for a in db.session.scalars(select(AuditLog))]
    assert changes == [{"password": "changed"}]
    assert login(app.test_client(), agent.email, "another secret 1").status_code == 302


def test_unknown_language_is_refused(app, client, agent):
    assert save(client, locale="xx").status_code == 400
    db.session.expire_all()
    assert agent.locale == "ja"


def test_account_needs_login(app, client):
    assert client.get("/account").headers["Location"].startswith("/login")


def test_new_password_ends_the_other_sessions_not_this_one(app, client, agent):
    other_device = app.test_client()
    login(other_device, agent.email)
    assert other_device.get("/agent/").status_code == 200
    assert save(client, current_password=f.PASSWORD, new_password="another secret 1",
                confirm="another secret 1").status_code == 302
    assert client.get("/agent/").status_code == 200
    assert other_device.get("/agent/").status_code == 302  # to the login page
    assert other_device.get("/api/v1/events/latest").status_code == 401
