"""The desk in Japanese (default) and English: labels for stored codes, whole sentences, and
WTForms' own validation messages in the UI language."""

from __future__ import annotations

import json
import re

import pytest

from helpdesk.models import Role
from helpdesk.services.ingest import ingest
from tests import factories as f
from tests.conftest import csrf_token, login

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)


def text_of(html: str, selector_re: str) -> str:
    """The inner HTML of the first element matching an opening-tag regex, whitespace collapsed."""
    m = re.search(selector_re + r"(.*?)</", html, re.S)
    assert m, f"nothing matches {selector_re}"
    return " ".join(m.group(1).split())


def desk_config(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="desk-config">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


# ---- login -------------------------------------------------------------------------------

@pytest.mark.parametrize("lang, label, email_error, required", [
    ("ja", "メールアドレス", "無効なメールアドレスです。", "このフィールドは必須です。"),
    ("en", "Email address", "Invalid email address.", "This field is required."),
])
def test_login_errors_in_the_ui_language(client, lang, label, email_error, required):
    page = client.get(f"/login?lang={lang}").get_data(as_text=True)
    assert f"<label>{label} <input" in page
    resp = client.post("/login", data={"email": "not-an-email", "password": "", "csrf_token": csrf_token(client)})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert f'<p class="field-error" role="alert">{email_error}</p>' in html
    assert f'<p class="field-error" role="alert">{required}</p>' in html


def test_address_label_and_channel_name_differ_in_japanese(app, client):
    inbox = f.inbox(kind="email")
    agent = f.agent(inboxes=[inbox])
    login(client, agent.email)
    ticket = ingest(inbox, f.inbound()).message.ticket
    html = client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert '<span class="badge ch ch-email">メール</span>' in html
    assert "<label>メールアドレス <input" in app.test_client().get("/login").get_data(as_text=True)


# ---- ticket: the reply box ------------------------------------------------------------------

@pytest.mark.parametrize("lang, sentence", [
    ("ja", '&lt;b&gt;佐藤&lt;/b&gt; 宛てに <span class="badge ch ch-email">メール</span> で返信'),
    ("en", 'Reply via <span class="badge ch ch-email">Email</span> to &lt;b&gt;佐藤&lt;/b&gt;'),
])
def test_reply_box_is_one_sentence_in_each_language(app, client, lang, sentence):
    inbox = f.inbox(kind="email")
    login(client, f.agent(inboxes=[inbox]).email)
    ticket = ingest(inbox, f.inbound(display_name="<b>佐藤</b>")).message.ticket
    html = client.get(f"/agent/tickets/{ticket.id}?lang={lang}").get_data(as_text=True)
    m = re.search(r'<span class="reply-via">(.*?)</span>\s*\n', html, re.S)
    assert m and m.group(1) == sentence  # the customer's name stays escaped inside the sentence


def test_ticket_selects_submit_codes_and_show_labels(app, client):
    inbox = f.inbox(kind="line")
    login(client, f.agent(inboxes=[inbox]).email)
    ticket = ingest(inbox, f.inbound()).message.ticket
    html = client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert '<option value="new" selected>新規</option>' in html
    assert '<option value="urgent">緊急</option>' in html
    html = client.get(f"/agent/tickets/{ticket.id}?lang=en").get_data(as_text=True)
    assert '<option value="pending">Pending</option>' in html
    assert '<option value="normal" selected>Normal</option>' in html


# ---- inbox: filters and the labels desk.js uses ---------------------------------------------

def test_inbox_channel_filter_shows_labels(app, client):
    inbox = f.inbox(kind="email")
    login(client, f.agent(inboxes=[inbox]).email)
    html = client.get("/agent/?channel=chat").get_data(as_text=True)
    assert re.search(r'<option value="email"\s*>メール</option>', html)
    assert re.search(r'<option value="chat"\s*selected>チャット</option>', html)
    assert re.search(r'<option value="social"\s*>ソーシャル</option>', html)
    assert re.search(r'<option value="pending"\s*>保留中</option>', html)
    en = client.get("/agent/?lang=en").get_data(as_text=True)
    assert re.search(r'<option value="email"\s*>Email</option>', en)
    assert re.search(r'<option value="resolved"\s*>Resolved</option>', en)


@pytest.mark.parametrize("lang, email, unassigned, alert", [
    ("ja", "メール", "未割り当て", "アラート: #{id} {contact} — {excerpt}"),
    ("en", "Email", "Unassigned", "Alert: #{id} {contact} — {excerpt}"),
])
def test_live_labels_for_desk_js(app, client, lang, email, unassigned, alert):
    login(client, f.agent(inboxes=[f.inbox()]).email)
    t = desk_config(client.get(f"/agent/?lang={lang}").get_data(as_text=True))["i18n"]
    assert t["channels"]["email"] == email and t["channels"]["line"] == "LINE"
    assert t["unassigned"] == unassigned and t["alert_text"] == alert
    # the same words as the server's pages (helpdesk/labels.py, one table each)
    assert t["statuses"]["pending"] == {"ja": "保留中", "en": "Pending"}[lang]
    assert t["priorities"]["urgent"] == {"ja": "緊急", "en": "Urgent"}[lang]


@pytest.mark.parametrize("lang, one, two, live_one, live_two, customers", [
    ("ja", "全1件", "全2件", "全{n}件", "全{n}件", "全1人"),
    ("en", "1 ticket", "2 tickets", "{n} ticket", "{n} tickets", "1 customer"),
])
def test_counts_agree_with_their_number(app, client, lang, one, two, live_one, live_two, customers):
    """English said "1 tickets" and "1 customers"."""
    inbox = f.inbox()
    login(client, f.agent(inboxes=[inbox]).email)
    ingest(inbox, f.inbound(user_id="u1"))
    page = client.get(f"/agent/?lang={lang}").get_data(as_text=True)
    assert one in page and "1 tickets" not in page
    t = desk_config(page)["i18n"]
    assert (t["tickets_total_one"], t["tickets_total"]) == (live_one, live_two)
    assert customers in client.get("/agent/contacts").get_data(as_text=True)
    ingest(inbox, f.inbound(user_id="u2"))
    assert two in client.get("/agent/").get_data(as_text=True)


# ---- admin ----------------------------------------------------------------------------------

@pytest.fixture
def admin_client(app, client):
    login(client, f.agent(role=Role.admin, name="管理 太郎").email)
    return client


@pytest.mark.parametrize("lang, labels", [
    ("ja", {"admin": "管理者", "supervisor": "スーパーバイザー", "agent": "エージェント", "email": "メール",
            "address": "メールアドレス"}),
    ("en", {"admin": "Administrator", "supervisor": "Supervisor", "agent": "Agent", "email": "Email",
            "address": "Email address"}),
])
def test_admin_shows_role_and_channel_labels(app, admin_client, lang, labels):
    f.agent(role=Role.supervisor, name="上長")
    inbox = f.inbox(kind="email", name="サポート窓口")
    html = admin_client.get(f"/admin/?lang={lang}").get_data(as_text=True)
    for role in ("admin", "supervisor"):
        assert f'<td class="role" data-role="{role}">{labels[role]}</td>' in html
    for role in ("agent", "supervisor", "admin"):
        assert f'<option value="{role}">{labels[role]}</option>' in html  # the form still submits the code
    assert f'サポート窓口</a></td><td>{labels["email"]}</td>' in html
    assert f'<a href="/admin/inboxes/{inbox.id}">サポート窓口</a>' in html
    assert f'<option value="email">{labels["email"]}</option>' in html
    assert f"<th>{labels['address']}</th>" in html


@pytest.mark.parametrize("lang, expected", [
    ("ja", ["メールアドレス: 無効なメールアドレスです。", "パスワード: フィールドは 10 以上, 200 文字以内でなければなりません。"]),
    ("en", ["Email address: Invalid email address.", "Password: Field must be between 10 and 200 characters long."]),
])
def test_admin_form_errors_in_the_ui_language(app, admin_client, lang, expected):
    admin_client.get(f"/admin/?lang={lang}")
    resp = admin_client.post("/admin/agents", data={
        "name": "新人", "email": "nope", "password": "short", "role": "agent",
        "csrf_token": csrf_token(admin_client, "/admin/")}, follow_redirects=True)
    flash = text_of(resp.get_data(as_text=True), r'<div class="flash error" role="status">')
    assert all(part in flash for part in expected), flash


def test_admin_duplicate_canned_shortcut_is_refused_with_a_message(app, admin_client):
    token = csrf_token(admin_client, "/admin/")
    data = {"shortcut": "thanks", "title": "お礼", "body": "ありがとうございました", "csrf_token": token}
    assert "定型文を保存しました。" in admin_client.post("/admin/canned", data=data,
                                                        follow_redirects=True).get_data(as_text=True)
    again = admin_client.post("/admin/canned", data=data, follow_redirects=True)
    assert again.status_code == 200
    assert "このショートカットの定型文はすでに存在します。" in again.get_data(as_text=True)
