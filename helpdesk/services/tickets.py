"""Changes agents make to tickets and contacts, each audited and broadcast."""

from __future__ import annotations

import unicodedata
from typing import Any

from flask import current_app
from flask_babel import force_locale, gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update

from ..extensions import db
from ..models import (Agent, AuditLog, Contact, ContactIdentity, Delivery, Direction, Message, Priority, Status, Tag,
                      Team, Ticket)
from ..models._types import utcnow
from ..realtime import events
from ..realtime.serializers import message_json, ticket_json
from ..sqlite_writes import write_now
from . import assign


class TicketError(ValueError):
    pass


def audit(agent: Agent | None, action: str, obj_type: str, obj_id: int, changes: dict[str, Any]) -> None:
    db.session.add(AuditLog(agent_id=agent.id if agent else None, action=action, object_type=obj_type,
                            object_id=obj_id, changes=changes))


def tag_names(tags) -> list[str]:
    """Tags as a ticket keeps them: trimmed, at most 60 characters, each once, in order."""
    return sorted({t.strip()[:60] for t in tags if t.strip()})


def update_ticket(ticket: Ticket, agent: Agent | None, *, status: str | None = None, priority: str | None = None,
                  assignee_id: int | None | str = "", team_id: int | None | str = "",
                  tags: list[str] | None = None, subject: str | None = None) -> dict[str, Any]:
    """Apply the given changes; ``assignee_id=""`` (``team_id=""``) means unchanged, None
    means none. The team is where the ticket is routed (the inbox's team filter, reports by
    team); who may see it still follows its inbox. ``agent`` None: the desk itself (automatic
    assignment)."""
    changes: dict[str, Any] = {}
    if status is not None:
        try:
            new = Status(status)
        except ValueError:
            raise TicketError(f"unknown status {status!r}") from None
        if new is not ticket.status:
            changes["status"] = [ticket.status.value, new.value]
            ticket.status = new
            if new in (Status.resolved, Status.closed):
                ticket.resolved_at = ticket.resolved_at or utcnow()
            else:
                ticket.resolved_at = None
    if priority is not None:
        try:
            new_p = Priority(priority)
        except ValueError:
            raise TicketError(f"unknown priority {priority!r}") from None
        if new_p is not ticket.priority:
            changes["priority"] = [ticket.priority.value, new_p.value]
            ticket.priority = new_p
    assigned = False
    if assignee_id != "":
        new_id = int(assignee_id) if assignee_id not in (None, "none") else None
        if new_id is not None:
            from .access import can_see_inbox

            target = db.session.get(Agent, new_id)
            if target is None or not target.active or not can_see_inbox(target, ticket.inbox_id):
                raise TicketError(_l("That agent cannot work on this inbox."))
        if new_id != ticket.assignee_id:
            changes["assignee_id"] = [ticket.assignee_id, new_id]
            ticket.assignee_id = new_id
            assigned = True
    if team_id != "":
        new_team = int(team_id) if team_id is not None else None
        if new_team is not None and db.session.get(Team, new_team) is None:
            raise TicketError(_l("No such team."))
        if new_team != ticket.team_id:
            changes["team_id"] = [ticket.team_id, new_team]
            ticket.team_id = new_team
    if tags is not None:
        names = tag_names(tags)
        old = [t.name for t in ticket.tags]
        if names != old:
            ticket.tags = [_tag(n) for n in names]
            changes["tags"] = [old, names]
    if subject is not None and subject.strip() and subject.strip() != ticket.subject:
        changes["subject"] = [ticket.subject, subject.strip()[:300]]
        ticket.subject = subject.strip()[:300]
    if not changes:
        return changes
    ticket.updated_at = utcnow()
    audit(agent, "ticket.update", "ticket", ticket.id, changes)
    db.session.flush()
    db.session.refresh(ticket)
    payload = _announce(ticket, agent, list(changes))
    if assigned:
        events.publish(events.TICKET_ASSIGNED, payload, inbox_id=ticket.inbox_id, ticket_id=ticket.id)
    db.session.commit()
    assign.after_change(ticket, changes)
    if "status" in changes and ticket.status is Status.resolved:
        from .surveys import on_resolved

        on_resolved(ticket)  # ask the customer on their channel; never undoes the resolve
    return changes


