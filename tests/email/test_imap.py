"""IMAP polling against a real Dovecot: import, mark or move, resume, quarantine, TLS."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import AuditLog, Message
from helpdesk.services import mailbox as mb
from helpdesk.services import storage
from tests.email import make_fixtures
from tests.email.conftest import email_inbox
from tests.procs import REDIS_URL, drop_rq_queue, embedded_flask, redis_available

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.eml").read_bytes()


def messages() -> list[Message]:
    return list(db.session.scalars(select(Message).order_by(Message.id)))


@pytest.fixture
def imap_inbox(app, mailbox):
    server, user, password, settings, secrets = mailbox
    inbox = email_inbox(settings, secrets)
    return server, user, password, inbox


def test_poll_imports_new_mail_and_marks_it_seen(imap_inbox):
    server, user, password, inbox = imap_inbox
    server.append(user, password, fixture("outlook_iso2022jp_nec"))
    server.append(user, password, fixture("multipart_attachments"))
    report = mb.poll_inbox(inbox)
    assert (report.imported, report.duplicates, report.quarantined, report.errors) == (2, 0, 0, [])
    first, second = messages()
    assert first.body.startswith("お世話になっております。\n㈱山田商事の山田です。\n\n①注文番号：Ⅱ-1234")
    assert first.ticket.subject == "【至急】㈱山田商事 注文①の件"
    assert first.external_id == "<000001da0000$00000000$00000000@yamada-shoji.co.jp>"
    assert [a["filename"] for a in second.attachments] == ["請求書.pdf", "㈱写真.png", "list.csv"]
    assert storage.stored_path(second.attachments[0]["stored"]).read_bytes() == make_fixtures.PDF_BYTES
    assert server.uids(user, password, criteria="UNSEEN") == []
    assert len(server.uids(user, password)) == 2  # still on the server, just seen


def test_second_poll_imports_nothing(imap_inbox):
    server, user, password, inbox = imap_inbox
    server.append(user, password, fixture("gmail_utf8_reply"))
    assert mb.poll_inbox(inbox).imported == 1
    report = mb.poll_inbox(inbox)
    assert (report.imported, report.duplicates) == (0, 0)


def test_crash_between_import_and_marking_does_not_import_twice(imap_inbox):
    server, user, password, inbox = imap_inbox
    server.append(user, password, fixture("docomo_sjis"))
    server.append(user, password, fixture("no_message_id"))  # deduped by a hash of its bytes
    mb.poll_inbox(inbox)
    # What a crash right after the commit leaves behind: imported, but still unseen.
    imap = server.client(user, password)
    imap.select("INBOX")
    imap.uid("STORE", "1:*", "-FLAGS", "(\\Seen)")
    imap.logout()
    report = mb.poll_inbox(inbox)
    assert (report.imported, report.duplicates) == (0, 2)
    assert len(messages()) == 2
    assert server.uids(user, password, criteria="UNSEEN") == []


def test_move_mode_moves_into_a_japanese_named_folder(app, mailbox):
    server, user, password, settings, secrets = mailbox
    inbox = email_inbox({**settings, "imap_after": "move", "imap_move_to": "取り込み済み"}, secrets)
    server.append(user, password, fixture("euc_jp_unix"), flags="(\\Seen)")  # read by a person: still imported
    assert mb.poll_inbox(inbox).imported == 1
    assert server.uids(user, password) == []
    imap = server.client(user, password)
    typ, data = imap.list()
    imap.logout()
    folder = mb.imap_folder_name("取り込み済み").strip('"')
    assert any(line.endswith(folder.encode()) for line in data), data
    assert len(server.uids(user, password, folder)) == 1
    assert mb.poll_inbox(inbox).imported == 0
    assert messages()[0].body == "サーバの設定について質問です。\n①ポート番号は何番ですか。"


def test_folder_names_are_modified_utf7():
    # RFC 3501 modified UTF-7: UTF-7 shifting with & instead of +, and , for /
    expected = "取り込み済み".encode("utf-7").decode().replace("+", "&", 1).replace("/", ",")
    assert mb.imap_folder_name("取り込み済み") == f'"{expected}"'
    assert mb.imap_folder_name("A&B") == '"A&-B"'
    assert mb.imap_folder_name('say "hi"') == '"say \\"hi\\""'


def test_unparseable_mail_is_quarantined_recorded_and_not_retried(imap_inbox):
    server, user, password, inbox = imap_inbox
    server.append(user, password, make_fixtures.nested_bomb(500))
    server.append(user, password, fixture("softbank_no_charset"))
    report = mb.poll_inbox(inbox)
    assert (report.imported, report.quarantined) == (1, 1)
    assert len(server.uids(user, password, "Quarantine")) == 1
    record = db.session.scalar(select(AuditLog).where(AuditLog.action == "email.quarantined"))
    assert record.object_id == inbox.id
    assert "too many MIME parts" in record.changes["reason"]
    assert record.changes["message_id"] == "<bomb.500@example.com>"
    again = mb.poll_inbox(inbox)
    assert (again.imported, again.quarantined) == (0, 0)
    assert db.session.scalar(select(func.count()).select_from(AuditLog)) == 1


@pytest.mark.slow
def test_30mb_mail_is_imported_as_a_header_only_record_and_kept_in_quarantine(imap_inbox):
    server, user, password, inbox = imap_inbox
    server.append(user, password, make_fixtures.huge(30 * 1024 * 1024))
    report = mb.poll_inbox(inbox)
    assert (report.imported, report.quarantined, report.errors) == (1, 1, [])
    (msg,) = messages()
    assert msg.meta["oversize"]["size"] > 30 * 1024 * 1024
    assert msg.attachments == []
    assert msg.ticket.subject == "大きい"
    assert "「Quarantine」" in msg.body
    assert len(server.uids(user, password, "Quarantine")) == 1
    assert mb.poll_inbox(inbox).imported == 0


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_connections_verify_the_server_certificate(app, mailbox, tls_cert, security):
    server, user, password, settings, secrets = mailbox
    port = server.tls_port if security == "tls" else server.port
    inbox = email_inbox({**settings, "imap_security": security, "imap_port": port,
                         "tls_ca_file": str(tls_cert[0])}, secrets)
    server.append(user, password, fixture("html_only"))
    assert mb.poll_inbox(inbox).imported == 1


def test_untrusted_certificate_is_an_error_not_a_crash(app, mailbox):
    server, user, password, settings, secrets = mailbox
    inbox = email_inbox({**settings, "imap_security": "tls", "imap_port": server.tls_port}, secrets)
    report = mb.poll_inbox(inbox)
    assert report.imported == 0 and "certificate" in report.errors[0].lower()


def test_wrong_password_is_reported(app, mailbox):
    server, user, password, settings, _ = mailbox
    inbox = email_inbox(settings, {"imap_password": "wrong"})
    report = mb.poll_inbox(inbox)
    assert report.errors and "login refused" in report.errors[0]


def test_poll_all_keeps_going_after_a_broken_inbox(app, mailbox):
    server, user, password, settings, secrets = mailbox
    email_inbox({**settings, "imap_port": 1}, secrets)  # nothing listens there
    good = email_inbox(settings, secrets)
    server.append(user, password, fixture("au_split_subject"))
    reports = mb.poll_all()
    assert [bool(r.errors) for r in reports] == [True, False]
    assert reports[1].inbox_id == good.id and reports[1].imported == 1


def test_flask_poll_email_command(app, runner, mailbox):
    server, user, password, settings, secrets = mailbox
    inbox = email_inbox(settings, secrets)
    server.append(user, password, fixture("iphone_flowed_iso2022jp"))
    result = runner.invoke(args=["poll-email"])
    assert result.exit_code == 0, result.output
    assert f"inbox {inbox.id}: 1 imported, 0 already imported, 0 quarantined" in result.output


def test_flask_poll_email_once_labels_what_it_imported_before_it_ends(app, db_url, tmp_path, mailbox):
    """As an operator runs it on the embedded setup (thread jobs, the shipped model): the command
    used to end while its job thread loaded the model, and the mail's label stayed pending
    until the server's next labelling run ("labelling stopped after 0 messages")."""
    server, user, password, settings, secrets = mailbox
    email_inbox(settings, secrets)
    server.append(user, password, fixture("iphone_flowed_iso2022jp"))
    out = embedded_flask("poll-email", db_url, tmp_path, secret_key=app.config["SECRET_KEY"])
    assert "1 imported" in out.stdout and "wait for sentiment" not in out.stdout, out.stdout
    assert "labelling stopped" not in out.stderr, out.stderr
    db.session.remove()
    (msg,) = messages()
    assert msg.sentiment_label is not None and msg.sentiment_model


