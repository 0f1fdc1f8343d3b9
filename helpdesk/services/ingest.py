"""The one inbound path: every channel's messages enter the store here.

resolve contact -> find or open ticket -> store message (unique per inbox and
external id: a redelivery rolls back and is answered as a duplicate) -> commit ->
emit (after commit) -> enqueue sentiment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from flask import current_app
from sqlalchemy import bindparam, case, insert, inspect, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from channels.base import Inbound

from ..extensions import db
from ..jobs import jobs
from ..models import Contact, ContactIdentity, Delivery, Direction, Inbox, Message, Status, Tag, Ticket
from ..models.ticket import pending_clock, ticket_tags
from ..models._types import utcnow
from ..realtime import events
from ..realtime.serializers import message_json, ticket_json
from ..sqlite_writes import write_now
from . import assign, away, storage, surveys

log = logging.getLogger(__name__)

# A conversation that was resolved comes back to life when the customer writes again;
# a closed one is history, and the customer starts a new ticket.
_REOPENABLE = (Status.resolved,)


@dataclass
class IngestResult:
    message: Message
    created: bool
    ticket_created: bool = False
    # The message as serialized before commit, so callers can answer without a reload.
    payload: dict | None = None
    # The survey the message answers (surveys.match_reply), recorded after the commit.
    survey_reply: surveys.Reply | None = None

    def message_payload(self) -> dict:
        return self.payload if self.payload is not None else message_json(self.message)


def ingest(inbox: Inbox, inbound: Inbound) -> IngestResult:
    """Store one inbound message exactly once. Safe to call again with the same message."""
    for attempt in range(3):
        try:
            # The unique (inbox, external_id) constraint is what keeps a message single; the
            # lookup only tells a redelivery from another conflict, so it runs after one,
            # not before every message.
            existing_id = _existing_id(inbox.id, inbound.external_id) if attempt else None
            if existing_id is not None:
                existing = db.session.get(Message, existing_id)
                db.session.commit()
                log.info("duplicate %s message %s on inbox %s ignored", inbox.kind, inbound.external_id, inbox.id)
                return IngestResult(existing, created=False)
            write_now(db.session)
            result = _store(inbox, inbound)
            away_wanted = away.wanted(inbox, inbound)  # before the commit expires the inbox
            assign_wanted = result.ticket_created and assign.wanted(inbox)
            db.session.commit()
        except IntegrityError:
            # The message is stored already (a redelivery, or a concurrent delivery that won
            # the race), or a concurrent first message created the same contact identity.
            db.session.rollback()
            log.info("conflict storing %s message %s on inbox %s; checking again", inbox.kind,
                     inbound.external_id, inbox.id)
            continue
        if result.survey_reply is not None:  # without touching the committed (expired) row
            # before labelling is queued: the label of an answer is read from its recorded score
            surveys.record_reply(result.survey_reply, result.message_payload()["id"])
        if current_app.config["SENTIMENT_ENABLED"]:
            jobs.enqueue("label_sentiment")
        if assign_wanted:
            jobs.enqueue("auto_assign", result.message_payload()["ticket_id"])
        if away_wanted and result.survey_reply is None:  # the job looks at the clock
            jobs.enqueue("away_message", result.message_payload()["id"])
        return result
    raise RuntimeError(f"could not store message {inbound.external_id!r} after 3 attempts")


# The statements every message runs, built once (building one costs about as much as running it).
_EXISTING = select(Message.id).where(Message.inbox_id == bindparam("inbox_id"),
                                     Message.external_id == bindparam("external_id"))
_IDENTITY = (select(ContactIdentity)
             .where(ContactIdentity.kind == bindparam("kind"), ContactIdentity.external_id == bindparam("user_id"))
             # with the contact's identities: a contact without a name (a widget guest, a LINE
             # user before the profile arrives) is shown by them, in the events of every message
             .options(joinedload(ContactIdentity.contact).joinedload(Contact.identities)))
_ACTIVE_TICKET = (select(Ticket)
                  .where(Ticket.inbox_id == bindparam("inbox_id"), Ticket.contact_id == bindparam("contact_id"),
                         # not status IN (...): an IN list is rendered into the SQL at every execution
                         or_(*(Ticket.status == status for status in Status.active())))
                  .order_by(Ticket.last_message_at.desc(), Ticket.id.desc())
                  .limit(1)
                  # with its agent, whom the events show: a follow-up's ticket is usually assigned
                  .options(joinedload(Ticket.assignee)))
# The ticket's tags, which its event shows, by ticket_tags' key. Not a joinedload on the query
# above: with its LIMIT, SQLite materialises the whole ticket_tags join for it (32 ms a message
# at 100k tagged tickets); and selectinload costs twice this in the ORM.
_TICKET_TAGS = (select(Tag)
                .join(ticket_tags, ticket_tags.c.tag_id == Tag.id)
                .where(ticket_tags.c.ticket_id == bindparam("ticket_id"))
                .order_by(Tag.name))


_INSERT_MESSAGE = insert(Message.__table__)
_UPDATE_TICKET = update(Ticket.__table__).where(Ticket.__table__.c.id == bindparam("ticket_pk"))


def _existing_id(inbox_id: int, external_id: str) -> int | None:
    return db.session.scalar(_EXISTING, {"inbox_id": inbox_id, "external_id": external_id})


def resolve_contact(kind: str, user_id: str, display_name: str = "", email: str | None = None) -> Contact:
    """The contact behind a channel identity, created on first contact (added to the session,
    written by its next flush, so ingest writes it with the new ticket); follows merges."""
    ident = db.session.scalar(_IDENTITY, {"kind": kind, "user_id": user_id})
    if ident is None:
        contact = Contact(name=display_name or "", email=email)
        ident = ContactIdentity(kind=kind, external_id=user_id, display_name=display_name or None)
        contact.identities.append(ident)
        db.session.add(contact)
        return contact
    if display_name and ident.display_name != display_name:
        ident.display_name = display_name  # LINE and Messenger users rename themselves
    contact = ident.contact
    seen = {contact.id}
    while contact.merged_into_id:  # identities move on merge, but be safe with stale rows
        contact = db.session.get(Contact, contact.merged_into_id)
        if contact.id in seen:
            break
        seen.add(contact.id)
    if email and not contact.email:
        contact.email = email
    return contact


def _find_ticket(inbox: Inbox, contact: Contact, inbound: Inbound, new_contact: bool) -> Ticket | None:
    hints = [h for h in inbound.thread_hints if h]
    if hints:
        by_message = db.session.scalar(
            select(Ticket)
            .join(Message, Message.ticket_id == Ticket.id)
            .where(Message.inbox_id == inbox.id, Message.external_id.in_(hints))
            .order_by(Message.id.desc())
            .limit(1)
            .options(joinedload(Ticket.assignee))
        )
        ticket = by_message or db.session.scalar(
            select(Ticket)
            .where(Ticket.inbox_id == inbox.id, Ticket.thread_key.in_(hints))
            # the conversation still going, before a newer one with the same key that was closed
            # (a duplicate merged into it) or resolved
            .order_by(case((Ticket.status.in_(Status.active()), 0), (Ticket.status.in_(_REOPENABLE), 1), else_=2),
                      Ticket.id.desc())
            .limit(1)
            .options(joinedload(Ticket.assignee))
        )
        if ticket is not None and (ticket.status in Status.active() or ticket.status in _REOPENABLE):
            return ticket
        # "ticket:<id>" (an email subject token like [#1234]): guessable, so only the
        # ticket's own customer may thread into it.
        for hint in hints:
            if hint.startswith("ticket:") and hint[7:].isdigit():
                ticket = db.session.get(Ticket, int(hint[7:]))
                if (ticket is not None and ticket.inbox_id == inbox.id and ticket.contact_id == contact.id
                        and (ticket.status in Status.active() or ticket.status in _REOPENABLE)):
                    return ticket
    if inbound.new_thread or new_contact:  # a customer met just now has no tickets yet
        return None
    return db.session.scalar(_ACTIVE_TICKET, {"inbox_id": inbox.id, "contact_id": contact.id})


def _store(inbox: Inbox, inbound: Inbound) -> IngestResult:
    from nlp.text import search_document

    kind = inbound.identity_kind or inbox.kind
    contact = resolve_contact(kind, inbound.user_id, inbound.display_name, inbound.email)
    new_contact = contact.id is None
    # A survey answer stays on its ticket (a customer met just now was never asked one).
    reply = None if new_contact else surveys.match_reply(inbox.id, contact.id, inbound.text, inbound.meta)
    ticket = reply.survey.ticket if reply else _find_ticket(inbox, contact, inbound, new_contact)
    # What the events will show: the contact's name and the ticket's tags (_TICKET_TAGS).
    contact.display_name  # noqa: B018 (may load the identities)
    if ticket is not None and "tags" in inspect(ticket).unloaded:
        set_committed_value(ticket, "tags", db.session.scalars(_TICKET_TAGS, {"ticket_id": ticket.id}).all())
    now = utcnow()
    ticket_created = ticket is None
    if ticket is None:
        ticket = Ticket(
            inbox=inbox,
            contact=contact,
            channel=inbox.kind,
            subject=(inbound.subject or _subject_from(inbound.text))[:300],
            status=Status.new,
            team_id=inbox.team_id,
            thread_key=next((h for h in inbound.thread_hints if not h.startswith("ticket:")), None),
            reply_to=str(inbound.meta.get("reply_to") or inbound.user_id),
            created_at=now,
            last_message_at=now,
            tags=[],  # known to have none: its event would otherwise load them
        )
        db.session.add(ticket)
        db.session.flush()  # its id (and a new contact's), for the message's row: one flush for both
    else:
        changes = {"last_message_at": now}
        # neither a survey answer nor an automatic reply (an out-of-office mail) is the customer
        # coming back: the ticket stays where the agent left it
        if ((ticket.status in _REOPENABLE or ticket.status is Status.pending) and reply is None
                and not inbound.meta.get("auto_submitted")):
            changes.update(pending_clock(ticket.status, Status.open, ticket.pending_since, ticket.paused_seconds, now),
                           status=Status.open, resolved_at=None)
        if inbound.meta.get("reply_to"):
            changes["reply_to"] = str(inbound.meta["reply_to"])
        _write_ticket(ticket, changes)
    sent_at = inbound.sent_at.astimezone(timezone.utc) if inbound.sent_at else now
    attachments = [storage.save_attachment(a) for a in inbound.attachments]
    msg = _insert_message(
        ticket_id=ticket.id,
        inbox_id=inbox.id,
        contact_id=contact.id,
        direction=Direction.inbound,
        body=inbound.text,
        quoted=inbound.quoted,
        attachments=attachments,
        meta=dict(inbound.meta),
        external_id=inbound.external_id,
        sent_at=sent_at,
        created_at=now,
        delivery=Delivery.none,
        search_text=search_document(" ".join(filter(None, [inbound.subject, inbound.text]))),
    )
    ticket_payload = ticket_json(ticket)
    if ticket_created:
        events.publish(events.TICKET_CREATED, ticket_payload, inbox_id=inbox.id, ticket_id=ticket.id)
    payload = message_json(msg)
    # The message's event carries its ticket as the message left it: no ticket.updated of its own.
    events.publish(events.MESSAGE_CREATED, {**payload, "ticket": ticket_payload}, inbox_id=inbox.id,
                   ticket_id=ticket.id)
    return IngestResult(msg, created=True, ticket_created=ticket_created, payload=payload, survey_reply=reply)


# The message and a known ticket's changes are written with plain statements instead of
# the unit of work, whose flush cost more than the two statements together on this path
# (docs/performance.md). The objects are then set up as if just loaded, so callers and the
# events see the same values, with nothing left to load or flush.

def _write_ticket(ticket: Ticket, changes: dict) -> None:
    changes["updated_at"] = changes["last_message_at"]  # the column's onupdate, which a plain UPDATE skips
    db.session.execute(_UPDATE_TICKET, {**changes, "ticket_pk": ticket.id})
    for key, value in changes.items():
        set_committed_value(ticket, key, value)


# What the model would write for a column _store does not give: its plain default, else NULL.
# A column whose default is computed (a time, a new list) is left out: _store must give it,
# and tests/desk/test_ingest.py fails when it does not (the object would lack it).
_MESSAGE_DEFAULTS = {c.key: c.default.arg if c.default is not None else None
                     for c in Message.__table__.columns
                     if not c.primary_key and (c.default is None or c.default.is_scalar)}


def _insert_message(**values) -> Message:
    """INSERT the row, then hand back the ORM object as if it had been loaded."""
    values = {**_MESSAGE_DEFAULTS, **values}
    values["id"] = db.session.execute(_INSERT_MESSAGE, values).inserted_primary_key[0]
    msg = Message(**values)
    make_transient_to_detached(msg)
    db.session.add(msg)
    return msg


def _subject_from(text: str) -> str:
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return first[:60] + ("…" if len(first) > 60 else "")


def parse_datetime(value: str | None) -> datetime | None:
    if not value:
        return None
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
