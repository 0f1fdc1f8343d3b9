"""Error pages: the desk's layout in Japanese (English on request) with the right status,
never the exception or text from the request; JSON, unchanged, for the API and webhooks."""

from __future__ import annotations

import logging

import pytest

from helpdesk.models import Role
from tests import factories as f
from tests.conftest import login, make_app

# PROPAGATE_EXCEPTIONS off: the test client gets the 500 page a server would send, not the exception.
CONFIG = dict(SENTIMENT_ENABLED=False, PROPAGATE_EXCEPTIONS=False, MAX_CONTENT_LENGTH=64 * 1024)
pytestmark = pytest.mark.config(**CONFIG)

TITLES = {  # status: (Japanese, English)
    400: ("リクエストを処理できませんでした", "The request could not be processed"),
    403: ("このページへのアクセス権限がありません", "You do not have access to this page"),
    404: ("ページが見つかりません", "Page not found"),
    405: ("この操作はここでは利用できません", "This action is not available here"),
    413: ("送信データが大きすぎます", "The data sent is too large"),
    429: ("リクエストが多すぎます", "Too many requests"),
    500: ("エラーが発生しました", "Something went wrong"),
    503: ("一時的に利用できません", "Temporarily unavailable"),
}
LINKS = {  # (Japanese, English)
    "inbox": ('<a href="/agent/">受信箱に戻る</a>', '<a href="/agent/">Back to the inbox</a>'),
    "login": ('<a href="/login">ログイン画面へ</a>', '<a href="/login">Go to the login page</a>'),
}
SECRET = "内部の詳細 <b>顧客の本文</b> secret-detail"


def _fail():
    raise RuntimeError(SECRET)


def _broken_database_client(tmp_path, logged_in_client):
    """A desk whose database cannot be opened, with the logged-in agent's session cookie."""
    broken = make_app(f"sqlite:///{tmp_path / 'no-such-dir' / 'gone.db'}", tmp_path, **CONFIG)
    client = broken.test_client()
    client.set_cookie("session", logged_in_client.get_cookie("session").value)
    return client


# One way to provoke each status, as a person's browser would meet it. ``q`` is the query string.
def _bad_request(app, client, q, tmp_path):
    return client.post("/logout" + q), "login"  # no CSRF token


def _forbidden(app, client, q, tmp_path):
    login(client, f.agent(role=Role.agent).email)
    return client.get("/supervisor/" + q), "inbox"


def _not_found(app, client, q, tmp_path):
    return client.get("/agent/no-such-page" + q), "login"


def _method_not_allowed(app, client, q, tmp_path):
    resp = client.get("/logout" + q)
    assert "POST" in resp.headers["Allow"]
    return resp, "login"


def _too_large(app, client, q, tmp_path):
    return client.post("/login" + q, data={"email": "x" * (128 * 1024)}), "login"


def _too_many(app, client, q, tmp_path):
    for _ in range(30):  # the survey link's limit: 30 a minute
        assert client.get("/survey/not-a-token" + q).status_code == 404
    return client.get("/survey/not-a-token" + q), "login"


def _server_error(app, client, q, tmp_path):
    app.add_url_rule("/agent/fail", "fail", _fail)
    return client.get("/agent/fail" + q), "login"


def _database_down(app, client, q, tmp_path):
    login(client, f.agent().email)
    resp = _broken_database_client(tmp_path, client).get("/agent/" + q)
    assert resp.headers["Retry-After"] == "10"
    return resp, "login"  # nobody can be signed in without the database


PROVOKE = {400: _bad_request, 403: _forbidden, 404: _not_found, 405: _method_not_allowed, 413: _too_large,
           429: _too_many, 500: _server_error, 503: _database_down}
CASES = [pytest.param(status, lang, marks=pytest.mark.config(**CONFIG, RATELIMIT_ENABLED=True))
         if status == 429 else (status, lang) for status in PROVOKE for lang in ("ja", "en")]