@pytest.mark.config(JOBS="thread", SENTIMENT_ENABLED=False)
def test_background_job_polls_and_reschedules_itself(app, mailbox):
    from helpdesk.jobs import jobs

    server, user, password, settings, secrets = mailbox
    email_inbox({**settings, "poll_interval": 30}, secrets)
    server.append(user, password, fixture("outlook_forward"))
    try:
        jobs.enqueue("poll_email")
        runner = app.extensions["helpdesk.jobs"]["runners"]["default"]
        assert jobs.wait_idle(20)
        db.session.remove()
        assert len(messages()) == 1
        (due, _, name, _) = runner._heap[0]
        assert name == "poll_email"
        import time

        assert 20 < due - time.monotonic() <= 30  # next run after the inbox's poll_interval
    finally:
        runner = app.extensions["helpdesk.jobs"]["runners"]["default"]
        with runner._cv:
            runner._heap.clear()


_RQ_QUEUE = "hd-poll-claim"


@pytest.mark.redis
@pytest.mark.config(JOBS="rq", REDIS_URL=REDIS_URL, JOBS_QUEUE=_RQ_QUEUE, SOCKETIO_CHANNEL=_RQ_QUEUE,
                    SENTIMENT_ENABLED=False)
def test_rq_workers_poll_an_inbox_once_per_interval_between_them(app, mailbox):
    """Each RQ worker keeps its own memory, and the sweep's poll job lands on any of them: the
    inbox's interval is kept in Redis, or it would be polled once per interval by each."""
    if not redis_available():
        pytest.skip("needs Redis")
    from redis import Redis

    server, user, password, settings, secrets = mailbox
    inbox = email_inbox({**settings, "poll_interval": 60}, secrets)
    redis = Redis.from_url(REDIS_URL)
    key = f"{_RQ_QUEUE}:mail-poll:{inbox.id}"
    redis.delete(key)
    try:
        server.append(user, password, fixture("outlook_forward"))
        mb.poll_due()  # worker 1
        assert len(messages()) == 1
        server.append(user, password, fixture("iphone_flowed_iso2022jp"))
        app.extensions["helpdesk.mail_due"].clear()  # worker 2: its own memory, nothing polled yet
        wait = mb.poll_due()
        assert len(messages()) == 1 and 50 < wait <= 60  # polled by worker 1 less than a minute ago
        redis.delete(key)  # the minute is up
        app.extensions["helpdesk.mail_due"].clear()
        mb.poll_due()
        assert len(messages()) == 2
    finally:
        redis.delete(key)
        drop_rq_queue(REDIS_URL, _RQ_QUEUE)


def test_server_without_move_gets_copy_flag_and_uid_expunge_of_only_our_mail(app, mailbox):
    server, user, password, settings, secrets = mailbox
    server.append(user, password, fixture("docomo_sjis"))
    server.append(user, password, fixture("au_split_subject"), flags="(\\Deleted)")  # a person's choice
    imap = mb.connect_imap(settings, secrets)
    try:
        imap.select("INBOX")
        imap.capabilities = tuple(c for c in imap.capabilities if c != "MOVE")  # an older server
        report = mb.PollReport(0)
        assert mb._move(imap, "1", "Imported", report)
        mb._expunge(imap, report.copied, whole_folder_ok=False)
    finally:
        imap.logout()
    assert server.uids(user, password) == [b"2"]  # the person's deleted mail was not purged
    assert len(server.uids(user, password, "Imported")) == 1
