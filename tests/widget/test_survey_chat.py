"""Surveys answered in the chat: the question reaches the widget with its answer buttons and its
page, a button or a bare number answers it, a second answer replaces the first, and none of it
reopens the resolved ticket. The same path serves LINE and Messenger quick replies."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from channels import get_adapter
from helpdesk.extensions import db
from helpdesk.models import Status, Ticket
from helpdesk.models.survey import Survey, SurveyAnswer
from helpdesk.services import surveys
from helpdesk.services.ingest import ingest
from helpdesk.services.tickets import update_ticket
from tests import factories as f
from tests.conftest import csrf_token
from tests.widget.helpers import NS, hello, received, say

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False, PUBLIC_URL="https://desk.example.jp")

CSAT_BUTTONS = [{"label": "5 満足", "text": "満足度: 5"}, {"label": "4", "text": "満足度: 4"},
                {"label": "3", "text": "満足度: 3"}, {"label": "2", "text": "満足度: 2"},
                {"label": "1 不満", "text": "満足度: 1"}]


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def chat_ticket() -> Ticket:
    db.session.expire_all()
    return db.session.scalars(select(Ticket).where(Ticket.channel == "chat")).one()


def answer() -> SurveyAnswer | None:
    db.session.expire_all()
    return db.session.scalar(select(SurveyAnswer))


def resolved_chat(sockets, inbox, agent, token=None):
    """A visitor's chat, answered and resolved by the agent: (visitor socket, ticket, the survey event)."""
    sockets.agent(agent)
    c = sockets.visitor(inbox, **({"token": token} if token else {}))
    hello(c)
    assert say(c, "返品の方法を教えてください")["ok"]
    ticket = chat_ticket()
    c.get_received(NS)
    update_ticket(ticket, agent, status="resolved")
    (question,) = received(c, "message.created")
    return c, ticket, question


def test_survey_reaches_the_widget_with_its_buttons_and_page(app, sockets, chat_inbox, agent):
    c, _, question = resolved_chat(sockets, chat_inbox, agent)
    survey = db.session.scalar(select(Survey))
    assert question["id"] == survey.message_id and "ご満足" in question["body"]
    assert question["quick_replies"] == CSAT_BUTTONS
    assert question["survey_url"].startswith("https://desk.example.jp/survey/")
    assert surveys.load_token(question["survey_url"].rsplit("/", 1)[1]).id == survey.id
    # ...and in the history after a reload, the same way.
    token = hello(c)["token"]
    later = sockets.visitor(chat_inbox, token=token)
    last = hello(later)["history"][-1]
    assert (last["quick_replies"], last["survey_url"]) == (CSAT_BUTTONS, question["survey_url"])


def test_ordinary_replies_carry_no_survey_fields(app, sockets, chat_inbox, agent):
    from helpdesk.services.replies import post_reply

    sockets.agent(agent)
    c = sockets.visitor(chat_inbox)
    hello(c)
    say(c, "質問です")
    c.get_received(NS)
    post_reply(chat_ticket(), agent, "お答えします", meta={"quick_replies": "not a list", "survey": "x"})
    (event,) = received(c, "message.created")
    assert "quick_replies" not in event and "survey_url" not in event


@pytest.mark.parametrize("text", ["5", "５", " 5 ", "満足度: 5", "満足度：５"])
def test_a_bare_number_or_a_button_answers_without_reopening(app, sockets, chat_inbox, agent, text):
    c, _, _ = resolved_chat(sockets, chat_inbox, agent)
    r = say(c, text)
    assert r["ok"] and r["message"]["direction"] == "in"
    assert chat_ticket().status is Status.resolved and count(Ticket) == 1
    got = answer()
    assert (got.score, got.via, got.message_id) == (5, "reply", r["message"]["id"])


def test_an_answer_needs_no_email_when_nobody_is_online(app, sockets, chat_inbox, agent):
    c, _, _ = resolved_chat(sockets, chat_inbox, agent)
    for client, ns in sockets.clients:
        if ns == "/agent":
            client.disconnect(namespace=ns)  # the agent has gone home; the visitor left no email
    assert say(c, "4")["ok"]
    assert answer().score == 4
    assert say(c, "ありがとう")["error"] == "email_required"  # anything else still asks for it


