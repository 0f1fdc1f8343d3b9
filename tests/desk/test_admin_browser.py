"""An admin changes what an agent may see while the agent's desk is open, in headless
Chromium: the open page follows at once, without a reload."""

from __future__ import annotations

import pytest
import requests

from helpdesk.models import Role
from tests import factories as f
from tests.live import chromium, live_server, open_desk_page

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread")]


def test_open_desk_follows_membership_and_deactivation(app, tmp_path):
    a, b = f.inbox(kind="test", name="受信箱A"), f.inbox(kind="test", name="受信箱B")
    agent = f.agent(inboxes=[a, b], name="田中")
    admin = f.agent(role=Role.admin, name="管理者")
    tokens = {a.id: f.api_token(a), b.id: f.api_token(b)}
    with live_server(app) as server, chromium() as browser:
        def post(inbox, external_id: str, text: str) -> int:
            resp = requests.post(server.url + "/api/v1/messages", json={
                "external_id": external_id, "user_id": external_id, "text": text},
                headers={"Authorization": f"Bearer {tokens[inbox.id]}"})
            assert resp.status_code == 201
            return resp.json()["ticket_id"]

        desk = open_desk_page(browser, server, agent.email, f.PASSWORD)
        desk.wait_for_selector("body[data-live=ready]")
        seen = post(a, "a-1", "Aへの問い合わせ")
        desk.wait_for_selector(f'tr[data-ticket-id="{seen}"]', timeout=5000)

        # The admin takes the agent off inbox A, through the admin page.
        console = open_desk_page(browser, server, admin.email, f.PASSWORD)
        console.goto(f"{server.url}/admin/inboxes/{a.id}")
        console.uncheck(f'input[name=members][value="{agent.id}"]')
        console.click("form.admin-form button[type=submit]")
        console.wait_for_selector(".flash.ok")
        console.screenshot(path=str(tmp_path / "admin-inbox.png"))

        # The open desk reconnected into its new rooms: B still arrives live, A no longer does.
        hidden = post(a, "a-2", "Aへの二通目")
        shown = post(b, "b-1", "Bへの問い合わせ")
        desk.wait_for_selector(f'tr[data-ticket-id="{shown}"]', timeout=10000)
        assert desk.locator(f'tr[data-ticket-id="{hidden}"]').count() == 0
        desk.screenshot(path=str(tmp_path / "desk-after.png"))

        # Deactivated: the open desk goes to the login page by itself.
        console.goto(f"{server.url}/admin/agents/{agent.id}")
        console.uncheck("input[name=active]")
        console.click("form.admin-form button[type=submit]")
        console.wait_for_selector(".flash.ok")
        desk.wait_for_url("**/login**", timeout=10000)
        assert desk.errors == [] and console.errors == []


def test_deleting_a_team_asks_first_and_shows_its_name_as_text(app, tmp_path):
    from helpdesk.extensions import db
    from helpdesk.models import Team

    team_id = f.team(name='<b>サポート&"一次"</b>').id
    admin = f.agent(role=Role.admin, name="管理者")
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, admin.email, f.PASSWORD)
        page.goto(f"{server.url}/admin/teams/{team_id}")
        asked: list[str] = []

        def answer(accept: bool):
            def on_dialog(dialog):
                asked.append(dialog.message)
                dialog.accept() if accept else dialog.dismiss()
            return on_dialog

        page.once("dialog", answer(False))
        page.click("button.danger")
        page.wait_for_timeout(300)  # a dismissed dialog submits nothing: nothing to wait for
        assert asked == ['チーム「<b>サポート&"一次"</b>」を削除しますか？']
        assert page.url.endswith(f"/admin/teams/{team_id}")
        db.session.expire_all()
        assert db.session.get(Team, team_id) is not None

        page.once("dialog", answer(True))
        page.click("button.danger")
        page.wait_for_selector(".flash.ok")
        page.screenshot(path=str(tmp_path / "team-deleted.png"))
        assert "<b>サポート" in page.inner_text(".flash.ok")  # as text, not markup
        assert page.locator(".flash.ok b").count() == 0
        db.session.expire_all()
        assert db.session.get(Team, team_id) is None
        assert page.errors == []
