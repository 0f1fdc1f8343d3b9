"""Role matrix: every URL rule in ``app.url_map`` x anonymous / agent (of another inbox) /
supervisor / admin, plus the Socket.IO namespaces and events.

Every (endpoint, method) must be listed in ACCESS below: a new route that nobody
classified fails ``test_every_route_is_classified``, so no view ships unprotected
by accident. Outcomes are checked by class, not exact code: "login" (302 to /login,
or 401 for JSON APIs), "forbidden" (403), "open" (anything else below 500).
"""

from __future__ import annotations

import inspect

import pytest

from helpdesk.extensions import db, socketio
from helpdesk.services.ingest import ingest
from tests import factories as f

from .conftest import ROLES, is_login_redirect

# Sentiment would load the transformer model inline; these tests are about access.
pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)

# Why each public endpoint may be reached without a desk login.
PUBLIC = {
    "auth.login": "the login form itself (rate limited)",
    "healthz": "load-balancer probe; answers only ok/degraded",
    "static": "CSS/JS/images of the desk and widget; nothing private",
    "index": "redirects to /agent/, which asks for login",
    "webhooks.handshake": "provider verification (verify token / CRC checked by the adapter)",
    "webhooks.receive": "provider webhooks, authenticated by the adapter's signature check",
    "widget.loader": "the widget script embedded on customers' sites",
    "widget.frame": "the chat iframe shown to customers (inbox key is public)",
    "survey.answer": "customer survey, authenticated by a signed expiring link token",
    "files.download": "agents' files sent to customers, authenticated by a signed expiring link token",
}

# Audience per endpoint (all methods). "token": API bearer token, a session does not count.
# "agent": any logged-in person; "agent-object": the URL names an object in inbox A, which
# the plain agent (member of inbox B only) must not reach.
ACCESS = {
    **{ep: "public" for ep in PUBLIC},
    "api.post_message": "token",
    # Customers' uploads/downloads: the signed visitor pass header is the credential; a desk
    # session does not count (401 for everyone without the pass).
    "widget.upload": "visitor",
    "widget.attachment": "visitor",
    "auth.logout": "logout",
    "agent.inbox": "agent",
    "auth.account": "agent",
    "auth.availability": "agent",
    "agent.ticket": "agent-object",
    "agent.reply": "agent-object",
    "agent.update": "agent-object",
    # Names no object in the URL; each ticket id in the form is checked against the agent's inboxes.
    "agent.bulk": "agent",
    "agent.merge": "agent-object",
    "agent.update_contact_view": "agent-object",
    # The directory lists only customers with a ticket the agent can see; their page is 403 otherwise.
    "agent.contacts": "agent",
    "agent.contact": "agent-object",
    "agent.merge_ticket": "agent-object",
    "agent.quoted": "agent-object",
    "agent.attachment": "agent-object",
    "api.missed_events": "agent",
    "api.latest_event": "agent",
    "api.ticket": "agent-object",
    "supervisor.dashboard": "supervisor",
    "supervisor.insight": "supervisor",
    "supervisor.report": "supervisor",
    "supervisor.acknowledge": "supervisor",
    "admin.index": "admin",
    "admin.create_inbox": "admin",
    "admin.create_agent": "admin",
    "admin.create_team": "admin",
    "admin.create_canned": "admin",
    "admin.create_token": "admin",
    "admin.edit_inbox": "admin",
    "admin.edit_agent": "admin",
    "admin.edit_canned": "admin",
    "admin.edit_team": "admin",
    "admin.delete_team": "admin",
    "admin.delete_inbox": "admin",
    "admin.delete_canned": "admin",
    "admin.revoke_token": "admin",
    "admin.audit_log": "admin",
}

