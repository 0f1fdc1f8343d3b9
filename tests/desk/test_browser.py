"""What an agent sees and clicks, in headless Chromium against a live server."""

from __future__ import annotations

import pytest
import requests

from tests import factories as f
from tests.live import chromium, live_server, log_in, open_desk_page

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread")]


def test_agent_sees_new_message_live_replies_and_sees_it_sent(app, tmp_path):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    token = f.api_token(inbox)
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.wait_for_selector("body[data-live=ready]")

        # A customer message arrives through the API while the inbox is open.
        resp = requests.post(server.url + "/api/v1/messages", headers={"Authorization": f"Bearer {token}"},
                             json={"external_id": "b-1", "user_id": "cust-1", "name": "佐藤",
                                   "text": "注文した商品がまだ届きません。<script>window.pwned=1</script>"})
        assert resp.status_code == 201
        ticket_id = resp.json()["ticket_id"]
        row = page.wait_for_selector(f'tr[data-ticket-id="{ticket_id}"]', timeout=5000)
        assert "佐藤" in row.inner_text()
        # The label lands without a reload: its event carries the ticket's new sentiment and priority.
        page.wait_for_selector(f'tr.prio-high[data-ticket-id="{ticket_id}"] td.sentiment .sent-negative',
                               timeout=60000)
        page.screenshot(path=str(tmp_path / "inbox.png"))

        # Open it, reply, and watch the delivery state turn to sent.
        # A locator, not the handle: the row is re-rendered when the sentiment label lands.
        page.locator(f'tr[data-ticket-id="{ticket_id}"] td.subject a').click()
        page.wait_for_selector("#thread")
        body = page.inner_text("#thread")
        assert "<script>window.pwned=1</script>" in body  # shown as text...
        assert page.evaluate("window.pwned") is None  # ...never executed
        page.fill("#reply-body", "ご不便をおかけしております。すぐに確認いたします。")
        page.click("#send-reply")
        page.wait_for_selector('.msg.dir-out .delivery[data-delivery="sent"]', timeout=10000)
        out = page.inner_text(".msg.dir-out")
        assert "すぐに確認いたします" in out and "送信済み" in out
        page.screenshot(path=str(tmp_path / "ticket.png"))
        assert page.errors == []


def test_agent_ticks_rows_and_changes_them_in_one_go(app, tmp_path):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    token = f.api_token(inbox)
    with live_server(app) as server, chromium() as browser:
        def post(i: int, user: str) -> int:
            resp = requests.post(server.url + "/api/v1/messages", headers={"Authorization": f"Bearer {token}"},
                                 json={"external_id": f"bulk-{i}", "user_id": user, "text": f"問い合わせ {i}"})
            return resp.json()["ticket_id"]

        first, second, third = post(1, "a"), post(2, "b"), post(3, "c")
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.wait_for_selector("body[data-live=ready]")
        page.check(f'tr[data-ticket-id="{first}"] td.pick input')
        page.check(f'tr[data-ticket-id="{second}"] td.pick input')
        assert page.inner_text("#bulk .bulk-count") == "2 件選択中"
        # A live update of a ticked row keeps it ticked.
        post(4, "a")
        # A function, not a bare expression: Playwright polls a bare expression with eval(),
        # which the desk's CSP (no 'unsafe-eval') refuses whenever the first check is false.
        page.wait_for_function(f'() => document.querySelector(\'tr[data-ticket-id="{first}"]\').classList.contains("fresh")')
        assert page.is_checked(f'tr[data-ticket-id="{first}"] td.pick input')
        page.select_option('#bulk select[name="status"]', "pending")
        page.select_option('#bulk select[name="assignee"]', "me")
        page.click("#bulk button[type=submit]")
        page.wait_for_selector(".flash")
        assert "2 件のチケットを更新しました" in page.inner_text(".flash")
        for ticket_id in (first, second):
            row = page.locator(f'tr[data-ticket-id="{ticket_id}"]')
            assert "保留中" in row.locator("td.status").inner_text()
            assert "田中" in row.locator("td.assignee").inner_text()
        assert "新規" in page.locator(f'tr[data-ticket-id="{third}"] td.status').inner_text()
        page.screenshot(path=str(tmp_path / "bulk.png"))
        assert page.errors == []


