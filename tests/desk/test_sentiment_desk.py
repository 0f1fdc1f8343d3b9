"""Sentiment in the desk: labels land in the background, aggregates and escalation follow."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import Alert, Event, Message, Priority, Role
from helpdesk.services import sentiment
from helpdesk.services.ingest import ingest
from tests import factories as f
from tests.conftest import in_thread
from tests.sql import selects_run


def test_every_inbound_message_is_labelled_with_model_and_keywords(app):
    msg = ingest(f.inbox(), f.inbound(text="返金対応がまだです。いい加減にしてください")).message
    db.session.refresh(msg)
    assert msg.sentiment_label == "negative"
    assert msg.sentiment_model and "@" in msg.sentiment_model
    assert set(msg.sentiment_probs) == {"negative", "neutral", "positive"}
    assert -1 <= msg.sentiment_score <= 1
    assert msg.keywords and len(msg.keywords) <= sentiment.MAX_KEYWORDS
    names = db.session.scalars(select(Event.name).order_by(Event.id)).all()
    assert "message.sentiment" in names


def test_the_label_event_carries_the_ticket_as_labelling_left_it(app):
    """One event per labelled message: its ticket's new aggregates and an escalation's
    priority ride along, where a ticket.updated per ticket used to follow."""
    inbox = f.inbox()
    first = ingest(inbox, f.inbound(user_id="u1", text="ありがとうございます")).message
    msg = ingest(inbox, f.inbound(user_id="u1", text="何度も問い合わせているのに返事がない。いい加減にしてください")).message
    assert first.ticket_id == msg.ticket_id
    labelled = db.session.scalars(select(Event).where(Event.name == "message.sentiment").order_by(Event.id)).all()
    assert [e.payload["id"] for e in labelled] == [first.id, msg.id]
    ticket = labelled[-1].payload["ticket"]
    assert ticket["id"] == msg.ticket_id and ticket["priority"] == Priority.urgent.value
    assert ticket["sentiment"]["label"] == "negative" and ticket["sentiment"]["worst"] < 0
    assert labelled[0].payload["ticket"]["sentiment"]["label"] == "positive"
    assert "ticket.updated" not in db.session.scalars(select(Event.name)).all()


def test_long_email_keeps_at_most_twenty_keywords(app):
    nouns = ["返金", "交換", "配送", "請求書", "領収書", "住所", "電話", "会員", "解約", "料金", "保証", "修理",
             "在庫", "予約", "座席", "口座", "暗証番号", "証明書", "割引", "送料", "梱包", "伝票", "倉庫", "店舗"]
    text = "。".join(f"{n}について確認したい" for n in nouns)
    msg = ingest(f.inbox(), f.inbound(text=text)).message
    db.session.refresh(msg)
    assert len(msg.keywords) == sentiment.MAX_KEYWORDS


def test_angry_message_raises_priority_and_alerts_supervisors(app):
    ticket = ingest(f.inbox(), f.inbound(text="何度も問い合わせているのに返事がない。いい加減にしてください")).message.ticket
    db.session.refresh(ticket)
    assert ticket.priority in (Priority.high, Priority.urgent)
    alert = db.session.scalar(select(Alert))
    assert alert.ticket_id == ticket.id and alert.rule in ("angry", "strongly_negative")
    ev = db.session.scalar(select(Event).where(Event.name == "sentiment.alert"))
    assert ev.audience == "supervisors"


def test_an_open_alert_holds_back_more_of_the_same_until_acknowledged(app):
    """An angry customer's burst of chat messages is one alert, not one per message; a
    worse turn alerts at once, and after a supervisor's acknowledgement the next does."""
    from helpdesk.services.reports import acknowledge

    inbox = f.inbox()
    supervisor = f.agent(role=Role.supervisor)

    def say(text: str) -> list[tuple[str, int]]:
        msg = ingest(inbox, f.inbound(user_id="u1", text=text)).message
        db.session.refresh(msg.ticket)
        assert msg.ticket.priority in (Priority.high, Priority.urgent)  # the priority follows every message
        return [(a.rule, a.message_id) for a in db.session.scalars(select(Alert).where(Alert.message_id == msg.id))]

    strongly = "届いた商品が壊れていました。最悪です"
    angry = "何度も問い合わせているのに返事がない。いい加減にしてください"
    assert [rule for rule, _ in say(strongly)] == ["strongly_negative"]
    assert say(strongly) == []  # the same news again
    assert [rule for rule, _ in say(angry)] == ["angry"]  # worse
    assert say(angry) == [] and say(strongly) == []
    for alert in db.session.scalars(select(Alert)).all():
        assert acknowledge(alert, supervisor)
    db.session.commit()
    assert [rule for rule, _ in say(strongly)] == ["strongly_negative"]
    assert len(db.session.scalars(select(Event).where(Event.name == "sentiment.alert")).all()) == 3