def test_a_second_answer_replaces_the_first_and_still_does_not_reopen(app, sockets, chat_inbox, agent):
    c, _, _ = resolved_chat(sockets, chat_inbox, agent)
    say(c, "満足度: 5")
    again = say(c, "満足度: 2")  # the visitor changed their mind (or pressed another button)
    assert again["ok"]
    got = answer()
    assert count(SurveyAnswer) == 1 and (got.score, got.message_id) == (2, again["message"]["id"])
    third = say(c, "1")
    assert third["ok"] and answer().score == 1
    assert chat_ticket().status is Status.resolved and count(Ticket) == 1


def test_numbers_that_answer_nothing_are_ordinary_messages(app, sockets, chat_inbox, agent):
    c, _, _ = resolved_chat(sockets, chat_inbox, agent)
    assert say(c, "0")["ok"]  # not on the 1-5 scale: the customer means something else
    assert chat_ticket().status is Status.open and answer() is None
    assert say(c, "3")["ok"]  # the ticket is open again: a number now is part of the conversation
    assert answer() is None and chat_ticket().status is Status.open


def test_a_number_with_no_survey_asked_is_an_ordinary_message(app, sockets, chat_inbox, agent):
    sockets.agent(agent)
    c = sockets.visitor(chat_inbox)
    hello(c)
    say(c, "注文番号は")
    ticket = chat_ticket()
    ticket.status = Status.resolved  # resolved without a survey (e.g. survey off at the time)
    db.session.commit()
    assert say(c, "5")["ok"]
    assert chat_ticket().status is Status.open and answer() is None


def test_a_line_quick_reply_answer_and_a_second_one(app):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox])
    ticket = ingest(inbox, f.inbound(user_id="U1", text="届きません")).message.ticket
    update_ticket(ticket, agent, status="resolved")
    ingest(inbox, f.inbound(user_id="U1", text="満足度: 5"))  # what a LINE button sends as the text
    again = ingest(inbox, f.inbound(user_id="U1", text="満足度: 3"))
    assert again.message.ticket_id == ticket.id and count(Ticket) == 1
    assert db.session.get(Ticket, ticket.id).status is Status.resolved
    assert answer().score == 3


def test_a_messenger_quick_reply_answers_by_its_payload(app):
    """Messenger sends the button's title as the text (「5 満足」) and the answer as its payload."""
    inbox = f.inbox(kind="messenger", settings={"page_id": "104"})
    adapter = get_adapter(inbox)

    def event(text, **message):
        return {"object": "page", "entry": [{"id": "104", "time": 1, "messaging": [
            {"sender": {"id": "7001"}, "recipient": {"id": "104"}, "timestamp": 1767225600000,
             "message": {"mid": f"m_{text}", "text": text, **message}}]}]}

    (first,) = adapter.parse(event("注文をキャンセルしたい"))
    ticket = ingest(inbox, first).message.ticket
    ticket.status = Status.resolved
    survey = Survey(ticket_id=ticket.id, kind="csat", inbox_id=inbox.id, channel="messenger",
                    contact_id=ticket.contact_id)
    db.session.add(survey)
    db.session.commit()
    (button,) = adapter.parse(event("5 満足", quick_reply={"payload": "満足度: 5"}))
    assert ingest(inbox, button).message.ticket_id == ticket.id
    assert db.session.get(Ticket, ticket.id).status is Status.resolved and answer().score == 5
    (again,) = adapter.parse(event("1 不満", quick_reply={"payload": "満足度: 1"}))
    ingest(inbox, again)
    assert db.session.get(Ticket, ticket.id).status is Status.resolved and answer().score == 1


# ---- the survey page ------------------------------------------------------------------------

@pytest.mark.parametrize("lang, message, wtforms", [
    ("ja", "回答を選択してください。", ("型変換", "選択肢が正しくありません")),
    ("en", "Choose an answer.", ("could not coerce", "Not a valid choice")),
])
def test_a_score_that_is_no_number_gets_a_translated_message(app, client, lang, message, wtforms):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox])
    ticket = ingest(inbox, f.inbound(user_id="U1", text="届きません")).message.ticket
    update_ticket(ticket, agent, status="resolved")
    path = f"/survey/{surveys.token_for(db.session.scalar(select(Survey)))}"
    client.get(f"{path}?lang={lang}")
    for score in ("abc", "9"):
        r = client.post(path, data={"csrf_token": csrf_token(client, path), "score": score})
        page = r.get_data(as_text=True)
        assert r.status_code == 400 and message in page, score
        assert not any(words in page for words in wtforms), score  # WTForms' own words, untranslated
    assert answer() is None
