"""The customer directory: which contacts an agent may see, finding them, and likely duplicates.

An agent sees a customer who has at least one ticket in an inbox the agent can see (the
ticket page already shows that customer). Changing or merging one needs more: every ticket
of theirs must be visible (views/agent.py), so nobody rewrites a customer they only half see.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import selectinload

from nlp.text import normalize

from ..extensions import db
from ..models import Contact, ContactIdentity, Ticket
from ..models._types import ROW_ID_MAX, folded

_NOT_DIGITS = re.compile(r"\D")
# The dashes people type in a phone number: ASCII and full-width hyphen-minus, the IME's minus
# sign 「−」 and long vowel mark 「ー」, and the Unicode hyphens and dashes.
_PHONE_DASHES = "-－−ー‐‑‒–—―"
_PHONE_LIKE = re.compile(r"[\d\s()+" + _PHONE_DASHES + "]+")


def contact_query(visible: set[int], q: str = "") -> Select:
    """Visible, unmerged contacts matching ``q``, the most recently active first (a page's
    counts come from ``ticket_stats``: the query yields contacts only)."""
    last = (select(Ticket.contact_id, func.max(Ticket.last_message_at).label("last"))
            .where(Ticket.inbox_id.in_(visible or {-1}))
            .group_by(Ticket.contact_id)
            .subquery())
    stmt = (select(Contact)
            .join(last, last.c.contact_id == Contact.id)
            .where(Contact.merged_into_id.is_(None))
            .options(selectinload(Contact.identities))
            .order_by(last.c.last.desc(), Contact.id.desc()))
    if q.strip():
        stmt = stmt.where(_matches(q))
    return stmt


def _matches(q: str):
    """Part of the name, email address, phone number (punctuation ignored), or a channel
    account's name or id; ``#12`` is contact 12. Full-width and half-width forms match."""
    needle = normalize(q.strip())
    handle = needle.lstrip("@") or needle  # "@sato_hanako" as written on social media
    conds = [
        folded(Contact.name).contains(needle, autoescape=True),  # names are stored as written: ﾔﾏﾀﾞ
        func.lower(Contact.email).contains(needle, autoescape=True),
        exists().where(ContactIdentity.contact_id == Contact.id,
                       or_(folded(ContactIdentity.display_name).contains(needle, autoescape=True),
                           func.lower(ContactIdentity.external_id).contains(handle, autoescape=True))),
    ]
    digits = _NOT_DIGITS.sub("", needle)
    if len(digits) >= 3 and _PHONE_LIKE.fullmatch(needle):
        conds.append(_phone_digits(Contact.phone).contains(digits, autoescape=True))
    if needle.startswith("#") and needle[1:].isdigit() and int(needle[1:]) <= ROW_ID_MAX:
        conds.append(Contact.id == int(needle[1:]))
    return or_(*conds)


def _phone_digits(column):
    """The phone number without the separators people type: 03-1234-5678, (03) 1234 5678."""
    for sep in (*_PHONE_DASHES, " ", "　", "(", ")", "（", "）", "+"):
        column = func.replace(column, sep, "")
    return column


def ticket_stats(contact_ids: list[int], visible: set[int]) -> dict[int, tuple[int, datetime | None]]:
    """Per contact: how many tickets the agent can see, and the last activity on them."""
    if not contact_ids:
        return {}
    rows = db.session.execute(
        select(Ticket.contact_id, func.count(), func.max(Ticket.last_message_at))
        .where(Ticket.contact_id.in_(contact_ids), Ticket.inbox_id.in_(visible or {-1}))
        .group_by(Ticket.contact_id))
    return {contact_id: (count, last) for contact_id, count, last in rows}


def can_see_contact(contact: Contact, visible: set[int]) -> bool:
    return db.session.scalar(select(exists().where(Ticket.contact_id == contact.id,
                                                   Ticket.inbox_id.in_(visible or {-1})))) or False


def likely_duplicates(contact: Contact, visible: set[int], limit: int = 10) -> list[Contact]:
    """Other visible contacts with the same email address, phone number or full name: the
    same customer writing from a second channel, before anyone merged them."""
    conds = []
    if contact.email:
        conds.append(func.lower(Contact.email) == contact.email.lower())
    digits = _NOT_DIGITS.sub("", normalize(contact.phone or ""))
    if len(digits) >= 6:
        conds.append(_phone_digits(Contact.phone) == digits)
    if contact.name.strip():
        conds.append(Contact.name == contact.name.strip())
    if not conds:
        return []
    stmt = (contact_query(visible)
            .where(and_(Contact.id != contact.id, or_(*conds)))
            .limit(limit))
    return list(db.session.scalars(stmt))


def seen_only_in_part(contact_ids: list[int], visible: set[int]) -> set[int]:
    """Those of the contacts who also have tickets in inboxes the agent cannot see: the
    agent may look at them, not change or merge them."""
    if not contact_ids:
        return set()
    return set(db.session.scalars(
        select(Ticket.contact_id).where(Ticket.contact_id.in_(contact_ids), Ticket.inbox_id.not_in(visible or {-1}))
        .distinct()))
