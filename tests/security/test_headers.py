"""Security headers on every HTML response: a CSP without inline scripts, nosniff, and
framing rules (the desk: never framed; the chat iframe: only by the sites its inbox allows)."""

from __future__ import annotations

import re

import pytest

from helpdesk.extensions import db
from tests import factories as f

from .test_roles import _routes, _url


def csp(resp) -> dict[str, list[str]]:
    header = resp.headers.get("Content-Security-Policy", "")
    out = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def _html_responses(world):
    """Every GET page as each signed-in role sees it, plus error pages."""
    seen = []
    for role in ("anonymous", "agent", "admin"):
        client, _ = world.client(role)
        urls = [_url(world, rule) for rule, method in _routes(world.app) if method == "GET"]
        urls += ["/no-such-page", "/agent/tickets/999999", "/survey/bad-token"]
        for url in urls:
            resp = client.get(url)
            if resp.mimetype == "text/html":
                seen.append((f"{role} {url} [{resp.status_code}]", resp))
            resp.close()
    assert len(seen) > 10
    return seen


def test_every_html_response_has_a_csp_without_inline_script(world):
    wrong = []
    for name, resp in _html_responses(world):
        policy = csp(resp)
        scripts = policy.get("script-src") or policy.get("default-src")
        if not scripts:
            wrong.append(f"{name}: no script-src/default-src")
        elif any(s in ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:") for s in scripts):
            wrong.append(f"{name}: script-src {scripts}")
        objects = policy.get("object-src") or policy.get("default-src")  # object-src falls back
        if objects != ["'none'"]:
            wrong.append(f"{name}: object-src {objects}")
        if "base-uri" not in policy:
            wrong.append(f"{name}: no base-uri")
    assert not wrong, "\n".join(wrong)


def test_every_html_response_is_nosniff(world):
    wrong = [n for n, r in _html_responses(world) if r.headers.get("X-Content-Type-Options") != "nosniff"]
    assert not wrong


def test_desk_pages_may_not_be_framed(world):
    wrong = []
    for name, resp in _html_responses(world):
        if "/widget/frame/" in name:
            continue
        if csp(resp).get("frame-ancestors") != ["'none'"] or resp.headers.get("X-Frame-Options") != "DENY":
            wrong.append(name)
    assert not wrong, wrong


def test_html_pages_have_no_inline_scripts_or_handlers(world):
    """Inline code would be blocked by the CSP (and means someone reached for innerHTML-style code)."""
    wrong = []
    for name, resp in _html_responses(world):
        html = resp.get_data(as_text=True)
        for m in re.finditer(r"<script\b([^>]*)>(.*?)</script>", html, re.DOTALL | re.IGNORECASE):
            attrs, body = m.group(1), m.group(2)
            if body.strip() and "src=" not in attrs and not re.search(r'type="application/(ld\+)?json"', attrs):
                wrong.append(f"{name}: inline <script{attrs}>")
        for m in re.finditer(r"<[a-z]+\s[^>]*\son[a-z]+\s*=", html, re.IGNORECASE):
            wrong.append(f"{name}: inline handler {m.group(0)[:60]}")
        if re.search(r"""(href|src)\s*=\s*["']\s*javascript:""", html, re.IGNORECASE):
            wrong.append(f"{name}: javascript: URL")
    assert not wrong, "\n".join(wrong)


def test_json_and_files_are_nosniff_too(world):
    client, _ = world.client("admin")
    for url in ("/api/v1/events", "/healthz", "/static/css/supervisor.css", "/widget.js"):
        resp = client.get(url)
        assert resp.headers.get("X-Content-Type-Options") == "nosniff", url
        resp.close()


# ---- the chat widget's iframe ---------------------------------------------------------------------

@pytest.fixture
def chat_frame(app, client):
    pytest.importorskip("channels.chat")

    def get(settings=None):
        inbox = f.inbox(kind="chat", settings=settings or {}, secrets={"identity_secret": "idsecret-123456789"})
        return client.get(f"/widget/frame/{inbox.key}")
    return get


def test_widget_frame_may_be_framed_by_the_allowed_sites_only(chat_frame):
    resp = chat_frame({"allowed_origins": ["https://shop.example.jp", "https://www.shop.example.jp/"]})
    assert resp.status_code == 200
    assert csp(resp)["frame-ancestors"] == ["https://shop.example.jp", "https://www.shop.example.jp"]
    assert "X-Frame-Options" not in resp.headers


def test_widget_frame_ignores_junk_in_allowed_origins(chat_frame):
    resp = chat_frame({"allowed_origins": ["https://ok.example", "'unsafe-inline'; script-src *", "javascript:x"]})
    assert csp(resp)["frame-ancestors"] == ["https://ok.example"]
    assert csp(resp)["script-src"] == ["'self'"]


def test_widget_frame_csp_has_no_inline_script_and_leaks_no_secret(chat_frame):
    resp = chat_frame()
    policy = csp(resp)
    assert policy["script-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "idsecret-123456789" not in resp.get_data(as_text=True)


def test_widget_loader_is_javascript_and_nosniff(app, client):
    pytest.importorskip("channels.chat")
    resp = client.get("/widget.js")
    assert resp.mimetype == "text/javascript" and resp.headers["X-Content-Type-Options"] == "nosniff"
    resp.close()
    db.session.remove()