# What each role must get, per audience.
EXPECT = {
    "public": {"anonymous": "open", "agent": "open", "supervisor": "open", "admin": "open"},
    "token": {"anonymous": "login", "agent": "login", "supervisor": "login", "admin": "login"},
    "visitor": {"anonymous": "login", "agent": "login", "supervisor": "login", "admin": "login"},
    # Logout answers everyone with the login page (anonymous with ?next=).
    "logout": {"anonymous": "login", "agent": "login", "supervisor": "login", "admin": "login"},
    "agent": {"anonymous": "login", "agent": "open", "supervisor": "open", "admin": "open"},
    "agent-object": {"anonymous": "login", "agent": "forbidden", "supervisor": "open", "admin": "open"},
    "supervisor": {"anonymous": "login", "agent": "forbidden", "supervisor": "open", "admin": "open"},
    "admin": {"anonymous": "login", "agent": "forbidden", "supervisor": "forbidden", "admin": "open"},
}

# Socket.IO: namespaces and the events a client may send on each.
NAMESPACES = {
    "/agent": "desk session cookie checked in on_connect",
    "/widget": "customers; the inbox key (plus signed identity when configured) checked in on_connect",
}
AGENT_EVENTS = {"connect", "disconnect", "view_ticket", "leave_ticket", "typing"}


def _values(world) -> dict:
    return {"ticket_id": world.ticket_id, "message_id": world.message_id, "contact_id": world.contact_id,
            "alert_id": 999999, "index": 0, "name": "sentiment", "kind": "test", "key": world.inbox_a.key,
            "token": "not-a-valid-survey-token", "filename": "css/supervisor.css", "inbox_id": world.inbox_a.id,
            # none such: the matrix must not revoke or change the world it runs in
            "agent_id": 999999, "canned_id": 999999, "token_id": 999999, "team_id": 999999}


def _routes(app):
    # Logout last: it would end the session the rest of the matrix runs in.
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.endpoint == "auth.logout"):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def _url(world, rule) -> str:
    values = _values(world)
    missing = set(rule.arguments) - set(values)
    assert not missing, f"{rule.rule}: add test values for {sorted(missing)} in _values()"
    return rule.build({k: values[k] for k in rule.arguments}, append_unknown=False)[1]


def classify(resp, path: str) -> str:
    if resp.status_code >= 500:
        return f"error {resp.status_code}"
    if is_login_redirect(resp):
        return "login"
    if resp.status_code == 401:
        return "login"
    if resp.status_code == 403:
        return "forbidden"
    return "open"


def test_every_route_is_classified(world):
    """A new route fails here until someone decides who may call it."""
    unknown = sorted({rule.endpoint for rule, _ in _routes(world.app)} - set(ACCESS))
    assert not unknown, f"routes with no access rule in tests/security/test_roles.py ACCESS: {unknown}"


def test_public_endpoints_have_reasons(world):
    assert all(reason.strip() for reason in PUBLIC.values())


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(world, role):
    client, token = world.client(role)
    wrong = []
    for rule, method in _routes(world.app):
        audience = ACCESS.get(rule.endpoint)
        if audience is None:
            continue  # reported by test_every_route_is_classified
        url = _url(world, rule)
        if method == "GET":
            resp = client.get(url)
        else:
            # Valid form input where a view validates before its permission check (merge).
            resp = client.open(url, method=method, data={"csrf_token": token, "other_id": str(world.contact_id)})
        got = classify(resp, url)
        resp.close()  # file responses (static, widget.js) hold an open file until closed
        want = EXPECT[audience][role]
        if got != want:
            wrong.append(f"{method} {url} ({rule.endpoint}, {audience}): want {want}, got {got} [{resp.status_code}]")
    assert not wrong, f"{role}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("path", ["/agent/", "/supervisor/", "/admin/", "/agent/tickets/1"])
def test_anonymous_pages_redirect_to_login_with_next(world, path):
    client, _ = world.client("anonymous")
    resp = client.get(path)
    assert is_login_redirect(resp) and "next=" in resp.headers["Location"]


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/events/latest", "/supervisor/api/sentiment"])
def test_anonymous_json_apis_answer_401_json(world, path):
    client, _ = world.client("anonymous")
    resp = client.get(path)
    assert resp.status_code == 401 and resp.is_json


def test_agent_gets_403_json_on_supervisor_api(world):
    client, _ = world.client("agent")
    resp = client.get("/supervisor/api/sentiment")
    assert resp.status_code == 403 and resp.is_json


