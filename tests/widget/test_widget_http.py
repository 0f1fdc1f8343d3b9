"""The widget over HTTP: loader, frame headers, attachment upload and download."""

from __future__ import annotations

import io
import logging

import pytest
from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import Message
from tests import factories as f
from tests.conftest import login
from tests.widget.helpers import hello, received

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def upload(client, pass_, data, filename, text=""):
    return client.post("/widget/api/upload", headers={"X-Widget-Pass": pass_} if pass_ else {},
                       data={"file": (io.BytesIO(data), filename), "client_id": "upload-0001", "text": text},
                       content_type="multipart/form-data")


@pytest.fixture
def visitor(sockets, chat_inbox, agent):
    sockets.agent(agent)  # an agent is online: an upload asks for no email (see the upload checks below)
    c = sockets.visitor(chat_inbox)
    c.pass_ = hello(c)["pass"]
    return c


def messages() -> int:
    return db.session.scalar(select(func.count()).select_from(Message))


# ---- loader and frame ------------------------------------------------------------------

def test_loader_script_is_served_for_any_site(client):
    with client.get("/widget.js") as r:
        assert r.status_code == 200 and r.mimetype == "text/javascript"
        assert r.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
        assert b"data-inbox" in r.data


def test_frame_is_japanese_by_default_and_may_be_framed(client, chat_inbox):
    r = client.get(f"/widget/frame/{chat_inbox.key}")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and '<html lang="ja">' in html
    assert "X-Frame-Options" not in r.headers
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors *" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "<script>" not in html  # scripts are files; the config is inert JSON


def test_frame_in_english_when_asked(client, chat_inbox):
    html = client.get(f"/widget/frame/{chat_inbox.key}?locale=en").get_data(as_text=True)
    assert '<html lang="en">' in html and "Type a message" in html


def test_frame_only_embeddable_on_allowed_sites_when_listed(client):
    inbox = f.inbox(kind="chat", settings={"allowed_origins": ["https://shop.example", "javascript:alert(1)"]})
    csp = client.get(f"/widget/frame/{inbox.key}").headers["Content-Security-Policy"]
    assert csp.endswith("frame-ancestors https://shop.example")


def test_other_pages_still_refuse_framing(client):
    assert client.get("/login").headers["X-Frame-Options"] == "DENY"


def test_frame_for_unknown_inbox_is_404(client, caplog):
    caplog.set_level(logging.WARNING)
    r = client.get("/widget/frame/nope")
    assert r.status_code == 404 and b'data-error="unknown_inbox"' in r.data
    assert "unknown inbox" in caplog.text


# ---- uploads -----------------------------------------------------------------------------

def test_image_upload_is_stored_and_shown_live(app, client, visitor, agent):
    r = upload(client, visitor.pass_, PNG, "写真.png")
    assert r.status_code == 201, r.json
    att = r.json["message"]["attachments"][0]
    assert att == {"index": 0, "filename": "写真.png", "content_type": "image/png", "size": len(PNG)}
    assert received(visitor, "message.created")[0]["id"] == r.json["message"]["id"]
    msg = db.session.scalar(select(Message))
    assert msg.ticket.channel == "chat" and msg.attachments[0]["stored"]
    # The agent can open it in the desk...
    login(client, agent.email)
    with client.get(f"/agent/attachments/{msg.id}/0") as r:
        assert r.data == PNG


def test_visitor_downloads_own_attachment_but_not_anothers(app, client, sockets, chat_inbox, visitor):
    mid = upload(client, visitor.pass_, PDF, "invoice.pdf").json["message"]["id"]
    with client.get(f"/widget/api/attachments/{mid}/0", headers={"X-Widget-Pass": visitor.pass_}) as r:
        assert r.status_code == 200 and r.data == PDF and r.mimetype == "application/pdf"
    stranger = sockets.visitor(chat_inbox)
    other_pass = hello(stranger)["pass"]
    assert client.get(f"/widget/api/attachments/{mid}/0", headers={"X-Widget-Pass": other_pass}).status_code == 404


@pytest.mark.parametrize("pass_", [None, "", "forged.pass.value"])
def test_upload_without_a_valid_pass_is_401(client, chat_inbox, pass_):
    r = upload(client, pass_, PNG, "a.png")
    assert r.status_code == 401 and r.json["error"] == "unauthorized"
    assert messages() == 0


@pytest.mark.parametrize("data,name,code", [
    (b"MZ\x90\x00\x03" + b"\x00" * 60, "photo.png", "file_type_not_allowed"),  # a Windows program renamed
    (b"<html><script>alert(1)</script></html>", "report.pdf", "file_type_not_allowed"),
    (PDF, "picture.png", "file_type_mismatch"),  # real PDF bytes, image name
    (PNG, "archive.exe", "file_type_mismatch"),
])
def test_wrong_file_types_are_refused_by_their_bytes(client, visitor, caplog, data, name, code):
    r = upload(client, visitor.pass_, data, name)
    assert r.status_code == 415 and r.json["error"] == code
    assert code in caplog.text
    assert messages() == 0


@pytest.mark.config(WIDGET_MAX_UPLOAD_BYTES=1000)
def test_too_large_file_is_refused(client, visitor):
    r = upload(client, visitor.pass_, PNG + b"\x00" * 2000, "big.png")
    assert r.status_code == 413 and r.json["error"] == "file_too_large"
    assert messages() == 0


def test_empty_upload_is_refused(client, visitor):
    assert upload(client, visitor.pass_, b"", "a.png").json["error"] in {"no_file", "empty_file"}
    assert messages() == 0


def test_upload_is_not_visible_to_a_visitor_in_another_inbox(client, sockets, visitor):
    other = sockets.visitor(f.inbox(kind="chat"))
    other_pass = hello(other)["pass"]
    mid = upload(client, visitor.pass_, PNG, "a.png").json["message"]["id"]
    assert client.get(f"/widget/api/attachments/{mid}/0", headers={"X-Widget-Pass": other_pass}).status_code == 404