def test_thanks_does_not_alert(app):
    ingest(f.inbox(), f.inbound(text="ありがとうございました、助かりました！"))
    assert db.session.scalar(select(Alert)) is None


@pytest.mark.config(ESCALATE_SCORE=-0.99, ESCALATE_ANGER_PROB=0.99)
def test_two_negatives_in_a_row_alert_even_when_polite(app):
    inbox = f.inbox()
    ingest(inbox, f.inbound(user_id="u", text="お手数ですが、まだ届いておりません。"))
    ingest(inbox, f.inbound(user_id="u", text="恐れ入りますが、先週お願いした件がまだ反映されていないようです。"))
    rules = db.session.scalars(select(Alert.rule)).all()
    assert rules == ["negative_streak"]  # one alert, on the second message


@pytest.mark.parametrize("scores,expected", [
    ([0.5], None), ([0.5, -0.5], "worsening"), ([-0.8, 0.6], "improving"), ([0.1, 0.0, 0.1, 0.05], "steady"),
])
def test_trend(scores, expected):
    assert sentiment.trend(scores) == expected


@pytest.mark.config(SENTIMENT_ENABLED=False)
def test_pending_messages_are_picked_up_later(app):
    msg = ingest(f.inbox(), f.inbound(text="注文番号を教えてください")).message
    assert msg.sentiment_label is None  # the worker was off: the label is pending, not lost
    app.config["SENTIMENT_ENABLED"] = True
    assert sentiment.label_pending() == 1
    db.session.refresh(msg)
    assert msg.sentiment_label == "neutral"


def test_backfill_relabels_other_models(app):
    msg = ingest(f.inbox(), f.inbound(text="最高の対応でした")).message
    db.session.execute(Message.__table__.update().values(sentiment_model="old-model@1"))
    db.session.commit()
    assert sentiment.backfill() == 1
    db.session.refresh(msg)
    assert msg.sentiment_model != "old-model@1"
    assert sentiment.backfill() == 0


def test_contact_aggregate_follows_the_latest_messages_across_tickets(app):
    from datetime import datetime, timedelta, timezone

    from helpdesk.models import Contact, Status

    inbox = f.inbox()
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    # A long, happy history on an old ticket, then two angry messages on a new one.
    for i in range(25):
        ingest(inbox, f.inbound(user_id="long", text=f"いつもありがとうございます。{i}回目も助かりました！",
                                sent_at=start + timedelta(days=i)))
    first = db.session.scalar(select(Message).order_by(Message.id)).ticket
    first.status = Status.closed
    db.session.commit()
    for i, text in enumerate(["届いた商品が壊れていました。最悪です", "まだ返事がありません。いい加減にしてください"]):
        ingest(inbox, f.inbound(user_id="long", text=text, sent_at=start + timedelta(days=30 + i)))
    contact = db.session.scalar(select(Contact))
    assert len(set(db.session.scalars(select(Message.ticket_id)))) == 2
    assert contact.sentiment_latest_label == "negative"
    assert contact.sentiment_latest_score < 0
    assert contact.sentiment_trend == "worsening"


def test_a_survey_answer_is_labelled_from_its_number_not_by_the_model(app):
    """「満足度：1」 is the customer saying how they feel. The model read it as neutral text, so a
    customer who had complained and then rated us 1 in 5 looked like one whose mood improved."""
    from helpdesk.models import Contact

    inbox = f.inbox()
    ingest(inbox, f.inbound(user_id="rated", text="返金はまだですか。本当に最悪です。"))
    rated = ingest(inbox, f.inbound(user_id="rated", text="満足度：１")).message
    other = ingest(inbox, f.inbound(user_id="fan", text="満足度: 5")).message
    prose = ingest(inbox, f.inbound(user_id="prose", text="満足度は5です、ありがとうございました")).message
    for msg in (rated, other, prose):
        db.session.refresh(msg)
    assert (rated.sentiment_label, rated.sentiment_score, rated.sentiment_model) == ("negative", -1.0, "survey-answer")
    assert rated.sentiment_probs == {"negative": 1.0, "neutral": 0.0, "positive": 0.0} and rated.keywords == []
    assert (other.sentiment_label, other.sentiment_score) == ("positive", 1.0)
    assert prose.sentiment_model != "survey-answer"  # words around the number: the model reads it
    contact = db.session.get(Contact, rated.contact_id)
    assert contact.sentiment_latest_label == "negative" and contact.sentiment_trend != "improving"


