"""Admin changes to what exists: inboxes (members, team, active, settings, secrets), agents
(role, active, teams, password), canned replies and API tokens; and that a change of what
an agent may see reaches their open pages at once."""

from __future__ import annotations

import html
import json

import pytest
from sqlalchemy import func, select

from helpdesk.extensions import db, socketio
from helpdesk.models import Agent, ApiToken, AuditLog, CannedReply, Inbox, Role, Team
from helpdesk.models.inbox import inbox_members
from helpdesk.services.ingest import ingest
from tests import factories as f
from tests.conftest import csrf_token, login


@pytest.fixture
def admin(app, client):
    admin = f.agent(role=Role.admin, name="管理 太郎")
    login(client, admin.email)
    return admin


def post(client, path: str, data: dict, page: str | None = None):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, page or path)})


def inbox_form(inbox: Inbox, **changes) -> dict:
    data = {"name": inbox.name, "team_id": str(inbox.team_id or ""), "settings": json.dumps(inbox.settings or {}),
            "secrets": "", "active": "y" if inbox.active else "", "members": [str(a.id) for a in inbox.members]}
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}  # an unticked box is not sent at all


def agent_form(agent: Agent, **changes) -> dict:
    data = {"name": agent.name, "email": agent.email, "role": agent.role.value, "active": "y" if agent.active else "",
            "teams": [str(t.id) for t in agent.teams], "password": ""}
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def audit_actions() -> list[tuple[str, dict]]:
    return [(a.action, a.changes) for a in db.session.scalars(select(AuditLog).order_by(AuditLog.id))]


def agent_with_page(app, inbox):
    """An agent of the inbox, logged in, with the desk's socket connected: (agent, client, socket)."""
    agent = f.agent(inboxes=[inbox])
    agent_client = app.test_client()
    login(agent_client, agent.email)
    sio = socketio.test_client(app, namespace="/agent", flask_test_client=agent_client)
    assert sio.is_connected("/agent")
    return agent, agent_client, sio


# ---- inboxes --------------------------------------------------------------------------------

def test_inbox_page_shows_where_messages_come_from_and_masks_secrets(app, client, admin):
    line = f.inbox(kind="line", name="LINE公式", secrets={"channel_secret": "abcdef123456"})
    html = client.get(f"/admin/inboxes/{line.id}").get_data(as_text=True)
    assert f"/webhooks/line/{line.key}</code>" in html
    assert "abcdef123456" not in html and "3456" in html
    chat = f.inbox(kind="chat")
    html = client.get(f"/admin/inboxes/{chat.id}").get_data(as_text=True)
    assert f'data-inbox=&#34;{chat.key}&#34;' in html  # the script tag as text, to copy
    assert client.get("/admin/inboxes/99999").status_code == 404


def test_an_email_inbox_signature_is_edited_as_text_and_kept_in_its_settings(app, client, admin):
    mail = f.inbox(kind="email", name="サポート窓口", settings={"address": "support@example.jp"})
    page = client.get(f"/admin/inboxes/{mail.id}").get_data(as_text=True)
    assert 'name="signature"' in page
    signature = "━━━━━━━━\r\n株式会社サンプル カスタマーサポート\r\n{agent}\r\n━━━━━━━━"
    resp = post(client, f"/admin/inboxes/{mail.id}", inbox_form(mail, signature=signature))
    assert resp.status_code == 302
    db.session.expire_all()
    assert mail.settings == {"address": "support@example.jp",
                             "signature": "━━━━━━━━\n株式会社サンプル カスタマーサポート\n{agent}\n━━━━━━━━"}
    assert ("inbox.update", {"settings": mail.settings}) in [
        (action, {k: v for k, v in changes.items() if k == "settings"}) for action, changes in audit_actions()]
    # shown in its own field again, not inside the JSON
    page = client.get(f"/admin/inboxes/{mail.id}").get_data(as_text=True)
    assert "株式会社サンプル カスタマーサポート\n{agent}" in page.split('name="signature"')[1].split("</textarea>")[0]
    assert "signature" not in page.split('name="settings"')[1].split("</textarea>")[0]
    # emptied: gone from the settings
    post(client, f"/admin/inboxes/{mail.id}", inbox_form(mail, signature="  "))
    db.session.expire_all()
    assert mail.settings == {"address": "support@example.jp"}
    # other channels have no such field, and their settings JSON is kept as given
    line = f.inbox(kind="line", settings={"signature": "JSONのまま"})
    assert 'name="signature"' not in client.get(f"/admin/inboxes/{line.id}").get_data(as_text=True)
    post(client, f"/admin/inboxes/{line.id}", inbox_form(line))
    db.session.expire_all()
    assert line.settings == {"signature": "JSONのまま"}


