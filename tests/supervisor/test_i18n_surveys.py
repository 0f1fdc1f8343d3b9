"""Surveys in two languages: the page a customer opens follows the usual locale selection; the
question sent on the customer's channel is in the desk's default language, whoever resolved."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import Message, Role
from helpdesk.models.survey import Survey
from helpdesk.services import surveys
from helpdesk.services.ingest import ingest
from helpdesk.services.tickets import update_ticket
from tests import factories as f
from tests.conftest import csrf_token, login

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False, PUBLIC_URL="https://desk.example.jp")


def open_ticket(settings=None):
    inbox = f.inbox(kind="test", settings=settings or {})
    agent = f.agent(inboxes=[inbox], role=Role.agent, locale="en")
    ticket = ingest(inbox, f.inbound(user_id="U1", text="届きません")).message.ticket
    return inbox, agent, ticket


def survey_message(ticket) -> Message:
    survey = db.session.scalar(select(Survey).where(Survey.ticket_id == ticket.id))
    return db.session.get(Message, survey.message_id)


@pytest.mark.parametrize("lang, texts", [
    ("ja", ["今回の対応はいかがでしたか？", "今回のサポートにはご満足いただけましたか？", "1（不満）〜 5（満足）",
            "回答を送信"]),
    ("en", ["How did we do?", "Were you satisfied with our support this time?", "1 (Dissatisfied) to 5 (Satisfied)",
            "Send answer"]),
])
def test_survey_page_in_each_language(app, client, lang, texts):
    _, agent, ticket = open_ticket()
    update_ticket(ticket, agent, status="resolved")
    path = f"/survey/{surveys.token_for(db.session.scalar(select(Survey)))}"
    html = client.get(f"{path}?lang={lang}").get_data(as_text=True)
    assert f'<html lang="{lang}">' in html
    for text in texts:
        assert text in html
    # The choice sticks for the rest of the visit, errors included.
    resp = client.post(path, data={"csrf_token": csrf_token(client, path), "score": "9"})
    assert resp.status_code == 400 and texts[1] in resp.get_data(as_text=True)


def test_english_survey_page_has_no_japanese_left(app, client):
    _, agent, ticket = open_ticket({"survey": "nps"})
    update_ticket(ticket, agent, status="resolved")
    html = client.get(f"/survey/{surveys.token_for(db.session.scalar(select(Survey)))}?lang=en").get_data(as_text=True)
    assert "0 (Would not recommend) to 10 (Would definitely recommend)" in html
    visible = re.sub(r"<[^>]+>", " ", html).replace("日本語", "")  # the switcher names Japanese in Japanese
    assert not re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", visible), visible


def test_question_sent_to_the_customer_uses_the_desks_language_not_the_agents(app, client):
    _, agent, ticket = open_ticket()
    login(client, agent.email)
    client.get("/agent/?lang=en")  # the agent works in English
    path = f"/agent/tickets/{ticket.id}"
    resp = client.post(f"{path}/update", data={"status": "resolved", "csrf_token": csrf_token(client, path)})
    assert resp.status_code == 302
    msg = survey_message(ticket)
    assert msg.body.startswith("今回のサポートにはご満足いただけましたか？\n1（不満）〜5（満足）でお答えください。\n回答はこちら: https://")
    assert msg.meta["quick_replies"][0] == {"label": "5 満足", "text": "満足度: 5"}


@pytest.mark.config(BABEL_DEFAULT_LOCALE="en", SENTIMENT_ENABLED=False, PUBLIC_URL="https://desk.example.jp")
def test_an_english_desk_asks_in_english_and_understands_the_answer(app):
    inbox, agent, ticket = open_ticket()
    update_ticket(ticket, agent, status="resolved")
    msg = survey_message(ticket)
    assert msg.body.startswith("Were you satisfied with our support this time?\n"
                               "Please answer from 1 (Dissatisfied) to 5 (Satisfied).\nAnswer here: https://")
    assert msg.meta["quick_replies"][-1] == {"label": "1 Dissatisfied", "text": "CSAT: 1"}
    ingest(inbox, f.inbound(user_id="U1", text=msg.meta["quick_replies"][-1]["text"]))
    assert db.session.scalar(select(Survey)).answer.score == 1
