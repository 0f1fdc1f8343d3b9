"""Rows that desk.js draws live carry the same labels as the server-rendered page, per language."""

from __future__ import annotations

import pytest
import requests

from tests import factories as f
from tests.live import chromium, live_server, open_desk_page

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread", SENTIMENT_ENABLED=False)]


@pytest.mark.parametrize("lang, labels", [
    ("ja", ["テスト", "新規", "通常"]),
    ("en", ["Test", "New", "Normal"]),
])
def test_live_inbox_row_shows_labels_not_codes(app, lang, labels):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox])
    token = f.api_token(inbox)
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.goto(server.url + f"/agent/?lang={lang}")
        page.wait_for_selector("body[data-live=ready]")
        resp = requests.post(server.url + "/api/v1/messages", headers={"Authorization": f"Bearer {token}"},
                             json={"external_id": "i18n-1", "user_id": "c-1", "name": "佐藤", "text": "届きません"})
        row = page.wait_for_selector(f'tr[data-ticket-id="{resp.json()["ticket_id"]}"]', timeout=5000)
        cells = [row.query_selector(sel).inner_text() for sel in (".badge.ch", "td.status", "td.priority")]
        assert cells == labels
        assert page.errors == []