def test_a_bare_number_answering_a_survey_is_labelled_from_its_number(app):
    """A chat customer answers the question with a bare 「1」: recorded as the answer, and labelled
    from it. Labelled by the model, it read as neutral text and the customer looked calmer."""
    from helpdesk.models import Contact
    from helpdesk.services.tickets import update_ticket

    inbox = f.inbox()
    agent = f.agent(inboxes=[inbox])
    ticket = ingest(inbox, f.inbound(user_id="bare", text="返金はまだですか。本当に最悪です。")).message.ticket
    update_ticket(ticket, agent, status="resolved")
    answer = ingest(inbox, f.inbound(user_id="bare", text="１")).message
    db.session.refresh(answer)
    assert answer.ticket_id == ticket.id
    assert (answer.sentiment_label, answer.sentiment_score, answer.sentiment_model) == (
        "negative", -1.0, "survey-answer")
    assert db.session.get(Contact, answer.contact_id).sentiment_latest_label == "negative"
    other = ingest(inbox, f.inbound(user_id="nobody-asked", text="1")).message
    db.session.refresh(other)
    assert other.sentiment_model != "survey-answer"  # no survey waits for it: the model reads it


@pytest.mark.parametrize("text,expected", [
    ("満足度：1", ("negative", -1.0)), ("満足度：2", ("negative", -0.5)), ("満足度：3", ("neutral", 0.0)),
    ("CSAT 4", ("positive", 0.5)), ("満足度：6", None),  # off the scale: the model reads it
    ("おすすめ度：0", ("negative", -1.0)), ("おすすめ度：6", ("negative", -0.1429)),  # NPS: 0-6 detractors
    ("おすすめ度：8", ("neutral", 0.0)), ("おすすめ度：9", ("positive", 0.5)),
    ("かんたんさ：4", ("neutral", 0.0)), ("かんたんさ：7", ("positive", 1.0)), ("ありがとう", None),
])
def test_survey_answer_sentiment_follows_each_scale(app, text, expected):
    from helpdesk.services import surveys

    assert surveys.sentiment_of(text) == expected


def test_the_very_negative_filter_shows_tickets_very_negative_now(app, client):
    """「非常にネガティブ」 once listed every ticket that had ever been very negative, a ticket
    whose customer had since thanked us (labelled positive) among them: more tickets than
    「ネガティブ」 itself."""
    from tests.conftest import login

    inbox = f.inbox()
    upset = ingest(inbox, f.inbound(user_id="u1", text="何度も問い合わせているのに返事がない。いい加減にしてください")).message
    calmed = ingest(inbox, f.inbound(user_id="u2", text="届いた商品が壊れていました。最悪です")).message
    ingest(inbox, f.inbound(user_id="u2", text="交換していただき本当にありがとうございました！助かりました"))
    login(client, f.agent(inboxes=[inbox]).email)

    def listed(sentiment):
        html = client.get("/agent/", query_string={"sentiment": sentiment, "status": "all"}).get_data(as_text=True)
        return {t for t in (upset.ticket_id, calmed.ticket_id) if f'data-ticket-id="{t}"' in html}

    assert listed("positive") == {calmed.ticket_id}
    assert listed("angry") == {upset.ticket_id} and listed("negative") == {upset.ticket_id}