def bulk_update(tickets: list[Ticket], agent: Agent, *, status: str | None = None, priority: str | None = None,
                assignee_id: int | None | str = "", team_id: int | None | str = "",
                add_tags: list[str] | None = None) -> tuple[int, dict[int, str]]:
    """The same change on several tickets, each in its own transaction: one refusal (an
    assignee who cannot see that inbox) does not stop the rest. Returns how many tickets
    changed and, per refused ticket id, the reason."""
    changed, refused = 0, {}
    for ticket in tickets:
        tags = [t.name for t in ticket.tags] + list(add_tags) if add_tags else None
        try:
            if update_ticket(ticket, agent, status=status, priority=priority, assignee_id=assignee_id,
                             team_id=team_id, tags=tags):
                changed += 1
        except TicketError as exc:
            db.session.rollback()  # drop this ticket's half-applied changes, keep the others
            refused[ticket.id] = str(exc)
    return changed, refused


def merge_tickets(target: Ticket, source: Ticket, agent: Agent) -> Ticket:
    """Fold a duplicate ticket of the same customer in the same inbox into ``target``: its
    messages move (so replies to any of them thread into the target), tags join, and the
    source is closed with a note saying where its conversation went. Nothing is deleted."""
    if source.id == target.id:
        raise TicketError(_l("A ticket cannot be merged into itself."))
    if source.inbox_id != target.inbox_id or source.contact_id != target.contact_id:
        raise TicketError(_l("Only tickets of the same customer in the same inbox can be merged."))
    conversation = select(func.count()).select_from(Message).where(
        Message.ticket_id == source.id, Message.direction != Direction.note)
    if not db.session.scalar(conversation):  # e.g. merged already: only our note is left
        raise TicketError(_l("That ticket has nothing left to merge."))
    moved = db.session.execute(
        update(Message).where(Message.ticket_id == source.id).values(ticket_id=target.id)
    ).rowcount
    target.tags = sorted({*target.tags, *source.tags}, key=lambda t: t.name)
    target.last_message_at = max(target.last_message_at, source.last_message_at)
    if source.first_response_at and (target.first_response_at is None
                                     or source.first_response_at < target.first_response_at):
        target.first_response_at = source.first_response_at
    if target.status in (Status.resolved, Status.closed) and source.status in Status.active():
        target.status, target.resolved_at = Status.open, None  # the duplicate was still waiting
    now = utcnow()
    old_status = source.status.value
    source.status, source.resolved_at = Status.closed, source.resolved_at or now
    source.merged_into_id = target.id
    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):  # stored text: the desk's language
        note = gettext("Merged into ticket #%(id)s.", id=target.id)
    note_msg = Message(ticket=source, inbox_id=source.inbox_id, agent_id=agent.id, direction=Direction.note,
                       body=note, delivery=Delivery.none, sent_at=now, created_at=now)
    db.session.add(note_msg)
    audit(agent, "ticket.merge", "ticket", target.id, {"merged": source.id, "messages": moved})
    closed = {"status": [old_status, "closed"], "merged_into": target.id}
    audit(agent, "ticket.update", "ticket", source.id, closed)
    db.session.flush()
    from .sentiment import update_ticket_aggregate

    update_ticket_aggregate(target)
    events.publish(events.MESSAGE_CREATED, message_json(note_msg), inbox_id=source.inbox_id, ticket_id=source.id)
    for ticket in (target, source):
        ticket.updated_at = now
        _announce(ticket, agent, ["merged"], merged_into=target.id)
    db.session.commit()
    assign.after_change(source, closed)
    return target


def _announce(ticket: Ticket, agent: Agent | None, changes: list[str], **extra: Any) -> dict[str, Any]:
    """ticket.updated for a change an agent (None: the desk) made: the ticket, who changed it and what."""
    payload = {**ticket_json(ticket), "changed_by": {"id": agent.id, "name": agent.name} if agent else None,
               "changes": changes, **extra}
    events.publish(events.TICKET_UPDATED, payload, inbox_id=ticket.inbox_id, ticket_id=ticket.id)
    return payload