@pytest.mark.parametrize("status, lang", CASES)
def test_error_page_in_the_ui_language(app, client, tmp_path, status, lang):
    resp, link = PROVOKE[status](app, client, "?lang=en" if lang == "en" else "", tmp_path)
    html = resp.get_data(as_text=True)
    i = 0 if lang == "ja" else 1
    assert resp.status_code == status
    assert resp.mimetype == "text/html"
    assert f'<html lang="{lang}">' in html
    assert f"<title>{TITLES[status][i]} · " in html and f"<h1>{TITLES[status][i]}</h1>" in html
    assert LINKS[link][i] in html
    assert ("エラーコード: " if lang == "ja" else "Error code: ") + str(status) in html


def test_signed_in_agent_gets_a_link_back_to_the_inbox(app, client):
    login(client, f.agent().email)
    html = client.get("/agent/no-such-page").get_data(as_text=True)
    assert LINKS["inbox"][0] in html and LINKS["login"][0] not in html


def test_server_error_is_logged_and_never_shown(app, client, caplog):
    app.add_url_rule("/agent/fail", "fail", _fail)
    with caplog.at_level(logging.ERROR):
        resp = client.get("/agent/fail")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 500 and "<h1>エラーが発生しました</h1>" in html
    assert "secret-detail" not in html and "顧客の本文" not in html and "RuntimeError" not in html
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert logged and str(logged[0].exc_info[1]) == SECRET and logged[0].name == "helpdesk"


def test_database_down_is_logged_and_the_api_still_gets_json(app, client, tmp_path, caplog):
    login(client, f.agent().email)
    broken = _broken_database_client(tmp_path, client)
    with caplog.at_level(logging.ERROR):
        resp = broken.get("/api/v1/events?since=0")
    assert (resp.status_code, resp.get_json(), resp.headers["Retry-After"]) == (
        503, {"error": "temporarily unavailable"}, "10")
    assert "database unavailable (GET /api/v1/events)" in caplog.text


# ---- programs get JSON, and the API's own bodies are unchanged ---------------------------

def test_api_answers_keep_their_json(app, client):
    assert client.get("/api/v1/events?since=0").get_json() == {"error": "login required"}
    resp = client.post("/api/v1/messages", json={"text": "x"})
    assert (resp.status_code, resp.get_json()) == (401, {"error": "missing bearer token"})
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    login(client, f.agent().email)
    resp = client.get("/api/v1/tickets/999999")
    assert (resp.status_code, resp.get_json()) == (404, {"error": "not found"})
    resp = client.get("/api/v1/events?since=abc")
    assert (resp.status_code, resp.get_json()) == (400, {"error": "since must be an integer"})


@pytest.mark.parametrize("method, path, status, error", [
    ("get", "/api/v1/no-such-thing", 404, "not found"),
    ("get", "/api/v1/messages", 405, "method not allowed"),
    ("post", "/webhooks/line/no-such-inbox", 404, "not found"),
    ("get", "/supervisor/api/no-such-report/x", 404, "not found"),
])
def test_api_paths_get_json_for_werkzeug_errors(client, method, path, status, error):
    resp = getattr(client, method)(path, data=b"{}", content_type="application/json")
    assert (resp.status_code, resp.get_json()) == (status, {"error": error})


def test_a_client_that_asks_for_json_gets_json(client):
    resp = client.get("/agent/no-such-page", headers={"Accept": "application/json"})
    assert (resp.status_code, resp.get_json()) == (404, {"error": "not found"})
    resp = client.post("/logout", headers={"Accept": "application/json"})  # no CSRF token
    assert (resp.status_code, resp.get_json()) == (400, {"error": "bad request"})


def test_server_error_on_an_api_path_is_json(app, client):
    app.add_url_rule("/api/v1/fail", "api_fail", _fail)
    resp = client.get("/api/v1/fail")
    assert (resp.status_code, resp.get_json()) == (500, {"error": "internal error"})
    assert "secret-detail" not in resp.get_data(as_text=True)