def test_adding_a_member_lets_the_agent_see_the_inbox(app, client, admin):
    inbox = f.inbox()
    agent = f.agent()
    ticket = ingest(inbox, f.inbound()).message.ticket
    resp = post(client, f"/admin/inboxes/{inbox.id}", inbox_form(inbox, members=[str(agent.id)]))
    assert resp.status_code == 302
    db.session.expire_all()
    assert [a.id for a in inbox.members] == [agent.id]
    other = app.test_client()
    login(other, agent.email)
    assert other.get(f"/agent/tickets/{ticket.id}").status_code == 200
    post(client, f"/admin/inboxes/{inbox.id}", inbox_form(inbox, members=[]))
    assert other.get(f"/agent/tickets/{ticket.id}").status_code == 403
    assert [a for a, _ in audit_actions()] == ["inbox.update", "inbox.update"]
    assert audit_actions()[0][1] == {"members": [agent.id]}


def test_secrets_merge_and_are_audited_by_name_only(app, client, admin):
    inbox = f.inbox(kind="line", secrets={"channel_secret": "old-secret", "channel_token": "old-token"})
    post(client, f"/admin/inboxes/{inbox.id}", inbox_form(inbox, secrets='{"channel_token": "new-token"}'))
    db.session.expire_all()
    assert inbox.secrets == {"channel_secret": "old-secret", "channel_token": "new-token"}
    post(client, f"/admin/inboxes/{inbox.id}", inbox_form(inbox, secrets='{"channel_secret": null}'))
    db.session.expire_all()
    assert inbox.secrets == {"channel_token": "new-token"}
    post(client, f"/admin/inboxes/{inbox.id}", inbox_form(inbox))  # secrets left empty: kept
    db.session.expire_all()
    assert inbox.secrets == {"channel_token": "new-token"}
    logged = json.dumps([c for _, c in audit_actions()])
    assert "new-token" not in logged and "old-secret" not in logged
    assert audit_actions()[0][1] == {"secrets": ["channel_token"]}


def test_bad_settings_json_saves_nothing(app, client, admin):
    inbox = f.inbox(name="元の名前", settings={"platform": "messenger"})
    resp = post(client, f"/admin/inboxes/{inbox.id}", inbox_form(inbox, name="新しい名前", settings="[1, 2",
                                                                  secrets='{"app_secret": "typed-secret-1"}'))
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert "JSON" in html
    assert "typed-secret-1" not in html  # not echoed back into the page
    db.session.expire_all()
    assert (inbox.name, inbox.settings) == ("元の名前", {"platform": "messenger"})
    assert audit_actions() == []


def test_an_inbox_with_a_team_that_no_longer_exists_is_refused(app, client, admin):
    # An admin deleted the team in another tab, then saved a form opened before.
    resp = post(client, "/admin/inboxes", {"name": "新しい窓口", "kind": "api", "settings": "{}", "team_id": "999"},
                page="/admin/")
    assert resp.status_code == 302
    assert "受信箱を保存できませんでした: チーム: そのチームはありません。" in client.get("/admin/").get_data(as_text=True)
    assert db.session.scalar(select(Inbox).where(Inbox.name == "新しい窓口")) is None
    inbox = f.inbox(kind="api", name="API連携")
    resp = post(client, f"/admin/inboxes/{inbox.id}", inbox_form(inbox, team_id="999"))
    assert resp.status_code == 400 and "そのチームはありません。" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert inbox.team_id is None and audit_actions() == []


