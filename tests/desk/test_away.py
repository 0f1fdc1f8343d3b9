"""The away message: outside business hours a customer is told once when to expect an answer."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from channels.testing import SENT
from helpdesk.extensions import db
from helpdesk.models import Direction, Message, Role, Status
from helpdesk.services.ingest import ingest
from tests import factories as f
from tests.conftest import csrf_token, login
from tests.supervisor.builders import jst

AWAY = "ご連絡ありがとうございます。営業時間（平日 9:00〜18:00）外のため、翌営業日にご返信いたします。"


@pytest.fixture
def at(monkeypatch):
    """at(datetime): what the desk takes for now (the away message's clock, and when replies are
    stored), from here on."""
    def set_now(when):
        monkeypatch.setattr("helpdesk.services.sla.now_utc", lambda: when)
        monkeypatch.setattr("helpdesk.services.replies.utcnow", lambda: when)
    return set_now


@pytest.fixture
def inbox(app):
    SENT.clear()
    yield f.inbox(settings={"away_message": AWAY})
    SENT.clear()


def away_replies(ticket_id: int) -> list[Message]:
    return list(db.session.scalars(select(Message).where(Message.ticket_id == ticket_id,
                                                         Message.direction == Direction.outbound)))


def test_a_customer_who_writes_at_night_is_told_once(app, client, inbox, at):
    login(client, f.agent(inboxes=[inbox]).email)
    at(jst(2026, 3, 9, 22))  # Monday night
    ticket = ingest(inbox, f.inbound(user_id="night", text="注文がキャンセルできません")).message.ticket
    (reply,) = away_replies(ticket.id)
    assert (reply.body, reply.meta, reply.agent_id) == (AWAY, {"auto_reply": "away"}, None)
    assert [s["text"] for s in SENT] == [AWAY]  # sent on the customer's channel
    db.session.refresh(ticket)
    assert ticket.first_response_at is None and ticket.status is Status.new  # no answer yet
    page = client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert '<span class="who">自動送信</span>' in page  # the agents see who sent it: nobody
    at(jst(2026, 3, 10, 7))  # still before opening: the same closed spell
    ingest(inbox, f.inbound(user_id="night", text="急いでいます！"))
    assert len(away_replies(ticket.id)) == 1
    at(jst(2026, 3, 10, 19))  # the next evening: closed again after a working day
    ingest(inbox, f.inbound(user_id="night", text="まだですか"))
    assert len(away_replies(ticket.id)) == 2


@pytest.mark.parametrize("when", [jst(2026, 3, 9, 10),       # Monday 10:00: open
                                  jst(2026, 3, 20, 10)])     # 春分の日, a public holiday: closed
def test_in_business_hours_nobody_is_told_the_desk_is_away(app, inbox, at, when):
    at(when)
    ticket = ingest(inbox, f.inbound(user_id="day")).message.ticket
    assert len(away_replies(ticket.id)) == (when.day == 20)


def test_an_automatic_message_gets_no_away_message(app, inbox, at):
    at(jst(2026, 3, 14, 12))  # Saturday
    ticket = ingest(inbox, f.inbound(user_id="robot", meta={"auto_submitted": True})).message.ticket
    assert away_replies(ticket.id) == [] and SENT == []


def test_an_inbox_without_one_sends_nothing(app, at):
    at(jst(2026, 3, 14, 12))
    ticket = ingest(f.inbox(), f.inbound(user_id="plain")).message.ticket
    assert away_replies(ticket.id) == []


def test_admins_write_the_away_message_on_the_inbox_page(app, client, inbox):
    admin = f.agent(role=Role.admin, email="root@example.com")
    login(client, admin.email)
    page = client.get(f"/admin/inboxes/{inbox.id}").get_data(as_text=True)
    assert "営業時間外の自動返信" in page and AWAY in page
    assert "away_message" not in re.search(r'<textarea id="settings"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    form = {"csrf_token": csrf_token(client, f"/admin/inboxes/{inbox.id}"), "name": inbox.name, "active": "y",
            "settings": "{}", "away_message": "  本日の受付は終了しました。\r\n明日ご連絡します。  "}
    assert client.post(f"/admin/inboxes/{inbox.id}", data=form).status_code == 302
    db.session.refresh(inbox)
    assert inbox.settings == {"away_message": "本日の受付は終了しました。\n明日ご連絡します。"}
    form["away_message"] = ""
    client.post(f"/admin/inboxes/{inbox.id}", data=form)
    db.session.refresh(inbox)
    assert inbox.settings == {}


@pytest.mark.parametrize("locale, said", [("ja", "3月16日(月) 9:00以降にご返信します。"),
                                          ("en", "Mon, Mar 16 09:00以降にご返信します。")])
def test_the_away_message_says_when_the_desk_opens(app, at, locale, said):
    app.config["BABEL_DEFAULT_LOCALE"] = locale  # the desk's language, not the customer's
    inbox = f.inbox(settings={"away_message": "{next_open}以降にご返信します。"})
    at(jst(2026, 3, 13, 19))  # Friday evening
    ticket = ingest(inbox, f.inbound(user_id="weekend")).message.ticket
    assert [m.body for m in away_replies(ticket.id)] == [said]
