"""Behind nginx (docs/nginx.conf): with HELPDESK_PROXY_FIX the desk takes the client's address and
scheme from X-Forwarded-For and X-Forwarded-Proto (werkzeug's ProxyFix), so the login throttle is
per client and cookies are Secure over HTTPS; without it those headers count for nothing."""

from __future__ import annotations

import logging

import pytest

from tests import factories as f
from tests.conftest import csrf_token

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)

BEHIND_NGINX = {"SENTIMENT_ENABLED": False, "RATELIMIT_ENABLED": True, "PROXY_FIX": 1}


def attempt(client, email: str, password: str, **headers):
    token = csrf_token(client)
    return client.post("/login?lang=en", data={"email": email, "password": password, "csrf_token": token},
                       headers=headers)


@pytest.mark.config(**BEHIND_NGINX)
def test_login_throttle_is_per_client_behind_the_proxy(app, client):
    f.agent(email="victim@example.com")
    office = {"X-Forwarded-For": "203.0.113.5"}
    codes = [attempt(client, "victim@example.com", f"guess {i}", **office).status_code for i in range(10)]
    assert codes == [401] * 10
    assert attempt(client, "victim@example.com", "guess 11", **office).status_code == 429
    # Another client behind the same nginx is not locked out with the first.
    other = attempt(client, "victim@example.com", "typo", **{"X-Forwarded-For": "198.51.100.7"})
    assert other.status_code == 401


@pytest.mark.config(SENTIMENT_ENABLED=False, RATELIMIT_ENABLED=True)
def test_forwarded_for_counts_for_nothing_without_proxy_fix(app, client):
    """Without a proxy in front, a client could name any address: it must not get more tries."""
    f.agent(email="victim@example.com")
    for i in range(10):
        attempt(client, "victim@example.com", f"guess {i}", **{"X-Forwarded-For": f"192.0.2.{i}"})
    assert attempt(client, "victim@example.com", "guess 11", **{"X-Forwarded-For": "192.0.2.99"}).status_code == 429


@pytest.mark.config(**BEHIND_NGINX)
def test_successful_logins_do_not_count_towards_the_throttle(app):
    """A whole office behind one address logs in every morning."""
    agent = f.agent()
    office = {"X-Forwarded-For": "203.0.113.5"}
    codes = [attempt(app.test_client(), agent.email, f.PASSWORD, **office).status_code for _ in range(15)]
    assert codes == [302] * 15
    # Failed ones still do.
    client = app.test_client()
    assert [attempt(client, agent.email, "wrong one", **office).status_code for _ in range(11)] == [401] * 10 + [429]


@pytest.mark.config(**BEHIND_NGINX)
def test_cookies_are_secure_when_nginx_received_https(app, client):
    """HELPDESK_PUBLIC_URL left at its http default: the request's own scheme, from nginx, decides."""
    agent = f.agent()
    https = {"X-Forwarded-Proto": "https", "Referer": "https://localhost/login"}
    token = csrf_token(client)
    resp = client.post("/login", data={"email": agent.email, "password": f.PASSWORD, "remember": "y",
                                       "csrf_token": token}, headers=https)
    assert resp.status_code == 302
    cookies = {h.split("=", 1)[0]: h.lower() for h in resp.headers.getlist("Set-Cookie")}
    for name in ("session", "remember_token"):
        assert "; secure" in cookies[name] and "httponly" in cookies[name], cookies[name]


@pytest.mark.config(**BEHIND_NGINX)
def test_cookies_over_plain_http_stay_usable(app, client):
    agent = f.agent()
    resp = attempt(client, agent.email, f.PASSWORD)
    assert resp.status_code == 302
    assert all("; secure" not in h.lower() for h in resp.headers.getlist("Set-Cookie"))


@pytest.mark.config(SENTIMENT_ENABLED=False, RATELIMIT_ENABLED=True)
def test_forwarded_proto_counts_for_nothing_without_proxy_fix(app, client):
    agent = f.agent()
    resp = attempt(client, agent.email, f.PASSWORD, **{"X-Forwarded-Proto": "https"})
    assert resp.status_code == 302
    assert all("; secure" not in h.lower() for h in resp.headers.getlist("Set-Cookie"))


@pytest.mark.config(SENTIMENT_ENABLED=False, PUBLIC_URL="https://desk.example.jp")
def test_login_over_plain_http_to_an_https_desk_says_why(app, client, caplog):
    """The session cookie is Secure, so a browser on http:// drops it: the form's CSRF token then
    has no session to match, and the person is told to use the HTTPS address."""
    agent = f.agent()
    token = csrf_token(client, "/login?lang=en")
    client.delete_cookie("session", domain="localhost")  # what the browser did with the Secure cookie
    with caplog.at_level(logging.WARNING, logger="helpdesk"):
        resp = client.post("/login?lang=en", data={"email": agent.email, "password": f.PASSWORD,
                                                   "csrf_token": token})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert "only be used over HTTPS" in html and "https://desk.example.jp/login" in html
    assert 'name="password"' in html  # the login form again, with a fresh token
    assert "CSRF session token is missing" in caplog.text and "plain HTTP" in caplog.text


@pytest.mark.config(SENTIMENT_ENABLED=False)
def test_expired_login_form_says_so(app, client, caplog):
    agent = f.agent()
    with caplog.at_level(logging.WARNING, logger="helpdesk"):
        resp = client.post("/login?lang=en", data={"email": agent.email, "password": f.PASSWORD,
                                                   "csrf_token": "stale"})
    assert resp.status_code == 400
    assert "The login form had expired" in resp.get_data(as_text=True)
    assert "refused by the CSRF check" in caplog.text


@pytest.mark.config(**BEHIND_NGINX)
def test_https_login_whose_referer_is_missing_says_why(app, client, caplog):
    """Over HTTPS the CSRF check also wants the Referer of this site (a browser sends it)."""
    agent = f.agent()
    token = csrf_token(client)
    with caplog.at_level(logging.WARNING, logger="helpdesk"):
        resp = client.post("/login?lang=en", data={"email": agent.email, "password": f.PASSWORD, "csrf_token": token},
                           headers={"X-Forwarded-Proto": "https"})
    assert resp.status_code == 400
    assert "did not confirm that the form came from this site" in resp.get_data(as_text=True)
    assert "The referrer header is missing" in caplog.text