def test_canned_reply_fills_the_customer_name_and_send_resolves(app, tmp_path):
    from helpdesk.extensions import db
    from helpdesk.models import CannedReply

    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    db.session.add(CannedReply(shortcut="thanks", title="お礼", body="{customer} 様、担当の{agent}です。#{ticket}"))
    db.session.commit()
    token = f.api_token(inbox)
    with live_server(app) as server, chromium() as browser:
        resp = requests.post(server.url + "/api/v1/messages", headers={"Authorization": f"Bearer {token}"},
                             json={"external_id": "c-1", "user_id": "cust-1", "name": "佐藤", "text": "届きました"})
        ticket_id = resp.json()["ticket_id"]
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.goto(f"{server.url}/agent/tickets/{ticket_id}")
        page.wait_for_selector("body[data-live=ready]")
        page.select_option("#canned", index=1)
        assert page.input_value("#reply-body") == f"佐藤 様、担当の田中です。#{ticket_id}"
        page.select_option("#reply-then", "resolved")
        page.click("#send-reply")
        page.wait_for_selector('.status-badge[data-status="resolved"]', timeout=10000)
        assert page.inner_text(".status-badge") == "解決済み"
        # The live event can beat the POST's own answer: wait for that answer to clear the box.
        page.wait_for_function("() => !document.querySelector('#send-reply').disabled")
        assert page.input_value("#reply-then") == ""  # the box is ready for the next answer
        assert page.input_value("#reply-body") == ""
        page.screenshot(path=str(tmp_path / "resolved.png"))
        assert page.errors == []


@pytest.mark.config(JOBS="thread", SENTIMENT_ENABLED=False)  # no labelling's ticket.updated after it
def test_a_customer_answering_a_pending_ticket_reopens_it_on_every_open_page(app, tmp_path):
    """One event per customer message: message.created carries its ticket, and both the
    ticket page (its thread and its status) and the inbox row follow it without reload."""
    from helpdesk.extensions import db
    from helpdesk.models import Ticket
    from helpdesk.services.ingest import ingest
    from helpdesk.services.tickets import update_ticket

    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    colleague = f.agent(inboxes=[inbox], name="鈴木")
    token = f.api_token(inbox)
    ticket_id = ingest(inbox, f.inbound(user_id="cust-9", text="返品したいです")).message.ticket_id
    update_ticket(db.session.get(Ticket, ticket_id), agent, status="pending")  # waiting for the customer
    db.session.commit()
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        inbox_page = browser.new_context(locale="ja-JP").new_page()  # a colleague's screen: the whole inbox
        log_in(inbox_page, server, colleague.email, f.PASSWORD)
        inbox_page.goto(f"{server.url}/agent/?status=all")
        inbox_page.wait_for_selector("body[data-live=ready]")
        assert inbox_page.get_attribute(f'tr[data-ticket-id="{ticket_id}"] .status', "data-status") == "pending"
        page.goto(f"{server.url}/agent/tickets/{ticket_id}")
        page.wait_for_selector("body[data-live=ready]")
        assert page.get_attribute(".status-badge", "data-status") == "pending"

        resp = requests.post(server.url + "/api/v1/messages", headers={"Authorization": f"Bearer {token}"},
                             json={"external_id": "again-1", "user_id": "cust-9", "text": "やはり交換でお願いします"})
        assert resp.status_code == 201 and resp.json()["ticket_id"] == ticket_id
        page.wait_for_selector('.status-badge[data-status="open"]', timeout=10000)
        assert "やはり交換でお願いします" in page.inner_text("#thread")
        assert page.input_value("#status") == "open"
        inbox_page.wait_for_selector(f'tr[data-ticket-id="{ticket_id}"] .status[data-status="open"]', timeout=10000)
        assert page.errors == []


