"""Sessions and login: secure cookies behind HTTPS, argon2 hashes, throttling, safe redirects."""

from __future__ import annotations

import uuid

import pytest

from helpdesk.extensions import limiter
from tests import factories as f
from tests.conftest import csrf_token, login

from .conftest import is_login_redirect


def _config(**overrides):
    """Config as create_app loads it, without binding the shared extensions (Socket.IO's
    message queue would stay bound for later tests)."""
    from flask import Flask

    from helpdesk import config

    app = Flask(__name__)
    config.load(app, {"TESTING": True, "DATABASE_URL": "sqlite://", **overrides})
    return app.config


def test_cookies_are_secure_when_served_over_https():
    cfg = _config(PUBLIC_URL="https://desk.example.jp")
    assert cfg["SESSION_COOKIE_SECURE"] is True and cfg["REMEMBER_COOKIE_SECURE"] is True


def test_cookies_work_over_plain_http_for_the_embedded_default():
    cfg = _config(PUBLIC_URL="http://127.0.0.1:5000")
    assert cfg["SESSION_COOKIE_SECURE"] is False


def test_public_url_from_the_environment_sets_secure_cookies(monkeypatch):
    monkeypatch.setenv("HELPDESK_PUBLIC_URL", "https://desk.example.jp")
    assert _config()["SESSION_COOKIE_SECURE"] is True


@pytest.mark.config(PUBLIC_URL="https://desk.example.jp")
def test_login_sets_a_secure_httponly_samesite_session_cookie(app, client):
    a = f.agent()
    token = csrf_token(client)
    resp = client.post("/login", data={"email": a.email, "password": f.PASSWORD, "remember": "y",
                                       "csrf_token": token})
    cookies = {h.split("=", 1)[0]: h for h in resp.headers.getlist("Set-Cookie")}
    for name in ("session", "remember_token"):
        attrs = cookies[name].lower()
        assert "secure" in attrs and "httponly" in attrs, cookies[name]
    assert "samesite=lax" in cookies["session"].lower()


def test_passwords_are_stored_as_argon2id(app):
    a = f.agent(password="a long passphrase 123")
    assert a.password_hash.startswith("$argon2id$") and "a long passphrase" not in a.password_hash


def test_login_failure_does_not_say_which_part_was_wrong(app, client):
    a = f.agent()
    token = csrf_token(client)
    answers = [client.post("/login?lang=en", data={"email": email, "password": "wrong password!",
                                                   "csrf_token": token}) for email in ("nobody@example.com", a.email)]
    assert [r.status_code for r in answers] == [401, 401]
    assert all("Wrong email or password." in r.get_data(as_text=True) for r in answers)


# ---- throttling ---------------------------------------------------------------------------------

@pytest.mark.config(RATELIMIT_ENABLED=True)
def test_eleventh_login_attempt_in_a_minute_gets_429_with_a_clear_page(app, client):
    f.agent(email="victim@example.com")
    token = csrf_token(client)
    codes = [client.post("/login?lang=en", data={"email": "victim@example.com", "password": f"guess {i}",
                                                 "csrf_token": token}).status_code for i in range(10)]
    assert codes == [401] * 10
    resp = client.post("/login?lang=en", data={"email": "victim@example.com", "password": "guess 11",
                                               "csrf_token": token})
    assert resp.status_code == 429
    html = resp.get_data(as_text=True)
    assert "Too many login attempts" in html and 'name="password"' in html
    assert 1 <= int(resp.headers["Retry-After"]) <= 60


@pytest.mark.config(RATELIMIT_ENABLED=True)
def test_throttled_login_refuses_even_the_right_password(app, client):
    a = f.agent()
    token = csrf_token(client)
    for i in range(10):
        client.post("/login", data={"email": a.email, "password": f"guess {i}", "csrf_token": token})
    assert login(client, a.email).status_code == 429
    assert is_login_redirect(client.get("/agent/"))


@pytest.mark.config(RATELIMIT_ENABLED=True)
def test_login_page_views_are_not_throttled(app, client):
    assert all(client.get("/login").status_code == 200 for _ in range(15))


def test_limiter_uses_redis_when_redis_url_is_set():
    cfg = _config(REDIS_URL="redis://127.0.0.1:6379/0")
    assert cfg["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/0"


@pytest.mark.redis
def test_login_throttle_is_shared_through_redis(tmp_path):
    """Two app instances (think: two gunicorn processes) count attempts together on Redis."""
    from tests.conftest import make_app
    from tests.procs import REDIS_URL, redis_available

    if not redis_available():
        pytest.skip("Redis not reachable")
    prefix = f"hd-sec-{uuid.uuid4().hex[:8]}"
    # The storage URI config.load derives from HELPDESK_REDIS_URL (tested above), set directly so
    # Socket.IO stays off the Redis queue in this process.
    cfg = {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": REDIS_URL, "RATELIMIT_KEY_PREFIX": prefix}
    db_url = f"sqlite:///{tmp_path / 'r.db'}"
    first, second = make_app(db_url, tmp_path, **cfg), make_app(db_url, tmp_path, **cfg)
    from helpdesk.extensions import db

    with first.app_context():
        db.create_all()
        assert "redis" in type(limiter.storage).__name__.lower()
    codes = []
    for i in range(11):
        app_ = first if i % 2 else second
        c = app_.test_client()
        with app_.app_context():
            token = csrf_token(c)
            codes.append(c.post("/login", data={"email": "x@example.com", "password": "nope",
                                                "csrf_token": token}).status_code)
    assert codes[:10] == [401] * 10 and codes[10] == 429
    from redis import Redis

    r = Redis.from_url(REDIS_URL)
    for key in r.scan_iter(f"{prefix}*"):
        r.delete(key)


# ---- redirects after login ------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["//evil.example", "/\\evil.example", "https://evil.example/",
                                    "/\t/evil.example", "/\n/evil.example", "/ /evil.example", "javascript:alert(1)"])
def test_login_never_redirects_off_site(app, client, target):
    a = f.agent()
    token = csrf_token(client)
    resp = client.post("/login", query_string={"next": target},
                       data={"email": a.email, "password": f.PASSWORD, "csrf_token": token})
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/agent/"


def test_login_keeps_a_same_site_next(app, client):
    a = f.agent()
    token = csrf_token(client)
    resp = client.post("/login?next=/agent/tickets/5", data={"email": a.email, "password": f.PASSWORD,
                                                              "csrf_token": token})
    assert resp.headers["Location"] == "/agent/tickets/5"
