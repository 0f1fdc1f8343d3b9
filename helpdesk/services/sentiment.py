"""Label pending inbound messages in batches and keep ticket/contact aggregates.

State lives in the database (a NULL label means pending), so a worker that dies
loses nothing: the next run picks the same messages up again.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Iterable

from flask import current_app
from sqlalchemy import and_, func, select
from sqlalchemy.orm import joinedload, selectinload

from .. import sqlite_writes
from ..extensions import db
from ..models import Alert, Contact, Direction, Message, Survey, SurveyAnswer, Ticket
from ..models._types import utcnow
from ..realtime import events
from ..realtime.serializers import sentiment_json, ticket_json
from . import escalation, surveys

log = logging.getLogger(__name__)
_lock = threading.Lock()  # one labelling pass at a time per process
# Voice-of-customer needs the main terms, not every word of a long email (and a bounded
# list keeps the row small enough for the report indexes).
MAX_KEYWORDS = 20
# A customer message waiting for its label: the labelling runs', the sweep's and `flask demo`'s test.
PENDING = and_(Message.direction == Direction.inbound, Message.sentiment_label.is_(None))


def model():
    """The configured model. Where labelling runs on a job thread beside the requests (the
    embedded desk's background lane), it runs in a child process: its Python side would hold
    the GIL the requests need. A worker, or a command labelling in its own thread, keeps it
    in process."""
    from nlp.sentiment import load_model

    return load_model(current_app.config["SENTIMENT_MODEL"], child_process=sqlite_writes.is_background())


def label_pending(limit: int | None = None) -> int:
    """Drain pending messages batch by batch; returns how many were labelled."""
    if not current_app.config["SENTIMENT_ENABLED"]:
        return 0
    from nlp.sentiment import ModelLoadError, ModelProcessClosed

    batch = current_app.config["SENTIMENT_BATCH"]
    done = 0
    try:
        # Loaded now, before a customer's first message needs it: the embedded server and
        # `flask worker` run this at start. Loading takes seconds (in `flask worker` it holds
        # the GIL all that time; the embedded server loads it in the model's own process).
        model()
        with _lock:
            while limit is None or done < limit:
                msgs = db.session.scalars(
                    select(Message)
                    .where(PENDING)
                    .order_by(Message.id)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                ).all()
                if not msgs:
                    break
                label_messages(msgs)
                done += len(msgs)
    except ModelProcessClosed:
        # A CLI command (`flask demo`) that queued labelling is ending: what is left stays
        # pending for the next run.
        db.session.rollback()
        log.info("labelling stopped after %d messages: this process is exiting", done)
    except ModelLoadError as exc:
        # A missing or broken model (nlp.sentiment logs why, once per retry period): the
        # messages stay pending for the run after the setting is fixed; no job traceback
        # for every message that arrives meanwhile.
        db.session.rollback()
        log.debug("labelling skipped, the model does not load: %s", exc)
    return done


def label_messages(msgs: list[Message]) -> None:
    """Label the given messages (new or re-labelled), update aggregates, run rules, commit.

    Everything is read before the first write, a few statements for the whole batch: on
    SQLite the first write takes the one write lock (sqlite_writes.py), and every incoming
    message waits for it until the commit; and the reads hold the GIL the requests of an
    embedded desk need.
    """
    from nlp.keywords import extract_keywords

    # The embedded desk's labelling thread works in lulls of the requests' writes: in a burst
    # of incoming messages the model would take the CPU they need, and the reads and writes
    # below the GIL and the writer lock (sqlite_writes.yield_to_requests). Once before the
    # model, once before the database: a burst may begin while the model runs.
    sqlite_writes.yield_to_requests()
    answers = _survey_answers([msg.id for msg in msgs if surveys.may_answer(msg.body or "")])
    rated = {msg.id: _survey_answer_label(msg, answers.get(msg.id)) for msg in msgs}
    for_model = [msg for msg in msgs if rated[msg.id] is None]
    predicted = dict(zip([msg.id for msg in for_model], model().predict([_text_for(msg) for msg in for_model])
                         if for_model else []))
    preds = [rated[msg.id] or predicted[msg.id] for msg in msgs]
    sqlite_writes.yield_to_requests()
    now = utcnow()
    with db.session.no_autoflush:
        for msg, pred in zip(msgs, preds):
            msg.sentiment_label = pred.label
            msg.sentiment_score = round(float(pred.score), 4)
            msg.sentiment_probs = {k: round(float(v), 4) for k, v in pred.probs.items()}
            msg.sentiment_anger = round(float(pred.anger_prob), 4)
            msg.sentiment_model = pred.model
            msg.sentiment_at = now
            msg.keywords = [] if rated[msg.id] else extract_keywords(_text_for(msg))[:MAX_KEYWORDS]
        by_ticket: dict[int, list[Message]] = {}
        for msg in msgs:
            by_ticket.setdefault(msg.ticket_id, []).append(msg)
        # what the aggregates, the rules and the events need, in one statement each
        tickets = db.session.scalars(
            select(Ticket).where(Ticket.id.in_(list(by_ticket)))
            .options(selectinload(Ticket.tags), joinedload(Ticket.assignee),
                     joinedload(Ticket.contact).selectinload(Contact.identities))
            .order_by(Ticket.id)
        ).unique().all()
        ticket_rows = labelled_rows(Message.ticket_id, by_ticket, pending=msgs)
        contact_rows = labelled_rows(Message.contact_id, {t.contact_id for t in tickets}, last=20, pending=msgs)
        open_rules = escalation.open_alert_rules(by_ticket)
        raised = escalation.raised_by(msgs)
        alerts: list[Alert] = []
        for ticket in tickets:
            rows = ticket_rows.get(ticket.id, [])
            _set_ticket_aggregate(ticket, rows)
            _set_contact_aggregate(ticket.contact, contact_rows.get(ticket.contact_id, []))
            open_now = open_rules.setdefault(ticket.id, set())
            alerts += escalation.evaluate(ticket, by_ticket[ticket.id], rows, open_now, raised)
        ticket_now = {t.id: ticket_json(t) for t in tickets}
    # the writes: the labels and aggregates, the alerts, then every event in one INSERT. Each
    # message's event carries its ticket as the batch left it (aggregates, an escalation's
    # priority): one event a message, where a ticket.updated per ticket used to follow.
    escalation.publish_alerts(alerts, msgs)
    events.publish_many([
        (events.MESSAGE_SENTIMENT,
         {"id": m.id, "ticket_id": m.ticket_id, "sentiment": sentiment_json(m), "ticket": ticket_now.get(m.ticket_id)},
         {"inbox_id": m.inbox_id, "ticket_id": m.ticket_id})
        for m in msgs])
    db.session.commit()


def _survey_answers(message_ids: list[int]) -> dict[int, tuple[str, int]]:
    """The (kind, score) of each of these messages that was recorded as a survey answer."""
    if not message_ids:
        return {}
    rows = db.session.execute(
        select(SurveyAnswer.message_id, Survey.kind, SurveyAnswer.score)
        .join(Survey, Survey.id == SurveyAnswer.survey_id)
        .where(SurveyAnswer.message_id.in_(message_ids))
    )
    return {message_id: (kind, score) for message_id, kind, score in rows}


def _survey_answer_label(msg: Message, answer: tuple[str, int] | None):
    """A survey answer (a quick reply such as 「満足度：1」, or a bare 「1」 recorded as the answer)
    is labelled from its number, not by the model: to the model 「1」 is neutral text, and a
    customer who rated us 1 in 5 looked like a customer whose mood was improving."""
    from nlp.sentiment import LABELS, Prediction

    rating = surveys.sentiment_of(msg.body or "") or (surveys.rating_sentiment(*answer) if answer else None)
    if rating is None:
        return None
    label, score = rating
    return Prediction(label=label, probs={name: float(name == label) for name in LABELS}, score=score,
                      anger=False, anger_prob=0.0, model="survey-answer")


def _text_for(msg: Message) -> str:
    # Stickers carry their keywords (LINE) so a 「怒り」 sticker counts as what it says.
    words = (msg.meta or {}).get("sentiment_text")
    return f"{msg.body} {words}".strip() if words else (msg.body or "")


def trend(scores: list[float]) -> str | None:
    """improving / worsening / steady from the last two customer messages vs the two before."""
    if len(scores) < 2:
        return None
    recent = scores[-2:] if len(scores) >= 4 else scores[-1:]
    before = scores[-4:-2] if len(scores) >= 4 else scores[:-1]
    delta = sum(recent) / len(recent) - sum(before) / len(before)
    if delta > 0.25:
        return "improving"
    if delta < -0.25:
        return "worsening"
    return "steady"


def labelled_rows(column, keys, last: int | None = None,
                  pending: Iterable[Message] = ()) -> dict[int, list[tuple[datetime, int, str, float]]]:
    """(sent_at, id, label, score) of the labelled customer messages of each key of ``column``
    (a ticket, a contact), oldest first; only the ``last`` n of each if given.

    ``pending``: messages whose new labels are set but not yet written; they count with
    those labels, whatever the database still holds for them (those without a label, not).
    """
    cols = (column, Message.sent_at, Message.id, Message.sentiment_label, Message.sentiment_score)
    if last is None:  # a ticket's: by its own index alone, so no plan can walk another (the rest here)
        query = select(*cols, Message.direction).where(column.in_(list(keys)))
    else:  # a long-time customer has thousands: the newest n of each, by a window (ix_messages_contact)
        newest_first = func.row_number().over(partition_by=column, order_by=(Message.sent_at.desc(), Message.id.desc()))
        ranked = (select(*cols, Message.direction, newest_first.label("n"))
                  .where(column.in_(list(keys)), Message.direction == Direction.inbound,
                         Message.sentiment_label.is_not(None))
                  .subquery())
        query = select(*(ranked.c[c.key] for c in cols), ranked.c.direction).where(ranked.c.n <= last)
    merged: dict[int, dict[int, tuple]] = {}
    for key, *row, direction in db.session.execute(query):
        if direction == Direction.inbound and row[2] is not None:
            merged.setdefault(key, {})[row[1]] = tuple(row)
    for m in pending:
        key = getattr(m, column.key)
        if key in keys and m.sentiment_label is not None:
            merged.setdefault(key, {})[m.id] = (m.sent_at, m.id, m.sentiment_label, m.sentiment_score)
    return {key: sorted(rows.values())[-last if last else 0:] for key, rows in merged.items()}


def update_ticket_aggregate(ticket: Ticket) -> None:
    """Recompute the ticket's sentiment fields from its stored labels (after a merge)."""
    _set_ticket_aggregate(ticket, labelled_rows(Message.ticket_id, {ticket.id}).get(ticket.id, []))


def _set_ticket_aggregate(ticket: Ticket, rows: list[tuple]) -> None:
    if not rows:
        return
    scores = [row[3] for row in rows]
    ticket.sentiment_label, ticket.sentiment_score = rows[-1][2:]
    ticket.sentiment_first_score = scores[0]
    ticket.sentiment_worst_score = min(scores)
    ticket.sentiment_trend = trend(scores)


def _set_contact_aggregate(contact: Contact, rows: list[tuple]) -> None:
    if not rows:
        return
    contact.sentiment_latest_label, contact.sentiment_latest_score = rows[-1][2:]
    contact.sentiment_trend = trend([row[3] for row in rows])


def backfill(model_name: str | None = None, batch: int = 64) -> int:
    """Re-label every inbound message whose label came from another model."""
    # "" (flask backfill-sentiment --all) re-labels everything, so only None means "the current model".
    name = model().tag if model_name is None else model_name
    done = 0
    last_id = 0
    while True:
        msgs = db.session.scalars(
            select(Message)
            .where(Message.direction == Direction.inbound, Message.id > last_id,
                   (Message.sentiment_model.is_(None)) | (Message.sentiment_model != name))
            .order_by(Message.id)
            .limit(batch)
        ).all()
        if not msgs:
            return done
        last_id = msgs[-1].id
        label_messages(msgs)
        done += len(msgs)
