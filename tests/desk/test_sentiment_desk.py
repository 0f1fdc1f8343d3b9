"""Sentiment in the desk: labels land in the background, aggregates and escalation follow."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import Alert, Event, Message, Priority
from helpdesk.services import sentiment
from helpdesk.services.ingest import ingest
from tests import factories as f


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