def test_deactivated_inbox_refuses_api_posts(app, client, admin):
    inbox = f.inbox(kind="api")
    token = f.api_token(inbox)
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert api.post("/api/v1/messages", json={"external_id": "1", "user_id": "u", "text": "こんにちは"},
                    headers=headers).status_code == 201
    post(client, f"/admin/inboxes/{inbox.id}", inbox_form(inbox, active=""))
    resp = api.post("/api/v1/messages", json={"external_id": "2", "user_id": "u", "text": "こんにちは"},
                    headers=headers)
    assert resp.status_code == 401 and resp.get_json()["error"] == "inbox disabled"


# ---- live pages follow access changes ---------------------------------------------------------

def test_removed_member_stops_hearing_the_inbox_at_once(app, client, admin):
    inbox = f.inbox()
    _, agent_client, sio = agent_with_page(app, inbox)
    post(client, f"/admin/inboxes/{inbox.id}", inbox_form(inbox, members=[]))
    assert not sio.is_connected("/agent")  # dropped: the page reconnects into its new rooms
    sio = socketio.test_client(app, namespace="/agent", flask_test_client=agent_client)
    assert sio.is_connected("/agent")
    ingest(inbox, f.inbound(text="もう見えない"))
    assert [e for e in sio.get_received("/agent") if e["name"] == "message.created"] == []


def test_unchanged_access_keeps_pages_connected(app, client, admin):
    inbox = f.inbox()
    _, _, sio = agent_with_page(app, inbox)
    post(client, f"/admin/inboxes/{inbox.id}", inbox_form(inbox, name="名前だけ変更"))
    assert sio.is_connected("/agent")


# ---- agents -----------------------------------------------------------------------------------

def test_deactivated_agent_is_logged_out_and_disconnected(app, client, admin):
    agent, agent_client, sio = agent_with_page(app, f.inbox())
    assert agent_client.get("/agent/").status_code == 200
    assert post(client, f"/admin/agents/{agent.id}", agent_form(agent, active="")).status_code == 302
    assert not sio.is_connected("/agent")
    assert agent_client.get("/agent/").status_code == 302  # to the login page
    assert agent_client.get("/api/v1/events/latest").status_code == 401
    db.session.expire_all()  # socket handlers run in this test's context; a server's are fresh each time
    again = socketio.test_client(app, namespace="/agent", flask_test_client=agent_client)
    assert not again.is_connected("/agent")
    assert login(app.test_client(), agent.email).status_code == 401  # refused, as a wrong password is


def test_agent_role_teams_and_password_change(app, client, admin):
    team = f.team(name="一次対応")
    inbox = f.inbox(team_id=team.id)
    agent = f.agent(email="sato@example.com")
    ticket = ingest(inbox, f.inbound()).message.ticket
    resp = post(client, f"/admin/agents/{agent.id}",
                agent_form(agent, teams=[str(team.id)], role="supervisor", password="new password 123"))
    assert resp.status_code == 302
    db.session.expire_all()
    assert agent.role is Role.supervisor and [t.name for t in agent.teams] == ["一次対応"]
    assert agent.check_password("new password 123")
    other = app.test_client()
    assert login(other, agent.email, "new password 123").status_code == 302
    post(client, f"/admin/agents/{agent.id}", agent_form(agent, password="third password 1"))
    assert other.get("/agent/").status_code == 302  # the session made with the old password ended
    assert login(other, agent.email, "third password 1").status_code == 302
    assert other.get(f"/agent/tickets/{ticket.id}").status_code == 200
    (action, changes), _second = audit_actions()
    assert action == "agent.update"
    assert changes == {"role": "supervisor", "teams": [team.id], "password": "changed"}
    assert "new password" not in json.dumps(changes)


