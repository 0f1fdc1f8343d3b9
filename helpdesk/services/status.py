"""Provider status events (receipts, unsend, follow, edits, reactions) applied to stored rows."""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select

from channels.base import StatusUpdate

from ..extensions import db
from ..jobs import jobs
from ..models import ContactIdentity, Delivery, Direction, Inbox, Message
from ..models._types import utcnow
from ..realtime import events
from ..realtime.serializers import message_json
from .ingest import resolve_contact
from .replies import mark_delivery

log = logging.getLogger(__name__)

# The earlier texts an edited message keeps (Messenger allows five edits; a bound all the same).
MAX_EDITS = 10


def apply_status(inbox: Inbox, update: StatusUpdate) -> int:
    """Returns how many rows changed. Unknown kinds are logged and ignored."""
    if update.kind in ("delivered", "read"):
        status = Delivery.delivered if update.kind == "delivered" else Delivery.read
        ids = list(update.external_ids)
        if update.watermark is not None and update.user_id:
            ids += _ids_before_watermark(inbox, update.user_id, update.watermark)
        return mark_delivery(inbox.id, ids, status) if ids else 0
    if update.kind == "unsend":
        msgs = db.session.scalars(
            select(Message).where(Message.inbox_id == inbox.id, Message.external_id.in_(update.external_ids))
        ).all()
        for msg in msgs:
            msg.unsent = True
            events.publish(events.MESSAGE_UPDATED, message_json(msg), inbox_id=inbox.id, ticket_id=msg.ticket_id)
        db.session.commit()
        return len(msgs)
    if update.kind in ("follow", "unfollow"):
        ident = db.session.scalar(
            select(ContactIdentity).where(ContactIdentity.kind == inbox.kind,
                                          ContactIdentity.external_id == update.user_id)
        )
        if ident is None and update.kind == "unfollow":
            log.info("unfollow on inbox %s from %s, a user we never met: ignored", inbox.id, update.user_id)
            return 0
        # a new follower is a customer already (a ticket opens with their first message)
        contact = ident.contact if ident is not None else resolve_contact(inbox.kind, update.user_id)
        contact.attributes = {**(contact.attributes or {}), f"{inbox.kind}_following": update.kind == "follow"}
        db.session.commit()
        return 1
    if update.kind == "edit":
        return _apply_edit(inbox, update)
    if update.kind == "reaction":
        return _apply_reaction(inbox, update)
    log.info("status update %r on inbox %s ignored", update.kind, inbox.id)
    return 0


def _target(inbox: Inbox, update: StatusUpdate) -> Message | None:
    mid = update.external_ids[0] if update.external_ids else ""
    msg = db.session.scalar(select(Message).where(Message.inbox_id == inbox.id, Message.external_id == mid)) \
        if mid else None
    if msg is None:
        log.info("%s of %s message %r on inbox %s, a message we never stored: ignored", update.kind, inbox.kind,
                 mid[:80], inbox.id)
    return msg


def _apply_edit(inbox: Inbox, update: StatusUpdate) -> int:
    """The customer edited a message: its body becomes the new text, the earlier one is kept in
    ``meta["edits"]`` (oldest first, each with the time it was written), its search text follows
    and its sentiment is labelled again (a NULL label is what ``sentiment.label_pending`` takes;
    the ticket's and the contact's aggregates are recomputed in that pass)."""
    from nlp.text import search_document

    text = str(update.meta.get("text") or "")
    num = update.meta.get("num_edit")
    msg = _target(inbox, update)
    if msg is None or not text:
        return 0
    if msg.direction is not Direction.inbound:
        log.info("edit of %s message %s on inbox %s, not a customer's message: ignored", msg.direction.value,
                 msg.id, inbox.id)
        return 0
    meta = dict(msg.meta or {})
    seen = meta.get("num_edit")
    # A redelivery (or an older edit arriving after a newer one) changes nothing.
    if text == msg.body or (isinstance(num, int) and isinstance(seen, int) and num <= seen):
        log.info("edit %s of message %s on inbox %s already applied", num, msg.id, inbox.id)
        return 0
    edited_at = str(update.meta.get("at") or utcnow().isoformat())
    written_at = meta.get("edited_at") or (msg.sent_at.isoformat() if msg.sent_at else None)
    meta["edits"] = [*(meta.get("edits") or []), {"text": msg.body, "at": written_at}][-MAX_EDITS:]
    meta["edited_at"] = edited_at
    if isinstance(num, int):
        meta["num_edit"] = num
    msg.meta = meta
    msg.body = text
    msg.search_text = search_document(text)
    # pending again: the labelling job reads the new text
    msg.sentiment_label = msg.sentiment_score = msg.sentiment_probs = msg.sentiment_anger = None
    msg.sentiment_model = msg.sentiment_at = msg.keywords = None
    events.publish(events.MESSAGE_UPDATED, message_json(msg), inbox_id=inbox.id, ticket_id=msg.ticket_id)
    db.session.commit()
    if current_app.config["SENTIMENT_ENABLED"]:
        jobs.enqueue("label_sentiment")
    return 1


def _apply_reaction(inbox: Inbox, update: StatusUpdate) -> int:
    """The customer's emoji on a message (mostly an agent's reply) in ``meta["reaction"]``;
    an "unreact" clears it. A Messenger user has one reaction a message: a new one replaces it."""
    msg = _target(inbox, update)
    if msg is None:
        return 0
    emoji = str(update.meta.get("emoji") or "") if update.meta.get("action") == "react" else ""
    meta = dict(msg.meta or {})
    if (meta.get("reaction") or "") == emoji:
        return 0  # a redelivery
    if emoji:
        meta["reaction"] = emoji
        meta["reaction_at"] = update.meta.get("at")
    else:
        meta.pop("reaction", None)
        meta.pop("reaction_at", None)
    msg.meta = meta
    events.publish(events.MESSAGE_UPDATED, message_json(msg), inbox_id=inbox.id, ticket_id=msg.ticket_id)
    db.session.commit()
    return 1


def _ids_before_watermark(inbox: Inbox, user_id: str, watermark_ms: int) -> list[str]:
    from datetime import datetime, timezone

    from ..models import Ticket

    cutoff = datetime.fromtimestamp(watermark_ms / 1000, tz=timezone.utc)
    return list(db.session.scalars(
        select(Message.external_id)
        .join(Ticket, Ticket.id == Message.ticket_id)
        .where(Message.inbox_id == inbox.id, Message.direction == Direction.outbound,
               Ticket.reply_to == user_id, Message.sent_at <= cutoff, Message.external_id.is_not(None))
    ))
