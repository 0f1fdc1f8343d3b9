"""The agent desk over HTTP: login, CSRF, permissions, filters, search, escaping."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import AuditLog, Contact, Message, Priority, Role, Status, Ticket
from helpdesk.services.ingest import ingest
from tests import factories as f
from tests.conftest import csrf_token, login


def test_login_page_is_japanese_by_default(client):
    html = client.get("/login").get_data(as_text=True)
    assert 'lang="ja"' in html
    assert "ヘルプデスク" in html


def test_english_on_request(client):
    html = client.get("/login?lang=en").get_data(as_text=True)
    assert 'lang="en"' in html and "Helpdesk" in html


def test_wrong_password_refused(app, client, caplog):
    agent = f.agent()
    resp = login(client, agent.email, "wrong password!")
    assert resp.status_code == 401
    assert "failed login" in caplog.text
    assert client.get("/agent/").status_code == 302


def test_login_takes_an_email_typed_full_width(app, client):
    f.agent(email="tanaka@example.com")
    resp = login(client, "ｔａｎａｋａ＠ｅｘａｍｐｌｅ．ｃｏｍ", f.PASSWORD)
    assert resp.status_code == 302 and client.get("/agent/").status_code == 200


def test_login_without_csrf_refused(app, client):
    agent = f.agent()
    resp = client.post("/login", data={"email": agent.email, "password": f.PASSWORD})
    assert resp.status_code == 400
    assert client.get("/agent/").status_code == 302


def test_login_then_inbox(app, client):
    agent = f.agent()
    assert login(client, agent.email).status_code == 302
    assert client.get("/agent/").status_code == 200


def test_open_redirect_after_login_refused(app, client):
    agent = f.agent()
    token = csrf_token(client)
    resp = client.post("/login?next=//evil.example/", data={"email": agent.email, "password": f.PASSWORD,
                                                            "csrf_token": token})
    assert resp.headers["Location"] == "/agent/"


def test_unknown_ticket_is_404(app, client):
    login(client, f.agent(role=Role.admin).email)
    assert client.get("/agent/tickets/999999").status_code == 404


def test_ticket_of_invisible_inbox_is_403(app, client):
    mine, other = f.inbox(), f.inbox()
    agent = f.agent(inboxes=[mine])
    ticket = ingest(other, f.inbound()).message.ticket
    login(client, agent.email)
    assert client.get(f"/agent/tickets/{ticket.id}").status_code == 403
    assert client.get(f"/api/v1/tickets/{ticket.id}").status_code == 403
    html = client.get("/agent/?status=all").get_data(as_text=True)
    assert f'data-ticket-id="{ticket.id}"' not in html


def test_the_customers_tickets_in_inboxes_the_agent_cannot_see_stay_hidden(app, client):
    mine, other = f.inbox(), f.inbox()
    agent = f.agent(inboxes=[mine])
    seen = ingest(mine, f.inbound(user_id="U1", text="配送について")).message.ticket
    hidden = ingest(other, f.inbound(user_id="U1", subject="社外秘の件名", text="社外秘の本文")).message.ticket
    assert seen.contact_id == hidden.contact_id
    login(client, agent.email)
    html = client.get(f"/agent/tickets/{seen.id}").get_data(as_text=True)
    assert "配送について" in html
    assert "社外秘" not in html and f"/agent/tickets/{hidden.id}\"" not in html


def test_no_signature_preview_where_replies_are_not_email(app, client):
    line = f.inbox(kind="line", settings={"signature": "株式会社サンプル"})
    agent = f.agent(inboxes=[line])
    ticket = ingest(line, f.inbound()).message.ticket
    login(client, agent.email)
    assert 'id="signature-preview"' not in client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)


def test_team_membership_grants_inbox(app, client):
    team = f.team()
    inbox = f.inbox(team_id=team.id)
    agent = f.agent()
    team.members.append(agent)
    db.session.commit()
    ticket = ingest(inbox, f.inbound()).message.ticket
    login(client, agent.email)
    assert client.get(f"/agent/tickets/{ticket.id}").status_code == 200


def test_script_in_customer_message_is_escaped(app, client):
    inbox = f.inbox()
    agent = f.agent(inboxes=[inbox])
    payload = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
    ticket = ingest(inbox, f.inbound(text=payload, display_name="<b>悪意</b>")).message.ticket
    login(client, agent.email)
    html = client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;" in html
    assert "<b>悪意</b>" not in html and "&lt;b&gt;悪意&lt;/b&gt;" in html
    inbox_html = client.get("/agent/").get_data(as_text=True)
    assert "<img src=x" not in inbox_html


def test_csp_header_blocks_inline_script(app, client):
    resp = client.get("/login")
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.fixture
def desk(app, client):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox])
    other = f.agent(inboxes=[inbox], name="同僚")
    login(client, agent.email)
    return inbox, agent, other


def test_japanese_search_finds_word_inside_sentence(app, client, desk):
    inbox, *_ = desk
    hit = ingest(inbox, f.inbound(user_id="a", text="返金してください")).message.ticket
    miss = ingest(inbox, f.inbound(user_id="b", text="配送について質問です")).message.ticket
    html = client.get("/agent/?q=返金").get_data(as_text=True)
    assert f'data-ticket-id="{hit.id}"' in html
    assert f'data-ticket-id="{miss.id}"' not in html


def test_search_full_width_query(app, client, desk):
    inbox, *_ = desk
    hit = ingest(inbox, f.inbound(user_id="a", text="エラーコードE403が出ます")).message.ticket
    html = client.get("/agent/?q=Ｅ４０３").get_data(as_text=True)
    assert f'data-ticket-id="{hit.id}"' in html


def test_search_finds_a_customers_emoji(app, client, desk):
    """Chat customers write 😡 and 🙏 (MeCab calls them punctuation, which search used to drop)."""
    inbox, *_ = desk
    angry = ingest(inbox, f.inbound(user_id="a", text="まだ届かないんですけど😡😡")).message.ticket
    thanks = ingest(inbox, f.inbound(user_id="b", text="助かりました👍🏻🙏")).message.ticket
    plain = ingest(inbox, f.inbound(user_id="c", text="まだ届かないんですけど。")).message.ticket
    for query, hits in (("😡", {angry}), ("👍", {thanks}), ("🙏 👍🏽", {thanks}), ("まだ 😡", {angry})):
        html = client.get("/agent/", query_string={"q": query}).get_data(as_text=True)
        found = {t for t in (angry, thanks, plain) if f'data-ticket-id="{t.id}"' in html}
        assert found == hits, query


def test_filters_mine_and_unassigned(app, client, desk):
    inbox, agent, other = desk
    mine = ingest(inbox, f.inbound(user_id="a")).message.ticket
    theirs = ingest(inbox, f.inbound(user_id="b")).message.ticket
    free = ingest(inbox, f.inbound(user_id="c")).message.ticket
    mine.assignee_id, theirs.assignee_id = agent.id, other.id
    db.session.commit()
    html = client.get("/agent/?assignee=mine").get_data(as_text=True)
    assert f'data-ticket-id="{mine.id}"' in html and f'data-ticket-id="{theirs.id}"' not in html
    html = client.get("/agent/?assignee=unassigned").get_data(as_text=True)
    assert f'data-ticket-id="{free.id}"' in html and f'data-ticket-id="{mine.id}"' not in html


def test_the_inbox_page_tells_its_script_the_filter_as_the_query_reads_it(app, client, desk):
    import html as html_lib
    import json
    import re

    def live(query: str) -> dict:
        page = client.get("/agent/" + query).get_data(as_text=True)
        return json.loads(html_lib.unescape(re.search(r'data-filter="([^"]*)"', page).group(1)))

    assert live("") == {"status": "active", "channel": None, "inbox": None, "assignee": None, "team": None,
                        "tag": None, "sentiment": None, "angry_score": app.config["ESCALATE_SCORE"], "search": False}
    got = live('?status=pending&channel=line&inbox=3&assignee=7&team=2&tag="><b>VIP&sentiment=angry&q=返金')
    assert got == {**got, "status": "pending", "channel": "line", "inbox": 3, "assignee": 7, "team": 2,
                   "tag": '"><b>VIP', "sentiment": "angry", "search": True}
    # What inbox_query ignores, the page ignores: no filter, not a filter that matches nothing.
    got = live("?status=bogus&assignee=someone&team=x&sentiment=furious")
    assert (got["status"], got["assignee"], got["team"], got["sentiment"]) == ("all", None, None, None)
    assert live("?assignee=unassigned")["assignee"] == "unassigned"


def test_filter_by_sentiment_and_sort(app, client, desk):
    inbox, *_ = desk
    a = ingest(inbox, f.inbound(user_id="a")).message.ticket
    b = ingest(inbox, f.inbound(user_id="b")).message.ticket
    a.sentiment_label, a.sentiment_score = "negative", -0.9
    b.sentiment_label, b.sentiment_score = "positive", 0.8
    db.session.commit()
    html = client.get("/agent/?sentiment=negative").get_data(as_text=True)
    assert f'data-ticket-id="{a.id}"' in html and f'data-ticket-id="{b.id}"' not in html
    html = client.get("/agent/?sort=sentiment").get_data(as_text=True)
    assert html.index(f'data-ticket-id="{a.id}"') < html.index(f'data-ticket-id="{b.id}"')


def test_pagination(app, client, desk):
    inbox, *_ = desk
    app.config["PAGE_SIZE"] = 2
    for n in range(5):
        ingest(inbox, f.inbound(user_id=f"u{n}"))
    page3 = client.get("/agent/?page=3").get_data(as_text=True)
    assert page3.count("data-ticket-id=") == 1
    assert client.get("/agent/?page=abc").status_code == 200


def test_reply_form_posts_and_redirects(app, client, desk):
    inbox, agent, _ = desk
    ticket = ingest(inbox, f.inbound()).message.ticket
    token = csrf_token(client, f"/agent/tickets/{ticket.id}")
    resp = client.post(f"/agent/tickets/{ticket.id}/reply", data={"body": "承知しました", "csrf_token": token})
    assert resp.status_code == 302
    html = client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert "承知しました" in html and 'data-delivery="sent"' in html


def test_a_reply_to_a_public_post_says_so_and_goes_by_dm_only_where_the_channel_can(app, client, desk):
    import io

    inbox, agent, _ = desk
    closed = "http://127.0.0.1:9"  # nothing listens: the sends fail, what the desk stored is what counts
    x = f.inbox(kind="social", settings={"network": "x", "api_base": closed})
    fb = f.inbox(kind="social", settings={"network": "facebook", "graph_base": closed})
    x.members.append(agent)
    fb.members.append(agent)
    db.session.commit()
    private = ingest(inbox, f.inbound(user_id="p")).message.ticket
    tweet = ingest(x, f.inbound(user_id="x", meta={"public": True})).message.ticket
    dm = ingest(x, f.inbound(user_id="y", meta={"x_kind": "dm"})).message.ticket
    comment = ingest(fb, f.inbound(user_id="fb", meta={"public": True})).message.ticket
    assert 'id="public-reply"' not in client.get(f"/agent/tickets/{dm.id}").get_data(as_text=True)
    assert 'id="public-reply"' not in client.get(f"/agent/tickets/{private.id}").get_data(as_text=True)
    html = client.get(f"/agent/tickets/{tweet.id}").get_data(as_text=True)
    assert "公開の返信です：" in html and "誰でも読めます" in html and 'id="reply-dm"' in html
    html = client.get(f"/agent/tickets/{comment.id}").get_data(as_text=True)
    assert "公開の返信です：" in html and 'id="reply-dm"' not in html  # a comment is answered where it is

    def send(ticket, **data):
        token = csrf_token(client, f"/agent/tickets/{ticket.id}")
        return client.post(f"/agent/tickets/{ticket.id}/reply", headers={"Accept": "application/json"},
                           data={"body": "ご連絡ありがとうございます", "csrf_token": token, **data})

    resp = send(tweet, dm="y")
    assert resp.status_code == 201
    assert db.session.get(Message, resp.get_json()["id"]).meta.get("dm") is True
    # A hand-made "dm" on a comment changes nothing: its files are still refused, as on any public reply.
    resp = send(comment, dm="y", files=(io.BytesIO(b"%PDF-1.4 invoice"), "請求書.pdf"))
    assert resp.status_code == 400 and "公開" in resp.get_json()["message"]
    resp = send(comment, dm="y")
    assert resp.status_code == 201 and "dm" not in db.session.get(Message, resp.get_json()["id"]).meta


@pytest.mark.parametrize("then", ["pending", "resolved"])
def test_send_and_set_status_in_one_click(app, client, desk, then):
    inbox, agent, _ = desk
    ticket = ingest(inbox, f.inbound()).message.ticket
    token = csrf_token(client, f"/agent/tickets/{ticket.id}")
    resp = client.post(f"/agent/tickets/{ticket.id}/reply", headers={"Accept": "application/json"},
                       data={"body": "発送いたしました。", "then_status": then, "csrf_token": token})
    assert resp.status_code == 201
    db.session.expire_all()
    t = db.session.get(Ticket, ticket.id)
    assert t.status is Status(then) and t.first_response_at is not None
    assert (t.resolved_at is not None) is (then == "resolved")
    # The reply came first, then the status change, as the customer experiences it.
    log = db.session.scalar(select(AuditLog).where(AuditLog.object_id == t.id))
    assert log.changes["status"] == ["open", then]


def test_send_with_an_unknown_then_status_is_refused_and_nothing_is_sent(app, client, desk):
    inbox, *_ = desk
    ticket = ingest(inbox, f.inbound()).message.ticket
    token = csrf_token(client, f"/agent/tickets/{ticket.id}")
    resp = client.post(f"/agent/tickets/{ticket.id}/reply", headers={"Accept": "application/json"},
                       data={"body": "x", "then_status": "closed", "csrf_token": token})
    assert resp.status_code == 400
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).status is Status.new
    assert db.session.scalar(select(func.count()).select_from(Message).where(Message.ticket_id == ticket.id)) == 1


def test_reply_without_csrf_refused(app, client, desk):
    inbox, *_ = desk
    ticket = ingest(inbox, f.inbound()).message.ticket
    resp = client.post(f"/agent/tickets/{ticket.id}/reply", data={"body": "x"})
    assert resp.status_code == 400


def test_update_ticket_is_audited(app, client, desk):
    inbox, agent, other = desk
    ticket = ingest(inbox, f.inbound()).message.ticket
    token = csrf_token(client, f"/agent/tickets/{ticket.id}")
    resp = client.post(f"/agent/tickets/{ticket.id}/update", data={
        "status": "pending", "priority": "high", "assignee": str(other.id), "tags": "返金, 至急",
        "csrf_token": token})
    assert resp.status_code == 302
    db.session.expire_all()
    t = db.session.get(Ticket, ticket.id)
    assert (t.status, t.priority, t.assignee_id) == (Status.pending, Priority.high, other.id)
    assert [tag.name for tag in t.tags] == ["至急", "返金"]
    log = db.session.scalar(select(AuditLog).where(AuditLog.object_id == t.id))
    assert log.agent_id == agent.id and log.changes["status"] == ["new", "pending"]


def test_ticket_moves_to_another_team_and_back_to_none(app, client, desk):
    from helpdesk.models import Event

    inbox, agent, _ = desk
    first, billing = f.team(name="一次対応"), f.team(name="請求")
    inbox.team_id = first.id
    db.session.commit()
    ticket = ingest(inbox, f.inbound(text="請求書の宛名を変えたい")).message.ticket
    assert ticket.team_id == first.id  # from its inbox
    page = client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert f'<option selected value="{first.id}">一次対応</option>' in page

    def change(team: str):
        token = csrf_token(client, f"/agent/tickets/{ticket.id}")
        return client.post(f"/agent/tickets/{ticket.id}/update", data={"team": team, "csrf_token": token})

    assert change(str(billing.id)).status_code == 302
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).team_id == billing.id
    event = db.session.scalars(select(Event).where(Event.name == "ticket.updated").order_by(Event.id.desc())).first()
    assert event.payload["team_id"] == billing.id  # open pages update their form from this
    assert client.get(f"/agent/?team={billing.id}").get_data(as_text=True).count(f'data-ticket-id="{ticket.id}"') == 1
    log = db.session.scalars(select(AuditLog).where(AuditLog.object_id == ticket.id)).all()[-1]
    assert log.agent_id == agent.id and log.changes == {"team_id": [first.id, billing.id]}

    assert change("").status_code == 302  # "No team"
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).team_id is None
    assert change("999999").status_code == 302  # no such team: refused with a message
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).team_id is None
    assert change("x; drop").status_code == 400
    # A form without the field (the bulk bar's, an old page) leaves the team alone.
    token = csrf_token(client, f"/agent/tickets/{ticket.id}")
    client.post(f"/agent/tickets/{ticket.id}/update", data={"priority": "high", "csrf_token": token})
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).team_id is None


def test_cannot_assign_to_agent_without_access(app, client, desk):
    inbox, *_ = desk
    outsider = f.agent(inboxes=[f.inbox()])
    ticket = ingest(inbox, f.inbound()).message.ticket
    token = csrf_token(client, f"/agent/tickets/{ticket.id}")
    client.post(f"/agent/tickets/{ticket.id}/update", data={"assignee": str(outsider.id), "csrf_token": token})
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).assignee_id is None


def test_a_hand_made_assignee_is_a_400(app, client, desk):
    inbox, agent, other = desk
    ticket = ingest(inbox, f.inbound()).message.ticket

    def assign(assignee: str):
        token = csrf_token(client, f"/agent/tickets/{ticket.id}")
        return client.post(f"/agent/tickets/{ticket.id}/update", data={"assignee": assignee, "csrf_token": token})

    assert assign("abc").status_code == 400
    assert assign("1; drop").status_code == 400
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).assignee_id is None
    assert assign(str(other.id)).status_code == 302
    assert assign("none").status_code == 302  # unassigned
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).assignee_id is None


def test_contact_history_spans_channels_and_merge(app, client, desk):
    inbox, *_ = desk
    line = f.inbox(kind="api")
    line.members.append(desk[1])
    db.session.commit()
    t1 = ingest(inbox, f.inbound(user_id="mail-user", text="メールからの問い合わせ")).message.ticket
    t2 = ingest(line, f.inbound(user_id="line-user", text="LINEからの問い合わせ")).message.ticket
    survivor_id, other_id = t1.contact_id, t2.contact_id
    token = csrf_token(client, f"/agent/tickets/{t1.id}")
    resp = client.post(f"/agent/contacts/{survivor_id}/merge",
                       data={"other_id": str(other_id), "ticket_id": str(t1.id), "csrf_token": token})
    assert resp.status_code == 302
    html = client.get(f"/agent/tickets/{t1.id}").get_data(as_text=True)
    assert "メールからの問い合わせ" in html and "LINEからの問い合わせ" in html
    assert html.index("メールからの問い合わせ") < html.index("LINEからの問い合わせ")
    db.session.expire_all()
    assert db.session.get(Contact, other_id).merged_into_id == survivor_id
    assert db.session.get(Ticket, t2.id).contact_id == survivor_id
    # a new message from the merged identity lands on the surviving contact
    again = ingest(line, f.inbound(user_id="line-user"))
    assert again.message.contact_id == survivor_id


def test_health(app, client):
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.json["checks"]["database"] == "ok"


def test_merge_of_invisible_contact_is_403_before_any_validation(app, client):
    mine, other = f.inbox(), f.inbox()
    agent = f.agent(inboxes=[mine])
    hidden = ingest(other, f.inbound(user_id="secret")).message.ticket
    contact_id = hidden.contact_id
    login(client, agent.email)
    token = csrf_token(client, "/agent/")
    # no other_id at all: a 400 here would tell the agent the contact exists
    assert client.post(f"/agent/contacts/{contact_id}/merge", data={"csrf_token": token}).status_code == 403
