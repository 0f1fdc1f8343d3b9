"""Agents' files by email: real MIME attachments with Japanese names, received by a real SMTP
server (aiosmtpd) and read back with Python's email parser as a mail client would."""

from __future__ import annotations

import io
from email.utils import collapse_rfc2231_value

import pytest

from channels._mail_text import decode_iso2022jp
from channels.base import Attachment
from helpdesk.extensions import db
from helpdesk.models import Delivery, Direction, Message
from helpdesk.services import storage
from helpdesk.services.ingest import ingest
from helpdesk.services.replies import deliver, post_reply
from tests import factories as f
from tests.conftest import csrf_token, login
from tests.email.conftest import email_inbox

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)
# Long enough that the encoded name is split into RFC 2231 sections (filename*0*, filename*1*...).
LONG_NAME = "2026年11月分_ご請求書（株式会社サンプル商事 御中）①.pdf"


def _ticket(inbox):
    return ingest(inbox, f.inbound(user_id="taro@customer.jp", email="taro@customer.jp",
                                   text="請求書を送ってください")).message.ticket


def test_files_posted_in_the_reply_box_arrive_as_attachments(app, client, smtp_server):
    sink, server = smtp_server
    inbox = email_inbox(server)
    agent = f.agent(inboxes=[inbox])
    ticket = _ticket(inbox)
    login(client, agent.email)
    token = csrf_token(client, f"/agent/tickets/{ticket.id}")
    resp = client.post(f"/agent/tickets/{ticket.id}/reply", headers={"Accept": "application/json"},
                       content_type="multipart/form-data",
                       data={"body": "ご請求書と設定画面をお送りします。", "csrf_token": token,
                             "files": [(io.BytesIO(PDF), LONG_NAME), (io.BytesIO(PNG), "設定画面.png")]})
    assert resp.status_code == 201, resp.json
    msg = db.session.get(Message, resp.json["id"])
    assert msg.delivery is Delivery.sent, msg.delivery_error
    assert [a["filename"] for a in msg.attachments] == [LONG_NAME, "設定画面.png"]

    mail = sink.parsed()
    raw = sink.messages[-1]["data"].decode("ascii")  # everything on the wire is 7-bit
    assert "filename*0*=utf-8''" in raw  # RFC 2231, split into sections
    assert mail.get_content_type() == "multipart/mixed"
    assert "ご請求書と設定画面をお送りします。" in mail.get_body(("plain",)).get_content()
    parts = list(mail.iter_attachments())
    assert [(p.get_filename(), p.get_content_type(), p.get_content_disposition()) for p in parts] == [
        (LONG_NAME, "application/pdf", "attachment"), ("設定画面.png", "image/png", "attachment")]
    assert [p.get_content() for p in parts] == [PDF, PNG]
    # Content-Type's name too, for mail clients that read only that one.
    assert collapse_rfc2231_value(parts[0].get_param("name")) == LONG_NAME


def test_iso2022jp_reply_keeps_its_attachments(app, smtp_server):
    sink, server = smtp_server
    inbox = email_inbox({**server, "outbound_charset": "iso-2022-jp"})
    ticket = _ticket(inbox)
    msg = post_reply(ticket, f.agent(inboxes=[inbox]), "㈱サンプル様\n見積書①をお送りします。",
                     files=[Attachment(filename="見積書①.pdf", content_type="", data=PDF)])
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent, msg.delivery_error
    mail = sink.parsed()
    body = mail.get_body(("plain",))
    assert body.get_content_charset() == "iso-2022-jp"
    assert decode_iso2022jp(body.get_payload(decode=True)).startswith("㈱サンプル様\r\n見積書①をお送りします。")
    [part] = mail.iter_attachments()
    assert (part.get_filename(), part.get_content_type(), part.get_content()) == ("見積書①.pdf", "application/pdf", PDF)


def test_a_missing_stored_file_fails_the_message_with_a_reason(app, smtp_server, caplog):
    sink, server = smtp_server
    inbox = email_inbox(server)
    ticket = _ticket(inbox)
    # A pending reply whose file was removed from the upload folder before the send ran.
    entry = storage.save_attachment(Attachment(filename="消えた.pdf", content_type="application/pdf", data=PDF))
    msg = Message(ticket=ticket, inbox_id=inbox.id, direction=Direction.outbound, body="どうぞ",
                  delivery=Delivery.pending, attachments=[entry])
    db.session.add(msg)
    db.session.commit()
    storage.stored_path(entry["stored"]).unlink()
    deliver(msg.id)
    db.session.refresh(msg)
    assert msg.delivery is Delivery.failed and "消えた.pdf" in msg.delivery_error
    assert "is missing" in caplog.text
    assert not sink.messages