def test_a_team_or_member_that_is_not_offered_is_refused_in_the_ui_language(app, client, admin):
    agent, team = f.agent(), f.team(name="一次対応")
    resp = post(client, f"/admin/agents/{agent.id}", agent_form(agent, teams=["999"]))
    page = html.unescape(resp.get_data(as_text=True))
    assert resp.status_code == 400 and "チーム: 選択肢にない値です: '999'" in page
    resp = post(client, f"/admin/teams/{team.id}", {"name": team.name, "members": ["999"]})
    page = html.unescape(resp.get_data(as_text=True))
    assert resp.status_code == 400 and "メンバー: 選択肢にない値です: '999'" in page
    client.get("/admin/?lang=en")
    resp = post(client, f"/admin/agents/{agent.id}", agent_form(agent, teams=["999"]))
    assert "Teams: Not one of the choices: '999'" in html.unescape(resp.get_data(as_text=True))
    db.session.expire_all()
    assert agent.teams == [] and team.members == []


def test_last_admin_cannot_be_demoted_or_deactivated(app, client, admin):
    for change in ({"role": "agent"}, {"active": ""}):
        resp = post(client, f"/admin/agents/{admin.id}", agent_form(admin, **change))
        assert resp.status_code == 400
        assert "最後の有効な管理者" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert admin.role is Role.admin and admin.active
    second = f.agent(role=Role.admin)
    assert post(client, f"/admin/agents/{second.id}", agent_form(second, role="agent")).status_code == 302


def test_agent_email_must_stay_unique(app, client, admin):
    f.agent(email="taken@example.com")
    agent = f.agent()
    resp = post(client, f"/admin/agents/{agent.id}", agent_form(agent, email="Taken@example.com"))
    assert resp.status_code == 400
    db.session.expire_all()
    assert agent.email != "taken@example.com"


def test_only_admins_may_change_things(app, client):
    sup = f.agent(role=Role.supervisor)
    inbox = f.inbox()
    login(client, sup.email)
    token = csrf_token(client, "/agent/")
    assert client.get(f"/admin/inboxes/{inbox.id}").status_code == 403
    assert client.post(f"/admin/inboxes/{inbox.id}", data={"name": "x", "csrf_token": token}).status_code == 403
    assert client.post(f"/admin/agents/{sup.id}", data={"name": "x", "role": "admin", "active": "y",
                                                        "email": sup.email, "csrf_token": token}).status_code == 403
    db.session.expire_all()
    assert sup.role is Role.supervisor


def test_changes_without_csrf_are_refused(app, client, admin):
    agent = f.agent()
    resp = client.post(f"/admin/agents/{agent.id}", data=agent_form(agent, role="admin"))
    assert resp.status_code == 400
    db.session.expire_all()
    assert agent.role is Role.agent


# ---- teams ------------------------------------------------------------------------------------

def team_form(team, **changes) -> dict:
    data = {"name": team.name, "members": [str(a.id) for a in team.members]}
    data.update(changes)
    return data


def test_team_rename_and_members_follow_to_the_open_desk(app, client, admin):
    from helpdesk.models import Ticket

    support = f.team(name="サポート")
    inbox = f.inbox(team_id=support.id)
    other = f.inbox()
    agent, agent_client, sio = agent_with_page(app, other)  # sees `other` only, not the team's inbox
    assert agent_client.get("/admin/teams/%d" % support.id).status_code == 403
    page = client.get(f"/admin/teams/{support.id}").get_data(as_text=True)
    assert inbox.name in page and "サポート" in page

    resp = post(client, f"/admin/teams/{support.id}", team_form(support, name="一次対応", members=[str(agent.id)]))
    assert resp.status_code == 302
    db.session.expire_all()
    assert support.name == "一次対応" and [a.id for a in support.members] == [agent.id]
    assert not sio.is_connected("/agent")  # its page reconnects into the team's inbox room
    sio = socketio.test_client(app, namespace="/agent", flask_test_client=agent_client)
    ticket_id = ingest(inbox, f.inbound(text="チーム宛のお問い合わせ")).message.ticket_id
    assert [e["args"][0]["ticket_id"] for e in sio.get_received("/agent") if e["name"] == "message.created"] \
        == [ticket_id]
    assert agent_client.get(f"/agent/tickets/{ticket_id}").status_code == 200
    assert db.session.get(Ticket, ticket_id).team_id == support.id

    # A rename alone changes no one's sight: open pages stay connected.
    assert post(client, f"/admin/teams/{support.id}", team_form(support, name="一次対応チーム")).status_code == 302
    assert sio.is_connected("/agent")
    assert audit_actions() == [("team.update", {"name": "一次対応", "members": [agent.id]}),
                               ("team.update", {"name": "一次対応チーム"})]