def test_session_cookie_does_not_authenticate_the_api_channel(world):
    client, _ = world.client("admin")
    resp = client.post("/api/v1/messages", json={"external_id": "x", "user_id": "u", "text": "hi"})
    assert resp.status_code == 401 and resp.headers.get("WWW-Authenticate") == "Bearer"


# ---- deactivated agents -------------------------------------------------------------------------

def test_deactivated_agent_loses_an_existing_session(app, client):
    from tests.conftest import login

    a = f.agent(email="leaver@sec.example")
    assert login(client, a.email).status_code == 302
    assert client.get("/agent/").status_code == 200
    a.active = False
    db.session.commit()
    assert is_login_redirect(client.get("/agent/"))


# ---- Socket.IO ----------------------------------------------------------------------------------

def _namespaces() -> set[str]:
    """Class-based and decorator-based namespaces, as the Socket.IO server dispatches them."""
    return set(socketio.server.namespace_handlers) | set(socketio.server.handlers)


def test_every_socket_namespace_is_classified(world):
    unknown = sorted(_namespaces() - set(NAMESPACES))
    assert not unknown, f"socket namespaces with no rule in NAMESPACES: {unknown}"


def test_every_agent_socket_event_is_classified(world):
    ns = socketio.server.namespace_handlers["/agent"]
    events = {name[3:] for name, _ in inspect.getmembers(ns, callable) if name.startswith("on_")}
    assert events <= AGENT_EVENTS, f"unreviewed /agent events: {sorted(events - AGENT_EVENTS)}"


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
def test_anonymous_socket_connect_is_refused(world, namespace):
    c = socketio.test_client(world.app, namespace=namespace)
    assert not c.is_connected(namespace)


def test_widget_socket_refuses_an_unknown_inbox_key(world):
    c = socketio.test_client(world.app, namespace="/widget", auth={"inbox": "no-such-inbox"})
    assert not c.is_connected("/widget")


def test_widget_socket_refuses_a_non_chat_inbox_key(world):
    c = socketio.test_client(world.app, namespace="/widget", auth={"inbox": world.inbox_a.key})
    assert not c.is_connected("/widget")


def _agent_socket(world, role):
    http, _ = world.client(role)
    c = socketio.test_client(world.app, namespace="/agent", flask_test_client=http)
    assert c.is_connected("/agent")
    return c


@pytest.mark.parametrize("event", ["view_ticket", "typing", "leave_ticket"])
def test_agent_socket_events_refuse_tickets_of_other_inboxes(world, event):
    c = _agent_socket(world, "agent")
    try:
        answer = c.emit(event, {"ticket_id": world.ticket_id}, namespace="/agent", callback=True)
        assert answer["ok"] is False
    finally:
        c.disconnect(namespace="/agent")


def test_supervisor_socket_may_view_any_ticket(world):
    c = _agent_socket(world, "supervisor")
    try:
        assert c.emit("view_ticket", {"ticket_id": world.ticket_id}, namespace="/agent", callback=True)["ok"]
    finally:
        c.disconnect(namespace="/agent")


def test_agent_socket_gets_no_events_of_other_inboxes(world):
    c = _agent_socket(world, "agent")
    try:
        c.get_received("/agent")
        ingest(world.inbox_a, f.inbound(text="別の受信箱のメッセージ"))
        names = [e["name"] for e in c.get_received("/agent")]
        assert "message.created" not in names
    finally:
        c.disconnect(namespace="/agent")


def test_deactivated_agent_socket_events_are_refused(app, client):
    from tests.conftest import login

    inbox = f.inbox(kind="test")
    a = f.agent(inboxes=[inbox], email="leaver2@sec.example")
    t = ingest(inbox, f.inbound()).message.ticket_id
    login(client, a.email)
    c = socketio.test_client(app, namespace="/agent", flask_test_client=client)
    assert c.is_connected("/agent")
    a.active = False
    db.session.commit()
    assert c.emit("view_ticket", {"ticket_id": t}, namespace="/agent", callback=True)["ok"] is False
    c.disconnect(namespace="/agent")
