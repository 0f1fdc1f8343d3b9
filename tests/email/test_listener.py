"""The SMTP listener (aiosmtpd) for forwarding setups: routing, refusals, dedupe."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import AuditLog, Message
from tests.email import make_fixtures
from tests.email.conftest import _wait_port, email_inbox
from tests.live import free_port

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)

FIXTURES = Path(__file__).parent / "fixtures"


def send(port: int, raw: bytes, to: str = "support@example.jp") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("relay@example.net", [to], raw)


def stored() -> list[Message]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message).order_by(Message.id)))


def test_forwarded_mail_is_ingested_into_the_inbox_for_its_recipient(app, listener):
    email_inbox({"address": "sales@example.jp"})
    support = email_inbox({"address": "Support@Example.jp"})
    send(listener, (FIXTURES / "outlook_iso2022jp_nec.eml").read_bytes(), to="support@example.JP")
    (msg,) = stored()
    assert msg.inbox_id == support.id
    assert msg.body.startswith("お世話になっております。\n㈱山田商事の山田です。")


def test_unknown_recipient_is_refused(app, listener):
    email_inbox()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as exc:
        send(listener, (FIXTURES / "docomo_sjis.eml").read_bytes(), to="nobody@example.jp")
    assert exc.value.recipients["nobody@example.jp"][0] == 550
    assert stored() == []


def test_redelivery_of_the_same_mail_is_stored_once(app, listener):
    email_inbox()
    raw = (FIXTURES / "gmail_utf8_reply.eml").read_bytes()
    send(listener, raw)
    send(listener, raw)  # the forwarding MTA retried after a timeout
    assert len(stored()) == 1


def test_unparseable_mail_is_refused_with_a_bounce_and_recorded(app, listener):
    inbox = email_inbox()
    with pytest.raises(smtplib.SMTPDataError) as exc:
        send(listener, make_fixtures.nested_bomb(500))
    assert exc.value.smtp_code == 554
    db.session.expire_all()
    record = db.session.scalar(select(AuditLog).where(AuditLog.action == "email.refused"))
    assert record.object_id == inbox.id and "too many MIME parts" in record.changes["reason"]
    assert stored() == []


def test_oversize_mail_is_refused_by_size(app, listener):
    email_inbox()
    with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPSenderRefused, smtplib.SMTPServerDisconnected)) as exc:
        send(listener, make_fixtures.huge(400_000))
    assert getattr(exc.value, "smtp_code", 552) == 552
    assert stored() == []


@pytest.mark.slow
def test_flask_smtp_listen_command_runs_the_listener(app, tmp_path):
    email_inbox()
    port = free_port()
    env = {**os.environ, "HELPDESK_DATABASE_URL": app.config["DATABASE_URL"], "HELPDESK_SECRET_KEY": "x",
           "HELPDESK_SENTIMENT_ENABLED": "false", "HELPDESK_JOBS": "inline",
           "HELPDESK_UPLOAD_DIR": str(tmp_path / "uploads")}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "smtp-listen", "--port", str(port)],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_port(port, timeout=60)
        send(port, (FIXTURES / "euc_jp_unix.eml").read_bytes())
        deadline = time.monotonic() + 10
        while not stored() and time.monotonic() < deadline:
            time.sleep(0.1)
        (msg,) = stored()
        assert msg.body == "サーバの設定について質問です。\n①ポート番号は何番ですか。"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode in (0, -15), out.decode(errors="replace")


def test_public_webhook_route_refuses_email(app, client):
    inbox = email_inbox()
    raw = (FIXTURES / "docomo_sjis.eml").read_bytes()
    resp = client.post(f"/webhooks/email/{inbox.key}", data=raw, content_type="message/rfc822")
    assert resp.status_code == 401
    assert stored() == []


def test_mail_from_our_own_address_is_dropped_with_a_log_line(app, listener, caplog):
    email_inbox()
    raw = (FIXTURES / "docomo_sjis.eml").read_bytes().replace(b"keitai.user@docomo.ne.jp", b"support@example.jp")
    send(listener, raw)  # accepted: refusing it would only bounce it back to us
    assert stored() == []
    assert "from our own address support@example.jp" in caplog.text


def test_bounce_of_no_mail_of_ours_is_dropped_with_a_log_line(app, listener, caplog):
    email_inbox()
    send(listener, make_fixtures.dsn("<somebody-else@example.org>"))
    assert stored() == []
    assert "names no mail we sent" in caplog.text
