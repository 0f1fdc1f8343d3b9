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
    assert table.index("team.create") < table.index("contact.update") < table.index("ticket.update")  # newest first
    assert f'href="/agent/tickets/{ticket.id}"' in html and "鈴木 一郎" in html and "管理 花子" in html
    assert "返金" in html and "\\u" not in html  # Japanese as written
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    only = client.get(f"/admin/audit?agent={colleague.id}&action=ticket.update").get_data(as_text=True)
    assert "ticket.update</code>" in only and "contact.update</code>" not in only and "全1件" in only
    assert client.get("/admin/audit?agent=²&page=abc").status_code == 200  # ignored, not a 500


@pytest.mark.parametrize("role", [Role.agent, Role.supervisor])
def test_only_admins_read_the_audit_log(app, client, role):
    login(client, f.agent(role=role).email)
    assert client.get("/admin/audit").status_code == 403