def _tag(name: str) -> Tag:
    tag = db.session.scalar(select(Tag).where(Tag.name == name))
    if tag is None:
        tag = Tag(name=name)
        db.session.add(tag)
    return tag


def update_contact(contact: Contact, agent: Agent, *, name: str, email: str | None, phone: str | None,
                   note: str) -> dict[str, Any]:
    """An agent corrects a customer's details; their open tickets show the new name live."""
    # A phone number typed in full-width digits (０９０－…) is kept in the usual form, so the
    # directory's search (services/contacts.py) finds it however it is typed.
    wanted = {"name": name.strip(), "email": (email or "").strip().lower() or None,
              "phone": unicodedata.normalize("NFKC", phone or "").strip() or None}
    changes = {k: v for k, v in wanted.items() if getattr(contact, k) != v}
    for key, value in changes.items():
        setattr(contact, key, value)
    note = note.strip()
    if (contact.attributes or {}).get("note", "") != note:
        contact.attributes = {**(contact.attributes or {}), "note": note}
        changes["note"] = note
    if not changes:
        return changes
    audit(agent, "contact.update", "contact", contact.id, changes)
    if "name" in changes:
        publish_renamed(contact)
    db.session.commit()
    return changes


def publish_renamed(contact: Contact) -> None:
    """The inbox rows and open pages of the customer's active tickets show their new name
    (an agent's correction, a LINE profile that arrived after the first message)."""
    for ticket in db.session.scalars(select(Ticket).where(Ticket.contact_id == contact.id,
                                                          Ticket.status.in_(Status.active()))):
        events.publish(events.TICKET_UPDATED, ticket_json(ticket), inbox_id=ticket.inbox_id, ticket_id=ticket.id)


def merge_contacts(survivor: Contact, other: Contact, agent: Agent | None) -> Contact:
    """Fold ``other`` into ``survivor``: identities, tickets and messages move; nothing is lost."""
    if survivor.id == other.id:
        raise TicketError(_l("A contact cannot be merged into itself."))
    # Read again under the writer lock (SQLite) or row locks (PostgreSQL): two agents merging
    # two customers into each other at once would leave each merged into the other, both gone.
    write_now(db.session)
    merged_into = dict(db.session.execute(
        select(Contact.id, Contact.merged_into_id).where(Contact.id.in_([survivor.id, other.id]))
        .order_by(Contact.id).with_for_update()).all())
    if merged_into.get(survivor.id) or merged_into.get(other.id):
        db.session.rollback()
        raise TicketError(_l("This customer was merged into another one already."))
    moved = [f"{i.kind}:{i.external_id}" for i in other.identities]
    moved_tickets = db.session.scalars(select(Ticket.id).where(Ticket.contact_id == other.id,
                                                               Ticket.status.in_(Status.active()))).all()
    db.session.execute(update(ContactIdentity).where(ContactIdentity.contact_id == other.id)
                       .values(contact_id=survivor.id))
    db.session.execute(update(Ticket).where(Ticket.contact_id == other.id).values(contact_id=survivor.id))
    db.session.execute(update(Message).where(Message.contact_id == other.id).values(contact_id=survivor.id))
    for field in ("email", "phone", "avatar_url"):
        if not getattr(survivor, field) and getattr(other, field):
            setattr(survivor, field, getattr(other, field))
    if not survivor.name and other.name:
        survivor.name = other.name
    other.merged_into_id = survivor.id
    audit(agent, "contact.merge", "contact", survivor.id, {"merged": other.id, "identities": moved})
    db.session.flush()
    db.session.expire_all()
    # open pages of the moved tickets show their new customer
    for ticket in db.session.scalars(select(Ticket).where(Ticket.id.in_(moved_tickets))):
        events.publish(events.TICKET_UPDATED, ticket_json(ticket), inbox_id=ticket.inbox_id, ticket_id=ticket.id)
    db.session.commit()
    return survivor
