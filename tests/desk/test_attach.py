"""Files on agent replies over HTTP: the reply box's checks, what is stored, the agent's
download and the customers' signed links (expiry, tampering, never inline)."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from channels import testing as test_channel
from channels.base import Attachment
from helpdesk.extensions import db
from helpdesk.models import Delivery, Direction, Message
from helpdesk.services import replies, storage
from helpdesk.services.ingest import ingest
from tests import factories as f
from tests.conftest import csrf_token, login

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)


@pytest.fixture(autouse=True)
def _clean_channel():
    test_channel.SENT.clear()
    yield
    test_channel.SENT.clear()


@pytest.fixture
def desk(app, client):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    ticket = ingest(inbox, f.inbound(user_id="U-7")).message.ticket
    login(client, agent.email)
    return ticket, csrf_token(client, f"/agent/tickets/{ticket.id}")


def send(client, ticket, token, body="資料をお送りします。", files=(), private=False, json=True):
    fields = MultiDict([("body", body), ("csrf_token", token)]
                       + [("files", FileStorage(io.BytesIO(d), n)) for n, d in files])
    if private:
        fields["private"] = "y"
    # Encoded in memory: the test client would spool a big body to a temporary file it never closes.
    boundary, raw = encode_multipart(fields)
    return client.post(f"/agent/tickets/{ticket.id}/reply", data=raw,
                       content_type=f"multipart/form-data; boundary={boundary}",
                       headers={"Accept": "application/json"} if json else {})


def replies_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Message).where(Message.direction != Direction.inbound))


def uploads(app) -> list[Path]:
    folder = Path(app.config["UPLOAD_DIR"])
    return sorted(folder.iterdir()) if folder.exists() else []


def get(client, path):
    with client.get(path) as resp:
        resp.get_data()
    return resp


# ---- the reply box ------------------------------------------------------------------------------

def test_reply_with_files_is_stored_sent_and_shown_in_the_thread(app, client, desk):
    ticket, token = desk
    resp = send(client, ticket, token, files=[("請求書.pdf", PDF), ("設定画面.png", PNG)])
    assert resp.status_code == 201
    out = resp.json
    assert [(a["filename"], a["content_type"], a["size"]) for a in out["attachments"]] == [
        ("請求書.pdf", "application/pdf", len(PDF)), ("設定画面.png", "image/png", len(PNG))]
    msg = db.session.get(Message, out["id"])
    # The same entry shape as inbound files: the thread and the agent download treat them alike.
    assert set(msg.attachments[0]) == {"filename", "content_type", "size", "url", "stored"}
    assert msg.delivery is Delivery.sent
    [sent] = test_channel.TestingAdapter.delivered()
    assert [a["filename"] for a in sent["attachments"]] == ["請求書.pdf", "設定画面.png"]
    html = client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert f'href="/agent/attachments/{msg.id}/0">請求書.pdf</a>' in html
    dl = get(client, f"/agent/attachments/{msg.id}/1")
    assert dl.status_code == 200 and dl.data == PNG and dl.mimetype == "image/png"


def test_a_file_alone_is_a_reply(app, client, desk):
    ticket, token = desk
    resp = send(client, ticket, token, body="", files=[("見積書.pdf", PDF)])
    assert resp.status_code == 201 and resp.json["body"] == ""


def test_a_note_keeps_its_file_and_sends_nothing(app, client, desk):
    ticket, token = desk
    resp = send(client, ticket, token, body="原価の資料", files=[("原価表.pdf", PDF)], private=True)
    assert resp.status_code == 201 and resp.json["direction"] == "note"
    assert resp.json["attachments"][0]["filename"] == "原価表.pdf"
    assert test_channel.SENT == []


def test_names_are_cleaned_of_folders_and_control_characters(app, client, desk):
    ticket, token = desk
    resp = send(client, ticket, token, files=[("..\\..\\secret/請求\u202e書\x1b.pdf", PDF)])
    assert resp.status_code == 201
    assert resp.json["attachments"][0]["filename"] == "請求書.pdf"


def test_a_name_that_lies_about_being_an_image_gets_no_image_type(app, client, desk):
    ticket, token = desk
    resp = send(client, ticket, token, files=[("photo.png", b"<html><script>alert(1)</script>")])
    assert resp.status_code == 201
    assert resp.json["attachments"][0]["content_type"] == "application/octet-stream"


@pytest.mark.config(SENTIMENT_ENABLED=False, MAX_REPLY_ATTACHMENT_MB=1)
@pytest.mark.parametrize("files,expect", [
    ([("大きい.pdf", PDF + bytes(1024 * 1024))], "大きい.pdf"),
    ([(f"画面{i}.png", PNG) for i in range(6)], "5"),
    ([("空.pdf", b"")], "空.pdf"),
    ([("page.html", b"<h1>hi</h1>")], ".html"),
    ([("logo.SVG", b"<svg onload=alert(1)></svg>")], ".svg"),
    ([("ok.pdf", PDF), ("setup.exe", b"MZ\x90\x00")], ".exe"),
], ids=["too-large", "too-many", "empty", "html", "svg", "exe-beside-a-good-one"])
def test_bad_files_refuse_the_whole_reply_with_a_reason(app, client, desk, caplog, files, expect):
    ticket, token = desk
    with caplog.at_level(logging.WARNING, logger="helpdesk.services.replies"):
        resp = send(client, ticket, token, files=files)
    assert resp.status_code == 400
    assert expect in resp.json["message"]
    assert "reply files refused" in caplog.text
    # Nothing half-done: no message, no stored file, nothing sent.
    assert replies_count() == 0 and uploads(app) == [] and test_channel.SENT == []


def test_too_much_in_total_is_refused(app, client, desk, monkeypatch):
    monkeypatch.setattr(replies, "MAX_REPLY_TOTAL_MB", 1)
    ticket, token = desk
    half = PDF + bytes(600 * 1024)
    resp = send(client, ticket, token, files=[("a.pdf", half), ("b.pdf", half)])
    assert resp.status_code == 400 and "1 MB" in resp.json["message"]
    assert replies_count() == 0 and uploads(app) == []


def test_without_javascript_a_refusal_is_flashed_and_nothing_is_stored(app, client, desk):
    ticket, token = desk
    resp = send(client, ticket, token, files=[("空.txt", b"")], json=False)
    assert resp.status_code == 302
    html = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "空.txt" in html and 'class="flash error"' in html
    assert replies_count() == 0


def test_the_reply_box_offers_files_within_the_limits(app, client, desk):
    ticket, _ = desk
    html = client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in html
    assert '<input type="file" name="files" id="reply-files" multiple>' in html
    assert '"maxBytes": 10485760' in html and '"maxFiles": 5' in html


# ---- customers' links ----------------------------------------------------------------------------

@pytest.fixture
def sent_file(app, client, desk):
    ticket, token = desk
    out = send(client, ticket, token, files=[("請求書.pdf", PDF), ("メモ.txt", b"<script>alert(1)</script>")]).json
    return out["id"]


def test_signed_link_serves_the_file_as_a_download(app, client, sent_file):
    url = storage.file_url(sent_file, 0, "請求書.pdf")
    assert url.startswith(app.config["PUBLIC_URL"] + "/files/")
    resp = get(client, url[len(app.config["PUBLIC_URL"]):])
    assert resp.status_code == 200 and resp.data == PDF and resp.mimetype == "application/pdf"
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert disposition.endswith("filename*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8.pdf")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in resp.headers["Content-Security-Policy"]
    # The name segment is only for people: the token alone is enough.
    assert get(client, f"/files/{storage.link_token(sent_file, 0)}").data == PDF


def test_anything_but_images_and_pdf_is_served_as_bytes(app, client, sent_file):
    resp = get(client, f"/files/{storage.link_token(sent_file, 1)}/x.txt")
    assert resp.status_code == 200 and resp.mimetype == "application/octet-stream"
    assert resp.headers["Content-Disposition"].startswith("attachment;")


def test_a_tampered_or_forged_link_is_refused_and_logged(app, client, sent_file, caplog):
    token = storage.link_token(sent_file, 0)
    payload, stamp, sig = token.split(".")
    other = storage.link_token(sent_file, 1)
    forged = storage.URLSafeTimedSerializer("another-secret", salt="helpdesk.files").dumps({"m": sent_file, "i": 0})
    caplog.set_level(logging.WARNING)
    for bad in (other.split(".")[0] + f".{stamp}.{sig}",  # another file's payload, this signature
                f"{payload}.{stamp}.{sig[:-2]}AA", forged, "not-a-token"):
        assert get(client, f"/files/{bad}/請求書.pdf").status_code == 404
    assert caplog.text.count("file link refused (invalid)") == 4


class _EightDaysAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 8 * 86400


def test_an_old_link_has_expired(app, client, sent_file, caplog):
    serializer = storage._link_serializer()
    serializer.signer = _EightDaysAgo
    old = serializer.dumps({"m": sent_file, "i": 0})
    caplog.set_level(logging.WARNING)
    resp = get(client, f"/files/{old}")
    assert resp.status_code == 410
    page = resp.get_data(as_text=True)
    assert "このリンクは有効期限が切れています" in page and "もう一度お送りする" in page
    assert "/login" not in page and "/agent/" not in page  # a customer is not sent to the desk's login
    assert "file link refused (expired)" in caplog.text
    app.config["FILE_LINK_MAX_AGE_DAYS"] = 10  # the same link within a longer allowance opens
    assert get(client, f"/files/{old}").status_code == 200


def test_a_link_to_a_file_that_does_not_exist_is_404(app, client, sent_file):
    assert get(client, f"/files/{storage.link_token(sent_file, 7)}").status_code == 404
    assert get(client, f"/files/{storage.link_token(999999, 0)}").status_code == 404


def test_agent_download_never_serves_html_as_html(app, client, desk):
    ticket, _ = desk
    inbound = ingest(ticket.inbox, f.inbound(user_id="U-7", attachments=(
        Attachment(filename="page.html", content_type="text/html", data=b"<script>alert(1)</script>"),)))
    resp = get(client, f"/agent/attachments/{inbound.message.id}/0")
    assert resp.status_code == 200 and resp.mimetype == "application/octet-stream"
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
