"""Surveys end to end: asked on resolve through the outbound path, answered by a quick reply
on the customer's channel or by a signed, expiring link; one answer per survey."""

from __future__ import annotations

import re
import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select

from channels.testing import SENT
from helpdesk.extensions import db
from helpdesk.models import Direction, Message, Status, Ticket
from helpdesk.models.survey import Survey, SurveyAnswer
from helpdesk.services import surveys
from helpdesk.services.ingest import ingest
from helpdesk.services.tickets import update_ticket
from tests import factories as f
from tests.conftest import csrf_token

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False, PUBLIC_URL="https://desk.example.jp")


def resolved_ticket(settings=None, kind="test", user_id="U1"):
    inbox = f.inbox(kind=kind, settings=settings or {})
    agent = f.agent(inboxes=[inbox], name="担当 花子")
    ticket = ingest(inbox, f.inbound(user_id=user_id, text="届きません")).message.ticket
    ticket.assignee_id = agent.id
    db.session.commit()
    update_ticket(ticket, agent, status="resolved")
    return inbox, agent, ticket


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def survey_of(ticket) -> Survey:
    return db.session.scalar(select(Survey).where(Survey.ticket_id == ticket.id))


def test_resolving_sends_csat_on_the_customers_channel(app):
    _, agent, ticket = resolved_ticket()
    s = survey_of(ticket)
    assert (s.kind, s.agent_id, s.channel) == ("csat", agent.id, "test")
    [sent] = [m for m in SENT if not m.get("failed")]
    assert sent["recipient"] == "U1" and "ご満足" in sent["text"]
    assert "https://desk.example.jp/survey/" in sent["text"]
    msg = db.session.get(Message, s.message_id)
    assert msg.direction is Direction.outbound and msg.agent_id is None
    assert msg.meta["survey"]["kind"] == "csat"
    assert [q["text"] for q in msg.meta["quick_replies"]] == [f"満足度: {n}" for n in (5, 4, 3, 2, 1)]
    assert db.session.get(Ticket, ticket.id).status is Status.resolved


def test_inbox_setting_picks_nps_or_ces_or_none(app):
    _, _, t1 = resolved_ticket({"survey": "nps"}, user_id="A")
    assert survey_of(t1).kind == "nps"
    assert len(db.session.get(Message, survey_of(t1).message_id).meta["quick_replies"]) == 11
    _, _, t2 = resolved_ticket({"survey": "ces"}, user_id="B")
    assert survey_of(t2).kind == "ces"
    _, _, t3 = resolved_ticket({"survey": "none"}, user_id="C")
    assert survey_of(t3) is None


def test_resolving_twice_asks_once(app):
    _, agent, ticket = resolved_ticket()
    update_ticket(ticket, agent, status="open")
    update_ticket(ticket, agent, status="resolved")
    assert count(Survey) == 1


def test_quick_reply_is_recorded_and_keeps_the_ticket_resolved(app):
    inbox, agent, ticket = resolved_ticket()
    result = ingest(inbox, f.inbound(user_id="U1", text="満足度: 5"))
    assert result.message.ticket_id == ticket.id
    assert count(Ticket) == 1
    assert db.session.get(Ticket, ticket.id).status is Status.resolved
    answer = db.session.scalar(select(SurveyAnswer))
    assert (answer.score, answer.via, answer.message_id) == (5, "reply", result.message.id)
    assert answer.survey.agent_id == agent.id and answer.survey.contact_id == ticket.contact_id


def test_full_width_reply_is_understood(app):
    inbox, _, _ = resolved_ticket()
    ingest(inbox, f.inbound(user_id="U1", text="満足度：４"))
    assert db.session.scalar(select(SurveyAnswer.score)) == 4


def test_second_reply_replaces_the_answer_and_keeps_the_ticket_resolved(app):
    inbox, _, ticket = resolved_ticket()
    ingest(inbox, f.inbound(user_id="U1", text="満足度: 5"))
    again = ingest(inbox, f.inbound(user_id="U1", text="満足度: 1"))
    assert again.created and again.message.ticket_id == ticket.id  # never a lost message
    assert count(Ticket) == 1 and db.session.get(Ticket, ticket.id).status is Status.resolved
    answer = db.session.scalar(select(SurveyAnswer))
    assert count(SurveyAnswer) == 1 and (answer.score, answer.message_id) == (1, again.message.id)


def test_ordinary_text_after_resolve_is_not_an_answer(app):
    inbox, _, ticket = resolved_ticket()
    ingest(inbox, f.inbound(user_id="U1", text="満足度が低いです。もう一度確認してください"))
    assert count(SurveyAnswer) == 0


def test_out_of_scale_reply_is_not_recorded(app):
    inbox, _, _ = resolved_ticket()
    ingest(inbox, f.inbound(user_id="U1", text="満足度: 9"))
    assert count(SurveyAnswer) == 0


def _token(ticket) -> str:
    return surveys.token_for(survey_of(ticket))