def test_team_names_stay_unique(app, client, admin):
    f.team(name="請求")
    billing2 = f.team(name="請求2")
    resp = post(client, f"/admin/teams/{billing2.id}", team_form(billing2, name="請求"))
    assert resp.status_code == 400 and "この名前のチームはすでに存在します。" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert billing2.name == "請求2"


def test_a_team_name_with_spaces_around_it_is_no_new_team(app, client, admin):
    f.team(name="一次対応")
    post(client, "/admin/teams", {"name": "一次対応 "}, page="/admin/")
    assert "この名前のチームはすでに存在します。" in client.get("/admin/").get_data(as_text=True)
    post(client, "/admin/teams", {"name": "　請求 "}, page="/admin/")  # a full-width space too
    assert sorted(t.name for t in db.session.scalars(select(Team))) == ["一次対応", "請求"]
    billing = db.session.scalar(select(Team).where(Team.name == "請求"))
    resp = post(client, f"/admin/teams/{billing.id}", team_form(billing, name=" 一次対応"))
    assert resp.status_code == 400 and "この名前のチームはすでに存在します。" in resp.get_data(as_text=True)


def test_deleting_a_team_keeps_its_inboxes_tickets_and_agents(app, client, admin):
    from helpdesk.models import Team, Ticket

    team = f.team(name="解散するチーム")
    inbox = f.inbox(team_id=team.id)
    ticket_id = ingest(inbox, f.inbound(text="未解決のお問い合わせ")).message.ticket_id
    db.session.commit()
    agent = f.agent()
    team.members.append(agent)
    db.session.commit()
    agent_client = app.test_client()
    login(agent_client, agent.email)
    sio = socketio.test_client(app, namespace="/agent", flask_test_client=agent_client)
    assert agent_client.get(f"/agent/tickets/{ticket_id}").status_code == 200
    page = client.get(f"/admin/teams/{team.id}").get_data(as_text=True)
    assert "data-confirm=" in page  # the browser asks first (tests/desk/test_admin_browser.py)

    assert post(client, f"/admin/teams/{team.id}/delete", {}, page=f"/admin/teams/{team.id}").status_code == 302
    db.session.expire_all()
    assert db.session.scalars(select(Team)).all() == []
    assert db.session.get(Inbox, inbox.id).team_id is None
    assert db.session.get(Ticket, ticket_id).team_id is None
    assert db.session.get(Agent, agent.id).active
    assert not sio.is_connected("/agent")  # the team's inbox is out of sight now
    assert agent_client.get(f"/agent/tickets/{ticket_id}").status_code == 403
    assert audit_actions()[-1] == ("team.delete", {"name": "解散するチーム", "members": [agent.id],
                                                   "inboxes": [inbox.id], "open_tickets": 1})


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_an_inbox_nobody_wrote_to_can_be_deleted_one_with_tickets_cannot(app, client, admin):
    from helpdesk.models import Ticket

    mistake, used = f.inbox(name="試し<b>用</b>"), f.inbox(name="本番")
    row, token = ApiToken.issue("試し", mistake.id)
    db.session.add(row)
    agent = f.agent(inboxes=[mistake, used])
    ticket_id = ingest(used, f.inbound(text="注文の件です")).message.ticket_id
    db.session.commit()
    mistake_id, kind = mistake.id, mistake.kind
    page = client.get(f"/admin/inboxes/{used.id}").get_data(as_text=True)
    assert f'action="/admin/inboxes/{used.id}/delete"' not in page and "1 件のチケット" in page
    page = client.get(f"/admin/inboxes/{mistake.id}").get_data(as_text=True)
    assert f'action="/admin/inboxes/{mistake.id}/delete"' in page and "data-confirm=" in page
    assert "試し&lt;b&gt;用&lt;/b&gt;" in page and "試し<b>用</b>" not in page

    # One with tickets is refused, even when asked directly: nothing of it goes.
    resp = post(client, f"/admin/inboxes/{used.id}/delete", {}, page=f"/admin/inboxes/{used.id}")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/admin/inboxes/{used.id}")
    assert "削除できません" in client.get(resp.headers["Location"]).get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Inbox, used.id) is not None and db.session.get(Ticket, ticket_id) is not None

    resp = post(client, f"/admin/inboxes/{mistake_id}/delete", {}, page=f"/admin/inboxes/{mistake_id}")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/admin/")
    db.session.expire_all()
    assert db.session.get(Inbox, mistake_id) is None
    assert db.session.scalars(select(ApiToken).where(ApiToken.inbox_id == mistake_id)).all() == []
    assert [a.id for a in db.session.get(Inbox, used.id).members] == [agent.id]
    assert db.session.scalar(select(func.count()).select_from(inbox_members)) == 1  # theirs of the other went
    assert audit_actions()[-1] == ("inbox.delete", {"name": "試し<b>用</b>", "kind": kind})
    # its token no longer posts anything, and the inbox is gone for good
    api = client.post("/api/v1/messages", headers={"Authorization": f"Bearer {token}"},
                      json={"external_id": "x", "user_id": "u", "text": "届く？"})
    assert api.status_code == 401
    assert post(client, f"/admin/inboxes/{mistake_id}/delete", {}, page="/admin/").status_code == 404