@pytest.mark.config(**CONFIG, RATELIMIT_ENABLED=True, API_RATE_LIMIT="1 per minute")
def test_api_rate_limit_is_json(client):
    client.post("/api/v1/messages", json={})
    resp = client.post("/api/v1/messages", json={})
    assert (resp.status_code, resp.get_json()) == (429, {"error": "too many requests"})


# ---- nothing from the request is reflected ------------------------------------------------

MARK = "xss-probe-7f3a"


@pytest.mark.parametrize("method, path", [
    ("get", f"/agent/<script>{MARK}</script>"),
    ("get", f"/agent/%3Cimg%20src%3Dx%20onerror%3D{MARK}%3E?q=<script>{MARK}</script>&lang=<b>{MARK}"),
    ("post", f"/logout?next=<script>{MARK}</script>"),
    ("get", f"/logout?x=\"><script>{MARK}</script>"),
    ("get", f"/api/v1/<script>{MARK}</script>"),
])
def test_request_text_is_never_reflected(client, method, path):
    resp = getattr(client, method)(path)
    body = resp.get_data(as_text=True)
    assert resp.status_code in (400, 404, 405)
    assert MARK not in body and "<script>" not in body



# ---- every other HTTP status gets the same treatment -------------------------------------

def _raise(exc):
    raise exc()


def test_any_other_http_error_gets_our_page_or_json(app, client):
    from werkzeug.exceptions import NotImplemented as Unimplemented
    from werkzeug.exceptions import RequestedRangeNotSatisfiable, UnsupportedMediaType

    app.add_url_rule("/files/range", "range", lambda: _raise(RequestedRangeNotSatisfiable))
    app.add_url_rule("/api/v1/strict", "strict", lambda: _raise(UnsupportedMediaType))
    app.add_url_rule("/agent/later", "later", lambda: _raise(Unimplemented))
    resp = client.get("/files/range")
    html = resp.get_data(as_text=True)
    assert (resp.status_code, resp.mimetype) == (416, "text/html")
    assert '<html lang="ja">' in html and "<h1>リクエストを完了できませんでした</h1>" in html
    assert "エラーコード: 416" in html and "Requested Range Not Satisfiable" not in html
    resp = client.get("/api/v1/strict")
    assert (resp.status_code, resp.get_json()) == (415, {"error": "unsupported media type"})
    resp = client.get("/agent/later?lang=en")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 501 and "<h1>The request could not be completed</h1>" in html
    assert "Not Implemented" not in html


HUGE = "1" * 20  # past the largest id a database column holds
PAST_INTEGER = str(2**31)  # past PostgreSQL's INTEGER, which the id columns are


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_ids_no_database_holds_are_bad_input_not_a_server_error(app, client, caplog):
    """An id of 20 digits once reached the database and failed there: a 500 from a search box
    or a hand-edited address."""
    inbox = f.inbox()
    login(client, f.agent(inboxes=[inbox], role=Role.admin).email)
    for number in (HUGE, PAST_INTEGER):
        for path in ("tickets", "contacts"):  # no route takes it
            assert client.get(f"/agent/{path}/{number}").status_code == 404
        for path in ("/agent/", "/agent/contacts"):  # a search for "#<digits>" finds nothing
            resp = client.get(path, query_string={"q": f"#{number}"})
            assert resp.status_code == 200
    for query in ({"inbox": HUGE}, {"team": HUGE}, {"assignee": HUGE}):
        resp = client.get("/agent/", query_string=query)
        assert resp.status_code == 400 and TITLES[400][0] in resp.get_data(as_text=True)
    resp = client.get("/api/v1/events", query_string={"since": HUGE})
    assert resp.status_code == 400 and resp.json == {"error": "bad request"}
    assert "bad value in GET /api/v1/events" in caplog.text
    assert client.get("/agent/").status_code == 200  # the session is usable again
