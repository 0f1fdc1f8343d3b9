"""CSRF: every cookie-authenticated POST route refuses a request without a token (400).

Routes are discovered from ``app.url_map``; the exemptions below are the only POST routes
that authenticate by something other than the session cookie, so a forged cross-site
form cannot ride on an agent's login.
"""

from __future__ import annotations

import pytest

from helpdesk.extensions import csrf

# Why each endpoint may take a POST without a CSRF token.
EXEMPT = {
    "api.post_message": "API channel: Bearer token, no cookie",
    "webhooks.receive": "provider webhooks: HMAC signature of the body, no cookie",
    "widget.upload": "widget upload: signed visitor pass in a header, no cookie",
}


def _post_rules(app):
    for rule in app.url_map.iter_rules():
        if "POST" in rule.methods:
            yield rule


def _url(world, rule) -> str:
    from .test_roles import _url as build

    return build(world, rule)


def test_only_the_listed_endpoints_are_csrf_exempt(world):
    """Flask-WTF's own exemption list must match ours: no silent @csrf.exempt."""
    exempt_views = set(csrf._exempt_views)
    exempt_bps = {bp.name for bp in csrf._exempt_blueprints}
    found = set()
    for rule in _post_rules(world.app):
        view = world.app.view_functions[rule.endpoint]
        dotted = f"{view.__module__}.{view.__name__}"
        if dotted in exempt_views or rule.endpoint.split(".")[0] in exempt_bps:
            found.add(rule.endpoint)
    assert found == set(EXEMPT)


@pytest.mark.parametrize("role", ["anonymous", "admin"])
def test_every_form_post_without_token_is_400(world, role):
    client, _ = world.client(role)
    wrong = []
    for rule in _post_rules(world.app):
        if rule.endpoint in EXEMPT:
            continue
        url = _url(world, rule)
        resp = client.post(url, data={"body": "x", "name": "x", "other_id": "1"})
        if resp.status_code != 400:
            wrong.append(f"POST {url} ({rule.endpoint}): {resp.status_code}")
    assert not wrong, "POST without CSRF token not refused:\n" + "\n".join(wrong)


def test_json_post_without_token_header_is_400(world):
    """The desk's fetch() calls send X-CSRFToken; a cross-site JSON POST has none."""
    client, _ = world.client("supervisor")
    assert client.post("/supervisor/alerts/1/ack", json={}).status_code == 400


def test_wrong_token_is_400(world):
    client, token = world.client("admin")
    resp = client.post("/admin/teams", data={"name": "x", "csrf_token": token[:-4] + "AAAA"})
    assert resp.status_code == 400


def test_token_from_another_session_is_400(world):
    _, other_token = world.client("anonymous")
    client, _ = world.client("admin")
    assert client.post("/admin/teams", data={"name": "x", "csrf_token": other_token}).status_code == 400


def test_login_without_token_is_refused(world):
    client = world.app.test_client()
    resp = client.post("/login", data={"email": world.emails["admin"], "password": "correct horse battery"})
    assert resp.status_code == 400
    with client.session_transaction() as session:  # the error page may set a (logged-out) session
        assert "_user_id" not in session
