"""Label pending inbound messages in batches and keep ticket/contact aggregates.

State lives in the database (a NULL label means pending), so a worker that dies
loses nothing: the next run picks the same messages up again.
"""

from __future__ import annotations

import logging
import threading
from typing import Iterable

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..models import Contact, Direction, Message, Ticket
from ..models._types import utcnow
from ..realtime import events
from ..realtime.serializers import sentiment_json, ticket_json
from . import escalation

log = logging.getLogger(__name__)
_lock = threading.Lock()  # one labelling pass at a time per process
# Voice-of-customer needs the main terms, not every word of a long email (and a bounded
# list keeps the row small enough for the report indexes).
MAX_KEYWORDS = 20


def model():
    from nlp.sentiment import load_model

    return load_model(current_app.config["SENTIMENT_MODEL"])


def label_pending(limit: int | None = None) -> int:
    """Drain pending messages batch by batch; returns how many were labelled."""
    if not current_app.config["SENTIMENT_ENABLED"]:
        return 0
    batch = current_app.config["SENTIMENT_BATCH"]
    done = 0
    with _lock:
        while limit is None or done < limit:
            msgs = db.session.scalars(
                select(Message)
                .where(Message.direction == Direction.inbound, Message.sentiment_label.is_(None))
                .order_by(Message.id)
                .limit(batch)
                .with_for_update(skip_locked=True)
            ).all()
            if not msgs:
                break
            label_messages(msgs)
            done += len(msgs)
    return done


def label_messages(msgs: list[Message]) -> None:
    """Label the given messages (new or re-labelled), update aggregates, run rules, commit.

    Everything is read before the first write: on SQLite the first flush takes the one
    write lock (sqlite_writes.py), and every incoming message waits for it until the commit.
    """
    from nlp.keywords import extract_keywords

    m = model()
    preds = m.predict([_text_for(msg) for msg in msgs])
    now = utcnow()
    by_ticket: dict[int, list[Message]] = {}
    with db.session.no_autoflush:
        for msg, pred in zip(msgs, preds):
            msg.sentiment_label = pred.label
            msg.sentiment_score = round(float(pred.score), 4)
            msg.sentiment_probs = {k: round(float(v), 4) for k, v in pred.probs.items()}
            msg.sentiment_anger = round(float(pred.anger_prob), 4)
            msg.sentiment_model = pred.model
            msg.sentiment_at = now
            msg.keywords = extract_keywords(_text_for(msg))[:MAX_KEYWORDS]
            by_ticket.setdefault(msg.ticket_id, []).append(msg)
        recent: dict[int, list[Message]] = {}
        for ticket_msgs in by_ticket.values():
            ticket = ticket_msgs[0].ticket
            update_ticket_aggregate(ticket, pending=ticket_msgs)
            update_contact_aggregate(ticket.contact, pending=[m for m in msgs if m.contact_id == ticket.contact_id])
            recent[ticket.id] = escalation.newest_labelled(ticket, pending=ticket_msgs)
            ticket_json(ticket)  # loads what the events show (assignee, tags, contact) while still reading
    for msg in msgs:
        events.publish(events.MESSAGE_SENTIMENT,
                       {"id": msg.id, "ticket_id": msg.ticket_id, "sentiment": sentiment_json(msg)},
                       inbox_id=msg.inbox_id, ticket_id=msg.ticket_id)
    for ticket_msgs in by_ticket.values():
        ticket = ticket_msgs[0].ticket
        escalation.apply_rules(ticket, ticket_msgs, recent=recent[ticket.id])
        events.publish(events.TICKET_UPDATED, ticket_json(ticket), inbox_id=ticket.inbox_id, ticket_id=ticket.id)
    db.session.commit()


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


def _scores(where, last: int | None = None, pending: Iterable[Message] = ()) -> list[tuple[str, float]]:
    """(label, score) of the labelled customer messages, oldest first; only the ``last`` n if given.

    ``pending``: messages matching ``where`` whose new labels are set but not yet written;
    they count with those labels, whatever the database still holds for them.
    """
    rows = db.session.execute(
        select(Message.sent_at, Message.id, Message.sentiment_label, Message.sentiment_score)
        .where(where, Message.direction == Direction.inbound, Message.sentiment_label.is_not(None))
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(last)
    ).all()
    merged = {row[1]: tuple(row) for row in rows}
    merged.update({m.id: (m.sent_at, m.id, m.sentiment_label, m.sentiment_score) for m in pending})
    ordered = sorted(merged.values())
    return [(label, score) for _, _, label, score in (ordered[-last:] if last else ordered)]


def update_ticket_aggregate(ticket: Ticket, pending: Iterable[Message] = ()) -> None:
    rows = _scores(Message.ticket_id == ticket.id, pending=pending)
    if not rows:
        return
    scores = [s for _, s in rows]
    ticket.sentiment_label, ticket.sentiment_score = rows[-1]
    ticket.sentiment_first_score = scores[0]
    ticket.sentiment_worst_score = min(scores)
    ticket.sentiment_trend = trend(scores)


def update_contact_aggregate(contact: Contact, pending: Iterable[Message] = ()) -> None:
    # the last 20 only: a long-time customer has thousands
    rows = _scores(Message.contact_id == contact.id, last=20, pending=pending)
    if not rows:
        return
    scores = [s for _, s in rows]
    contact.sentiment_latest_label, contact.sentiment_latest_score = rows[-1]
    contact.sentiment_trend = trend(scores)


def backfill(model_name: str | None = None, batch: int = 64) -> int:
    """Re-label every inbound message whose label came from another model."""
    name = model_name or f"{model().name}@{model().version}"
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