def test_link_shows_the_form_and_records_one_answer(app, client):
    _, _, ticket = resolved_ticket()
    path = f"/survey/{_token(ticket)}"
    page = client.get(path + "?score=4")
    assert page.status_code == 200
    assert re.search(r'value="4"[^>]*checked|checked[^>]*value="4"', page.get_data(as_text=True))
    r = client.post(path, data={"csrf_token": csrf_token(client, path), "score": "4", "comment": "丁寧でした"})
    assert r.status_code == 200 and 'data-result="recorded"' in r.get_data(as_text=True)
    answer = db.session.scalar(select(SurveyAnswer))
    assert (answer.score, answer.via, answer.comment) == (4, "link", "丁寧でした")


def test_second_answer_by_link_is_refused(app, client):
    _, _, ticket = resolved_ticket()
    path = f"/survey/{_token(ticket)}"
    token = csrf_token(client, path)
    assert client.post(path, data={"csrf_token": token, "score": "5"}).status_code == 200
    again = client.post(path, data={"csrf_token": token, "score": "1"})
    assert again.status_code == 409 and 'data-result="answered"' in again.get_data(as_text=True)
    assert client.get(path).status_code == 409
    assert db.session.scalar(select(SurveyAnswer.score)) == 5


def test_expired_link_gets_a_clear_page(app, client):
    _, _, ticket = resolved_ticket()

    class OldSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 15 * 86400

    old = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="helpdesk.survey", signer=OldSigner)
    r = client.get(f"/survey/{old.dumps({'s': survey_of(ticket).id})}")
    assert r.status_code == 410 and 'data-result="expired"' in r.get_data(as_text=True)


def test_tampered_or_foreign_link_is_invalid(app, client):
    _, _, ticket = resolved_ticket()
    good = _token(ticket)
    for bad in (good[:-2] + ("AA" if not good.endswith("AA") else "BB"), "nonsense",
                URLSafeTimedSerializer("other-secret", salt="helpdesk.survey").dumps({"s": survey_of(ticket).id})):
        r = client.get(f"/survey/{bad}")
        assert r.status_code == 404 and 'data-result="invalid"' in r.get_data(as_text=True)


def test_post_without_csrf_is_refused(app, client):
    _, _, ticket = resolved_ticket()
    r = client.post(f"/survey/{_token(ticket)}", data={"score": "5"})
    assert r.status_code == 400
    assert count(SurveyAnswer) == 0


def test_score_outside_the_scale_reshows_the_form(app, client):
    _, _, ticket = resolved_ticket()
    path = f"/survey/{_token(ticket)}"
    r = client.post(path, data={"csrf_token": csrf_token(client, path), "score": "9"})
    assert r.status_code == 400 and count(SurveyAnswer) == 0


def test_nps_zero_is_a_valid_answer(app, client):
    _, _, ticket = resolved_ticket({"survey": "nps"})
    path = f"/survey/{_token(ticket)}"
    r = client.post(path, data={"csrf_token": csrf_token(client, path), "score": "0"})
    assert r.status_code == 200 and db.session.scalar(select(SurveyAnswer.score)) == 0


def test_email_survey_has_one_signed_link_per_score(app):
    inbox = f.inbox(kind="email")
    from tests.supervisor import builders as b

    ticket = b.ticket(inbox, created=b.utc(2026, 3, 2, 0))
    s = Survey(ticket_id=ticket.id, kind="csat", inbox_id=inbox.id, channel="email", contact_id=ticket.contact_id)
    db.session.add(s)
    db.session.commit()
    text, meta = surveys.render(s, ticket)
    links = re.findall(r"^(\d): (https://desk\.example\.jp/survey/(\S+)\?score=\1)$", text, re.M)
    assert [n for n, _url, _tok in links] == ["5", "4", "3", "2", "1"]
    assert surveys.load_token(links[0][2]).id == s.id
    assert meta["survey"]["url"].startswith("https://desk.example.jp/survey/")


def test_parse_reply_accepts_known_prefixes_only():
    assert surveys.parse_reply("満足度: 5") == ("csat", 5)
    assert surveys.parse_reply(" おすすめ度：１０ ") == ("nps", 10)
    assert surveys.parse_reply("かんたんさ 6") == ("ces", 6)
    assert surveys.parse_reply("満足度は5です") is None
    assert surveys.parse_reply("") is None


def test_public_social_channel_is_not_surveyed_by_default(app):
    _, _, ticket = resolved_ticket(kind="test", user_id="S1")
    assert survey_of(ticket) is not None
    social = f.inbox(kind="social")
    from tests.supervisor import builders as b

    t = b.ticket(social, created=b.utc(2026, 3, 2, 0))
    t.reply_to = "someone"
    db.session.commit()
    assert surveys.kind_for(t) is None
    social.settings = {"survey": "nps"}
    db.session.commit()
    assert surveys.kind_for(t) == "nps"


def test_answer_is_broadcast_to_supervisors_only(app):
    from helpdesk.models import Event

    inbox, _, ticket = resolved_ticket()
    ingest(inbox, f.inbound(user_id="U1", text="満足度: 2"))
    ev = db.session.scalar(select(Event).where(Event.name == surveys.SURVEY_ANSWERED))
    assert ev.audience == "supervisors"
    assert (ev.payload["ticket_id"], ev.payload["kind"], ev.payload["score"]) == (ticket.id, "csat", 2)
