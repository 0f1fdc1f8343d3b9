"""Provider status events (receipts, unsend, follow) applied to stored rows."""

from __future__ import annotations

import logging

from sqlalchemy import select

from channels.base import StatusUpdate

from ..extensions import db
from ..models import ContactIdentity, Delivery, Direction, Inbox, Message
from ..realtime import events
from ..realtime.serializers import message_json
from .ingest import resolve_contact
from .replies import mark_delivery

log = logging.getLogger(__name__)


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
    log.info("status update %r on inbox %s ignored", update.kind, inbox.id)
    return 0


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