def test_agent_on_the_kept_ticket_is_told_when_a_duplicate_is_merged_in(app, tmp_path):
    from helpdesk.extensions import db
    from helpdesk.models import Ticket
    from helpdesk.services.ingest import ingest
    from helpdesk.services.tickets import merge_tickets

    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    keep = ingest(inbox, f.inbound(user_id="cust", text="注文が届きません")).message.ticket_id
    dup = ingest(inbox, f.inbound(user_id="cust", text="先ほどの件です", new_thread=True)).message.ticket_id
    assert keep != dup
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.goto(f"{server.url}/agent/tickets/{keep}")
        page.wait_for_selector("body[data-live=ready]")
        page.fill("#reply-body", "書きかけの返信")
        merge_tickets(db.session.get(Ticket, keep), db.session.get(Ticket, dup), agent)
        banner = page.wait_for_selector("#merged-banner", timeout=10000)
        assert "統合されました" in banner.inner_text()
        assert page.input_value("#reply-body") == "書きかけの返信"  # nothing reloaded under the agent's hands
        assert page.errors == []


def test_ctrl_enter_sends_but_not_while_the_ime_is_composing(app, tmp_path):
    from helpdesk.services.ingest import ingest

    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    ticket_id = ingest(inbox, f.inbound(user_id="cust", text="質問です")).message.ticket_id
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.goto(f"{server.url}/agent/tickets/{ticket_id}")
        page.wait_for_selector("body[data-live=ready]")
        page.fill("#reply-body", "かしこまりました")
        # Ctrl+Enter that confirms a kana-kanji conversion must not send the half-typed reply.
        page.evaluate("""() => document.getElementById('reply-body').dispatchEvent(new KeyboardEvent(
            'keydown', {key: 'Enter', ctrlKey: true, isComposing: true, bubbles: true, cancelable: true}))""")
        page.wait_for_timeout(500)
        assert page.locator(".msg.dir-out").count() == 0
        page.focus("#reply-body")
        page.keyboard.press("Control+Enter")
        page.wait_for_selector('.msg.dir-out .delivery[data-delivery="sent"]', timeout=10000)
        assert "かしこまりました" in page.inner_text(".msg.dir-out")
        assert page.input_value("#reply-body") == ""
        assert page.errors == []


def test_open_ticket_form_follows_a_colleagues_team_and_priority_change(app, tmp_path):
    from helpdesk.extensions import db
    from helpdesk.models import Ticket
    from helpdesk.services.tickets import update_ticket

    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    colleague = f.agent(inboxes=[inbox], name="同僚")
    billing = f.team(name="請求")
    token = f.api_token(inbox)
    with live_server(app) as server, chromium() as browser:
        resp = requests.post(server.url + "/api/v1/messages", headers={"Authorization": f"Bearer {token}"},
                             json={"external_id": "t-1", "user_id": "cust-1", "text": "請求書について"})
        ticket_id = resp.json()["ticket_id"]
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.goto(f"{server.url}/agent/tickets/{ticket_id}")
        page.wait_for_selector("body[data-live=ready]")
        assert page.input_value("#team") == ""
        update_ticket(db.session.get(Ticket, ticket_id), colleague, team_id=billing.id, priority="urgent")
        page.wait_for_function(f"() => document.querySelector('#team').value === '{billing.id}'", timeout=10000)
        assert page.input_value("#priority") == "urgent"
        assert page.locator("#team option:checked").inner_text() == "請求"
        page.screenshot(path=str(tmp_path / "team-moved.png"))
        assert page.errors == []


def test_a_reply_that_fails_says_so_live_in_japanese(app, tmp_path):
    inbox = f.inbox(kind="test", settings={"fail": "permanent"})
    agent = f.agent(inboxes=[inbox], name="田中")
    token = f.api_token(inbox)
    with live_server(app) as server, chromium() as browser:
        resp = requests.post(server.url + "/api/v1/messages", headers={"Authorization": f"Bearer {token}"},
                             json={"external_id": "fail-1", "user_id": "cust-1", "text": "届きません"})
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.goto(f"{server.url}/agent/tickets/{resp.json()['ticket_id']}")
        page.wait_for_selector("body[data-live=ready]")
        page.fill("#reply-body", "確認いたします。")
        page.click("#send-reply")
        page.wait_for_selector('.msg.dir-out .delivery[data-delivery="failed"]', timeout=10000)
        error = page.inner_text(".msg.dir-out .error")
        assert "お客様には届いていません" in error and "recipient blocked the account" in error
        assert page.get_attribute(".msg.dir-out .error .detail", "lang") == "en"
        assert page.errors == []
