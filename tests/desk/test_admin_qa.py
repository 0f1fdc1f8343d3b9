"""What a Japanese admin setting up the desk for the first time types: full-width input, secrets
pasted from a provider's console, ids that are not ids."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import Agent, CannedReply, Inbox, Role, Team
from tests import factories as f
from tests.conftest import login
from tests.desk.test_admin import inbox_form, post


@pytest.fixture
def admin(app, client):
    admin = f.agent(role=Role.admin, name="管理 花子")
    login(client, admin.email)
    return admin


def flashed(client, resp) -> str:
    assert resp.status_code in (302, 400)
    return (client.get(resp.headers["Location"]) if resp.status_code == 302 else resp).get_data(as_text=True)


@pytest.mark.parametrize("team_id", ["²", "9" * 30])
def test_a_team_id_that_is_no_row_id_is_refused_not_a_500(app, client, admin, team_id):
    resp = post(client, "/admin/inboxes", {"name": "LINE公式", "kind": "line", "team_id": team_id, "settings": "{}"},
                "/admin/")
    assert "そのチームはありません" in flashed(client, resp)
    assert db.session.scalar(select(Inbox)) is None
    inbox = f.inbox(kind="line")
    resp = post(client, f"/admin/inboxes/{inbox.id}", inbox_form(inbox, team_id=team_id))
    assert resp.status_code == 400 and "そのチームはありません" in resp.get_data(as_text=True)


@pytest.mark.parametrize("inbox_id", ["²", "9" * 30])
def test_a_token_inbox_id_that_is_no_row_id_is_refused_not_a_500(app, client, admin, inbox_id):
    f.inbox(kind="api")
    resp = post(client, "/admin/tokens", {"name": "CRM連携", "inbox_id": inbox_id}, "/admin/")
    assert "API チャネルの受信箱を選んでください" in flashed(client, resp)


def line_signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_a_line_secret_pasted_with_spaces_and_a_newline_still_verifies_webhooks(app, client, admin):
    pasted = json.dumps({"channel_secret": "0123456789abcdef \n", "channel_token": "\ttoken "})
    resp = post(client, "/admin/inboxes", {"name": "ＬＩＮＥ公式", "kind": "line", "settings": "{}",
                                          "secrets": pasted + "\n"}, "/admin/")
    assert resp.status_code == 302
    inbox = db.session.scalar(select(Inbox))
    assert inbox.secrets == {"channel_secret": "0123456789abcdef", "channel_token": "token"}
    body = json.dumps({"destination": "U0", "events": []}).encode()
    sent = client.post(f"/webhooks/line/{inbox.key}", data=body, content_type="application/json",
                       headers={"X-Line-Signature": line_signature("0123456789abcdef", body)})
    assert sent.status_code == 200
    # and when it is replaced later, on the inbox's page
    resp = post(client, f"/admin/inboxes/{inbox.id}", inbox_form(inbox, secrets='{"channel_secret": " newsecret9\\n"}'))
    assert resp.status_code == 302
    db.session.expire_all()
    assert inbox.secrets["channel_secret"] == "newsecret9"


def test_an_agent_email_typed_full_width_is_the_ascii_address(app, client, admin):
    resp = post(client, "/admin/agents", {"name": "山田　花子", "email": "ｙａｍａｄａ＠ｅｘａｍｐｌｅ．ｊｐ",
                                         "password": "correct horse battery", "role": "agent"}, "/admin/")
    assert "エージェントを作成しました" in flashed(client, resp)
    agent = db.session.scalar(select(Agent).where(Agent.name == "山田　花子"))
    assert agent.email == "yamada@example.jp"


def test_a_full_width_slash_is_no_part_of_a_canned_shortcut(app, client, admin):
    resp = post(client, "/admin/canned", {"shortcut": "／おわび", "title": "お詫び", "body": "{customer}様、申し訳ございません。"},
                "/admin/")
    assert resp.status_code == 302
    assert db.session.scalar(select(CannedReply.shortcut)) == "おわび"
    resp = post(client, "/admin/canned", {"shortcut": "/おわび", "title": "二つ目", "body": "本文"}, "/admin/")
    assert "このショートカットの定型文はすでに存在します" in flashed(client, resp)


def test_team_names_that_read_the_same_are_one_team(app, client, admin):
    post(client, "/admin/teams", {"name": "サポート"}, "/admin/")
    resp = post(client, "/admin/teams", {"name": "ｻﾎﾟｰﾄ"}, "/admin/")
    assert "この名前のチームはすでに存在します" in flashed(client, resp)
    other = Team(name="ＣＳ")
    db.session.add(other)
    db.session.commit()
    resp = post(client, f"/admin/teams/{other.id}", {"name": "サポート"})
    assert resp.status_code == 400 and "この名前のチームはすでに存在します" in resp.get_data(as_text=True)
    assert post(client, f"/admin/teams/{other.id}", {"name": "CS"}).status_code == 302  # its own name, half-width
    assert sorted(db.session.scalars(select(Team.name))) == ["CS", "サポート"]


def test_placeholders_typed_full_width_become_the_ones_the_desk_fills_in(app, client, admin):
    body = "｛customer｝様\n担当の{ａｇｅｎｔ}です。（受付番号｛ ticket ｝）{お名前}"
    resp = post(client, "/admin/canned", {"shortcut": "おれい", "title": "お礼", "body": body}, "/admin/")
    assert resp.status_code == 302
    assert db.session.scalar(select(CannedReply.body)) == "{customer}様\n担当の{agent}です。（受付番号{ticket}）{お名前}"


def test_a_short_secret_is_never_shown_whole(app, client, admin):
    inbox = f.inbox(kind="messenger", secrets={"app_secret": "pw1", "page_token": "EAAG-long-page-token-7890"})
    for page in ("/admin/", f"/admin/inboxes/{inbox.id}"):
        html = client.get(page).get_data(as_text=True)
        assert "pw1" not in html
        assert "7890" in html and "EAAG-long" not in html  # a long one still says which is saved


def test_an_inbox_name_that_reads_like_another_is_refused(app, client, admin):
    f.inbox(kind="line", name="LINE公式")
    resp = post(client, "/admin/inboxes", {"name": "ＬＩＮＥ公式", "kind": "line", "settings": "{}"}, "/admin/")
    assert "この名前の受信箱はすでに存在します" in flashed(client, resp)
    assert len(db.session.scalars(select(Inbox)).all()) == 1
    other = f.inbox(kind="email", name="サポートメール")
    resp = post(client, f"/admin/inboxes/{other.id}", inbox_form(other, name="line公式"))
    assert resp.status_code == 400 and "この名前の受信箱はすでに存在します" in resp.get_data(as_text=True)
    resp = post(client, f"/admin/inboxes/{other.id}", inbox_form(other, name="ｻﾎﾟｰﾄﾒｰﾙ"))  # its own name
    db.session.expire_all()
    assert resp.status_code == 302 and db.session.get(Inbox, other.id).name == "ｻﾎﾟｰﾄﾒｰﾙ"


def test_secrets_must_be_text(app, client, admin):
    resp = post(client, "/admin/inboxes", {"name": "LINE公式", "kind": "line", "settings": "{}",
                                          "secrets": json.dumps({"channel_secret": ["abc"]})}, "/admin/")
    assert "シークレットの値は文字列で指定してください" in flashed(client, resp)
    assert db.session.scalar(select(Inbox)) is None


def test_a_shortcut_with_a_space_is_refused(app, client, admin):
    resp = post(client, "/admin/canned", {"shortcut": "お 詫び", "title": "お詫び", "body": "申し訳ございません。"},
                "/admin/")
    assert "ショートカットに空白は使えません" in flashed(client, resp)
    assert db.session.scalar(select(CannedReply)) is None


@pytest.mark.parametrize("kind, settings, error", [
    ("email", {"address": "support-at-example.jp"}, "address: メールアドレスの形式ではありません"),
    ("email", {"address": "support@example.jp", "from_address": "サポート"}, "from_address: メールアドレス"),
    ("api", {"callback_url": "ftp//crm.example.jp/hook"}, "callback_url: http(s) の URL ではありません"),
    ("line", {"api_base": "api.line.me"}, "api_base: http(s) の URL ではありません"),
])
def test_a_setting_that_names_no_address_or_server_is_refused_when_saved(app, client, admin, kind, settings, error):
    resp = post(client, "/admin/inboxes", {"name": "新しい受信箱", "kind": kind, "settings": json.dumps(settings)},
                "/admin/")
    assert error in flashed(client, resp)
    assert db.session.scalar(select(Inbox)) is None
    inbox = f.inbox(kind=kind)
    resp = post(client, f"/admin/inboxes/{inbox.id}", inbox_form(inbox, settings=json.dumps(settings)))
    assert resp.status_code == 400 and error in resp.get_data(as_text=True)


def test_good_addresses_and_urls_are_saved(app, client, admin):
    settings = {"address": "support@example.jp", "callback_url": "https://crm.example.jp/hook"}
    resp = post(client, "/admin/inboxes", {"name": "API", "kind": "api", "settings": json.dumps(settings)}, "/admin/")
    assert resp.status_code == 302 and db.session.scalar(select(Inbox)).settings == settings


def test_the_audit_log_shows_who_changed_what_escaped_and_filtered(app, client, admin):
    from helpdesk.services.ingest import ingest
    from helpdesk.services.tickets import update_contact, update_ticket

    inbox = f.inbox(kind="test")
    colleague = f.agent(inboxes=[inbox], name="鈴木 一郎")
    ticket = ingest(inbox, f.inbound(user_id="a")).message.ticket
    update_ticket(ticket, colleague, status="pending", tags=["返金"])
    update_contact(ticket.contact, colleague, name="<script>alert(1)</script>山田", email=None, phone=None, note="")
    assert post(client, "/admin/teams", {"name": "一次対応"}, "/admin/").status_code == 302
    html = client.get("/admin/audit").get_data(as_text=True)
    assert "監査ログ" in html and "全3件" in html
    table = html[html.index('id="audit"'):]
    assert table.index('data-action="team.create"') < table.index('data-action="contact.update"') \
        < table.index('data-action="ticket.update"')  # newest first
    assert f'href="/agent/tickets/{ticket.id}"' in html and "鈴木 一郎" in html and "管理 花子" in html
    assert "返金" in html and "\\u" not in html  # Japanese as written
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    only = client.get(f"/admin/audit?agent={colleague.id}&action=ticket.update").get_data(as_text=True)
    only = only[only.index('id="audit"'):]
    assert 'data-action="ticket.update"' in only and 'data-action="contact.update"' not in only
    assert "全1件" in only
    assert client.get("/admin/audit?agent=²&page=abc").status_code == 200  # ignored, not a 500


@pytest.mark.parametrize("role", [Role.agent, Role.supervisor])
def test_only_admins_read_the_audit_log(app, client, role):
    login(client, f.agent(role=role).email)
    assert client.get("/admin/audit").status_code == 403


def _audit_rows(html: str) -> str:
    return html[html.index('id="audit"'):]


@pytest.mark.parametrize("locale, words", [
    ("ja", {"ticket.update": "チケットを更新", "contact.merge": "顧客を統合", "inbox.create": "受信箱を作成",
            "token.revoke": "APIトークンを失効", "canned.delete": "定型文を削除",
            "account.update": "自分のアカウントを更新"}),
    ("en", {"ticket.update": "Ticket updated", "contact.merge": "Customers merged", "inbox.create": "Inbox created",
            "token.revoke": "API token revoked", "canned.delete": "Canned reply deleted",
            "account.update": "Own account updated"}),
])
def test_the_audit_log_names_actions_and_records_in_words(app, client, locale, words):
    """Every action the desk writes reads as words in the page's language, in the table and the
    filter (whose value stays the code); a code of an older version shows as itself."""
    import re

    from flask_babel import force_locale

    from helpdesk.labels import AUDIT_ACTION_LABELS
    from helpdesk.models import AuditLog

    admin = f.agent(role=Role.admin, name="管理 花子", locale=locale)
    login(client, admin.email)
    written = set()
    for path in ("helpdesk/services/tickets.py", "helpdesk/views/admin.py", "helpdesk/views/auth.py"):
        with open(path, encoding="utf-8") as fh:
            written |= set(re.findall(r'audit\((?:current_user|agent), "([a-z_.]+)"', fh.read()))
    assert len(written) >= 17 and written <= AUDIT_ACTION_LABELS.keys()
    kinds = {"canned": "canned_reply", "token": "api_token", "account": "agent"}
    for code in sorted(written) + ["legacy.thing"]:
        kind = code.split(".")[0]
        db.session.add(AuditLog(agent_id=admin.id, action=code, object_type=kinds.get(kind, kind), object_id=1,
                                changes={}))
    db.session.commit()
    with app.test_request_context(), force_locale(locale):  # none of them left as its code
        assert all(str(AUDIT_ACTION_LABELS[code]) != code for code in written)
    html = client.get("/admin/audit").get_data(as_text=True)
    table = _audit_rows(html)
    form = html[:html.index('id="audit"')]
    for code, word in words.items():
        assert f'title="{code}">{word}</td>' in table
        assert f'<option value="{code}" >{word}</option>' in form
    assert '<option value="legacy.thing" >legacy.thing</option>' in form
    assert 'title="legacy.thing">legacy.thing</td>' in table
    assert "<code>" not in table
    objects = {"ja": ("受信箱 #1", "定型文 #1", "エージェント #1"), "en": ("Inbox #1", "Canned reply #1", "API token #1")}
    assert all(o in table for o in objects[locale])
    assert "canned_reply #" not in table and "api_token #" not in table


def test_the_audit_log_details_read_field_before_after_escaped(app, client, admin):
    from helpdesk.models import AuditLog
    from helpdesk.services.ingest import ingest
    from helpdesk.services.tickets import update_ticket

    inbox = f.inbox(kind="test")
    colleague = f.agent(inboxes=[inbox], name="鈴木 一郎")
    ticket = ingest(inbox, f.inbound(user_id="a")).message.ticket
    update_ticket(ticket, colleague, status="pending", priority="urgent", assignee_id=colleague.id,
                  tags=["返金", "<b>至急</b>"], subject="件名 & <i>新</i>")
    db.session.add(AuditLog(agent_id=admin.id, action="contact.merge", object_type="contact", object_id=5,
                            changes={"merged": 7, "identities": ["line:U1", "email:a@example.jp"]}))
    db.session.commit()
    table = _audit_rows(client.get("/admin/audit").get_data(as_text=True))
    assert '{"' not in table and "&#34;" not in table and "&quot;status" not in table  # no raw JSON
    assert '<dt title="status">ステータス</dt><dd><span class="old">新規</span> → <span class="new">保留中</span>' in table
    priority = table[table.index('<dt title="priority">優先度</dt>'):]
    assert priority.index('<span class="new">緊急</span>') < priority.index("</dd>")
    assert f'<span class="old">なし</span> → <span class="new">鈴木 一郎 (#{colleague.id})</span>' in table
    assert '<span class="new">&lt;b&gt;至急&lt;/b&gt;, 返金</span>' in table
    assert "件名 &amp; &lt;i&gt;新&lt;/i&gt;" in table and "<i>新</i>" not in table
    # a merge records what it merged, not before/after: a two-item list stays a list
    assert '<dt title="identities">チャネル別アカウント</dt><dd>line:U1, email:a@example.jp</dd>' in table
    assert '<dt title="merged">統合元</dt><dd>#7</dd>' in table


def test_the_audit_log_tells_an_inbox_switched_off_from_an_agent(app, client, admin):
    """An inbox's "active" takes messages; an agent's logs in (the inbox's once read as the latter)."""
    from helpdesk.models import AuditLog

    inbox, agent = f.inbox(kind="test"), f.agent()
    assert post(client, f"/admin/inboxes/{inbox.id}", inbox_form(inbox, active="")).status_code == 302
    db.session.add(AuditLog(agent_id=admin.id, action="agent.update", object_type="agent", object_id=agent.id,
                            changes={"active": False}))
    db.session.commit()
    table = _audit_rows(client.get("/admin/audit").get_data(as_text=True))
    assert '<dt title="active">有効（新しいメッセージを受け付ける）</dt><dd>いいえ</dd>' in table
    assert '<dt title="active">有効（ログインできる）</dt><dd>いいえ</dd>' in table