def _mixed_backlog(app, inbox):
    """Two customers with labelled history, then an unlabelled backlog over three tickets,
    some of it sent *before* messages already labelled (a mail import of older mail)."""
    from datetime import datetime, timedelta, timezone

    from helpdesk.models import Status

    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    for i, text in enumerate(["ありがとうございます、助かりました！", "丁寧な対応に感謝します"]):
        ingest(inbox, f.inbound(user_id="a", text=text, sent_at=start + timedelta(hours=10 + i)))
    old = db.session.scalar(select(Message).order_by(Message.id)).ticket
    old.status = Status.closed
    db.session.commit()
    app.config["SENTIMENT_ENABLED"] = False
    backlog = [("a", "届いた商品が壊れていました。最悪です", 20), ("a", "まだ返事がありません。いい加減にしてください", 21),
               ("a", "先日の件、問い合わせ番号を教えてください", 5), ("b", "請求が二重になっています。至急直してください", 1),
               ("b", "返金はいつになりますか", 2), ("b", "対応ありがとうございました！", 3)]
    for user, text, hours in backlog:
        ingest(inbox, f.inbound(user_id=user, text=text, sent_at=start + timedelta(hours=hours)))
    app.config["SENTIMENT_ENABLED"] = True


@pytest.mark.config(SENTIMENT_BATCH=32)
def test_batch_aggregates_and_alerts_match_labelling_one_by_one(app):
    """A batch reads the stored labels and overlays its own before writing anything; the
    aggregates and alerts must be exactly those of labelling the same messages one at a time."""
    from helpdesk.models import Alert, Contact, Ticket

    def outcome():
        tickets = [(t.sentiment_label, t.sentiment_score, t.sentiment_first_score, t.sentiment_worst_score,
                    t.sentiment_trend, t.priority) for t in db.session.scalars(select(Ticket).order_by(Ticket.id))]
        contacts = [(c.sentiment_latest_label, c.sentiment_latest_score, c.sentiment_trend)
                    for c in db.session.scalars(select(Contact).order_by(Contact.id))]
        alerts = sorted((a.message_id, a.rule) for a in db.session.scalars(select(Alert)))
        return tickets, contacts, alerts

    inbox = f.inbox()
    _mixed_backlog(app, inbox)
    assert sentiment.label_pending() == 6  # one batch
    batch = outcome()

    # The same backlog labelled one message per batch, each committed before the next.
    db.session.execute(Alert.__table__.delete())
    db.session.execute(Message.__table__.update().where(Message.id > 2).values(sentiment_label=None))
    db.session.execute(Ticket.__table__.update().values(priority="normal"))
    db.session.commit()
    app.config["SENTIMENT_BATCH"] = 1
    assert sentiment.label_pending() == 6
    db.session.expire_all()
    assert outcome() == batch
    assert len(batch[2]) >= 2 and batch[1][0][0] == "negative"  # the backlog did alert and turn contact a


def test_labelling_reads_everything_before_its_first_write(app):
    """On SQLite the first write takes the database's one write lock until the commit, and
    every incoming message waits for it: nothing but writes may run inside that window."""
    from sqlalchemy import event

    inbox = f.inbox()
    _mixed_backlog(app, inbox)
    statements: list[str] = []
    listeners = {
        "before_cursor_execute": lambda conn, cur, stmt, *rest: statements.append(stmt),
        "commit": lambda conn: statements.append("COMMIT"),
    }
    for name, fn in listeners.items():
        event.listen(db.engine, name, fn)
    try:
        assert sentiment.label_pending() == 6
    finally:
        for name, fn in listeners.items():
            event.remove(db.engine, name, fn)
    first_write = next(i for i, s in enumerate(statements) if s.startswith(("INSERT", "UPDATE")))
    window = statements[first_write:statements.index("COMMIT", first_write)]
    assert any(s.startswith("SELECT") for s in statements[:first_write])
    assert [s for s in window if s.startswith("SELECT")] == []
    assert any(s.startswith("INSERT INTO alerts") for s in window)  # the rules did run
    assert len(db.session.scalars(select(Alert)).all()) >= 2


@pytest.mark.config(SENTIMENT_BATCH=64)
def test_a_batch_reads_with_the_same_statements_however_many_tickets_it_touches(app):
    """The aggregates, rules and events of a batch are read for all its tickets at once: a
    statement per ticket would hold the GIL and the database for a backlog's worth of them."""
    def selects_to_label(customers: int) -> int:
        inbox = f.inbox()
        app.config["SENTIMENT_ENABLED"] = False
        for i in range(customers):
            for text in ("届いた商品が壊れていました。最悪です", "返金はいつになりますか"):
                ingest(inbox, f.inbound(user_id=f"{inbox.id}-{i}", text=text))
        app.config["SENTIMENT_ENABLED"] = True
        with selects_run() as statements:
            assert sentiment.label_pending() == 2 * customers
        return len(statements)

    assert selects_to_label(2) == selects_to_label(9)
    assert db.session.scalar(select(Alert.id)) is not None  # the rules ran