# ---- canned replies and tokens ---------------------------------------------------------------

def test_canned_reply_edit_and_delete(app, client, admin):
    db.session.add_all([CannedReply(shortcut="thanks", title="お礼", body="ありがとうございました"),
                        CannedReply(shortcut="sorry", title="お詫び", body="申し訳ございません")])
    db.session.commit()
    thanks, sorry = db.session.scalars(select(CannedReply).order_by(CannedReply.shortcut.desc())).all()
    data = {"shortcut": "thanks", "title": "お礼", "body": "{customer}様、ありがとうございました"}
    assert post(client, f"/admin/canned/{thanks.id}", data).status_code == 302
    db.session.expire_all()
    assert thanks.body == "{customer}様、ありがとうございました"
    clash = post(client, f"/admin/canned/{thanks.id}", {**data, "shortcut": "sorry"})
    assert clash.status_code == 400
    assert post(client, f"/admin/canned/{sorry.id}/delete", {}, page=f"/admin/canned/{sorry.id}").status_code == 302
    assert [c.shortcut for c in db.session.scalars(select(CannedReply))] == ["thanks"]
    assert [a for a, _ in audit_actions()] == ["canned.update", "canned.delete"]


def test_revoked_token_is_refused(app, client, admin):
    inbox = f.inbox(kind="api")
    secret = f.api_token(inbox)
    row = db.session.scalar(select(ApiToken))
    api = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"external_id": "1", "user_id": "u", "text": "テスト"}
    assert api.post("/api/v1/messages", json=body, headers=headers).status_code == 201
    html = client.get("/admin/").get_data(as_text=True)
    assert f'data-token-id="{row.id}"' in html and inbox.name in html
    assert "<th></th>" not in html  # every column named, for a screen reader too (axe: empty-table-header)
    assert post(client, f"/admin/tokens/{row.id}/revoke", {}, page="/admin/").status_code == 302
    resp = api.post("/api/v1/messages", json={**body, "external_id": "2"}, headers=headers)
    assert resp.status_code == 401
    db.session.expire_all()
    assert row.revoked
    assert [a for a, _ in audit_actions()] == ["token.revoke"]


def test_canned_shortcuts_are_kept_without_the_slash_they_are_shown_with(app, client, admin):
    canned = {"title": "お詫び", "body": "申し訳ございません"}
    post(client, "/admin/canned", {**canned, "shortcut": " /sorry "}, page="/admin/")
    assert "定型文を保存しました。" in client.get("/admin/").get_data(as_text=True)
    for typed in ("/sorry", "sorry ", "//sorry"):
        post(client, "/admin/canned", {**canned, "shortcut": typed}, page="/admin/")
        assert "このショートカットの定型文はすでに存在します。" in client.get("/admin/").get_data(as_text=True)
    post(client, "/admin/canned", {**canned, "shortcut": "/"}, page="/admin/")
    assert "ショートカット: " in client.get("/admin/").get_data(as_text=True)  # nothing left of it
    post(client, "/admin/canned", {**canned, "shortcut": "/thanks", "title": "お礼"}, page="/admin/")
    thanks = db.session.scalar(select(CannedReply).where(CannedReply.shortcut == "thanks"))
    resp = post(client, f"/admin/canned/{thanks.id}", {**canned, "shortcut": "/sorry "})
    assert resp.status_code == 400 and "このショートカットの定型文はすでに存在します。" in resp.get_data(as_text=True)
    assert post(client, f"/admin/canned/{thanks.id}", {**canned, "shortcut": "/thanks2"}).status_code == 302
    db.session.expire_all()
    assert sorted(c.shortcut for c in db.session.scalars(select(CannedReply))) == ["sorry", "thanks2"]


def test_creating_a_canned_reply_is_audited(app, client, admin):
    post(client, "/admin/canned", {"shortcut": "thanks", "title": "お礼", "body": "ありがとうございました"},
         page="/admin/")
    canned = db.session.scalar(select(CannedReply))
    log = db.session.scalar(select(AuditLog))
    assert (log.action, log.object_type, log.object_id, log.changes, log.agent_id) == (
        "canned.create", "canned_reply", canned.id, {"shortcut": "thanks"}, admin.id)


def test_api_tokens_are_issued_for_api_inboxes_only(app, client, admin):
    mail = f.inbox(kind="email", name="サポートメール")
    assert 'id="no-api-inbox"' in client.get("/admin/").get_data(as_text=True)
    api = f.inbox(kind="api", name="API連携")
    page = client.get("/admin/").get_data(as_text=True)
    offered = page.split('name="inbox_id"')[1].split("</select>")[0]
    assert "API連携" in offered and "サポートメール" not in offered
    # A token for the email inbox could never post (that channel takes raw mail): refused.
    resp = post(client, "/admin/tokens", {"name": "crm", "inbox_id": str(mail.id)}, page="/admin/")
    assert resp.status_code == 302
    assert "トークンを発行できませんでした: 受信箱: API チャネルの受信箱を選んでください。" \
        in client.get("/admin/").get_data(as_text=True)
    assert db.session.scalar(select(ApiToken)) is None
    post(client, "/admin/tokens", {"name": "crm", "inbox_id": str(api.id)}, page="/admin/")
    assert [t.inbox_id for t in db.session.scalars(select(ApiToken))] == [api.id]


def test_the_admin_page_has_each_id_once(app, client, admin):
    """Five forms on one page each rendered id="name" and id="csrf_token": a label or a script
    finding a field by id found the first form's."""
    import collections
    import re

    f.inbox(kind="api")
    html = client.get("/admin/").get_data(as_text=True)
    ids = collections.Counter(re.findall(r'(?<![\w-])id="([^"]+)"', html))
    assert ids and not {k: n for k, n in ids.items() if n > 1}


def test_names_are_kept_without_the_spaces_around_them(app, client, admin):
    """An inbox 「サポート窓口 」 beside 「サポート窓口」 looks like one listed twice; a name of
    spaces is no name."""
    post(client, "/admin/inboxes", {"name": "　サポート窓口 ", "kind": "api", "settings": "{}"}, page="/admin/")
    assert db.session.scalar(select(Inbox.name)) == "サポート窓口"
    post(client, "/admin/agents", {"name": " 佐藤 花子 ", "email": " sato@example.jp ", "password": "long-password-1",
                                   "role": "agent"}, page="/admin/")
    agent = db.session.scalar(select(Agent).where(Agent.email == "sato@example.jp"))
    assert agent is not None and agent.name == "佐藤 花子"
    resp = post(client, "/admin/inboxes", {"name": "   ", "kind": "api", "settings": "{}"}, page="/admin/")
    assert resp.status_code == 302 and db.session.scalar(select(func.count()).select_from(Inbox)) == 1