@pytest.mark.config(JOBS="thread")
def test_the_embedded_desk_labels_in_a_child_process(app, monkeypatch):
    """Jobs on threads share the GIL with the requests: the model's Python side runs in a
    process of its own (docs/performance.md), and the labels land as they do inline."""
    import os

    from helpdesk.jobs import jobs
    from nlp import sentiment as nlp_sentiment
    from nlp.sentiment import ModelProcess

    monkeypatch.setattr(nlp_sentiment, "_processes", {})
    msg = ingest(f.inbox(), f.inbound(text="何度も問い合わせているのに返事がない。いい加減にしてください")).message
    assert jobs.wait_idle(120)
    db.session.refresh(msg)
    assert msg.sentiment_label == "negative" and msg.keywords
    [model] = nlp_sentiment._processes.values()
    assert isinstance(model, ModelProcess) and model.pid() != os.getpid()
    assert msg.sentiment_model == model.tag
    # A command labelling in its own thread (`flask label-sentiment`) keeps the model in process.
    assert not isinstance(sentiment.model(), ModelProcess)


@pytest.mark.config(JOBS="thread")
def test_labelling_cut_short_by_the_process_exiting_leaves_the_rest_pending(app, monkeypatch, caplog):
    """`flask demo` queues labelling on a thread and exits: the labelling run stops with one
    line, not a traceback per queued run, and nothing is lost."""
    import logging
    from concurrent.futures import process

    from helpdesk.jobs import jobs

    app.config["SENTIMENT_ENABLED"] = False
    msg = ingest(f.inbox(), f.inbound(text="注文番号を教えてください")).message
    app.config["SENTIMENT_ENABLED"] = True
    in_thread(app, sentiment.model, background=True)  # its process is running, as in a desk that has labelled
    monkeypatch.setattr(process, "_global_shutdown", True)
    with caplog.at_level(logging.INFO, logger="helpdesk"):
        assert in_thread(app, sentiment.label_pending, background=True) == 0
    assert "this process is exiting" in caplog.text and "Traceback" not in caplog.text
    db.session.refresh(msg)
    assert msg.sentiment_label is None
    monkeypatch.setattr(process, "_global_shutdown", False)
    assert in_thread(app, sentiment.label_pending, background=True) == 1
    assert jobs.wait_idle(30)


def test_labelling_loads_the_model_before_the_first_message(app, monkeypatch):
    """The embedded server and `flask worker` start a labelling run at once: the model is
    loaded then, not when a customer's first message needs it (loading holds the GIL for
    seconds, and every request of an embedded desk would wait). What it loaded is left out
    of the cyclic collector's full passes."""
    import gc

    from nlp import sentiment as nlp_sentiment

    monkeypatch.setattr(nlp_sentiment, "_cache", {})  # a process that has not loaded it yet
    frozen = gc.get_freeze_count()
    assert sentiment.label_pending() == 0  # nothing pending
    assert list(nlp_sentiment._cache) == [app.config["SENTIMENT_MODEL"]]
    assert gc.get_freeze_count() > frozen


def test_labelling_reads_messages_by_their_tickets_and_customers(app, db_url):
    """SQLite plans by guesses until something runs ANALYZE, and a new desk never has: the
    read of a customer's newest labels once walked every customer message in time order
    instead (330 ms for 3 customers at 300,000 messages), and a ticket's labels every
    labelled message (49 ms)."""
    import re

    if not db_url.startswith("sqlite"):
        pytest.skip("the plans checked are SQLite's")
    _mixed_backlog(app, f.inbox())
    with selects_run() as reads:
        assert sentiment.label_pending() == 6
    conn = db.session.connection()
    plans = {}
    for statement, parameters, _ in reads:
        by = re.search(r"WHERE messages\.(ticket|contact)_id IN", statement)
        if by:
            plans[by.group(1)] = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
    searches = {by: [step for step in plan if step.startswith("SEARCH messages")] for by, plan in plans.items()}
    assert searches == {
        "ticket": ["SEARCH messages USING INDEX ix_messages_ticket_id_id (ticket_id=?)"],
        "contact": ["SEARCH messages USING INDEX ix_messages_contact "
                    "(contact_id=? AND direction=? AND sentiment_label>?)"],
    }
