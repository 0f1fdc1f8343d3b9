"""Automatic assignment: a new ticket of an inbox that asks for it (``settings["auto_assign"]``,
the admin's inbox page) goes to the inbox's online agent with the fewest active tickets.

The agents are the inbox's own (its members and its team's), with a page of the desk open now
(presence, on every server); admins and supervisors, who see every inbox, are not given tickets
this way. With nobody online the ticket waits unassigned, as it would without the setting.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from ..extensions import db
from ..models import Agent, Inbox, Status, Ticket
from ..realtime import presence
from .access import can_see_inbox
from .tickets import update_ticket

log = logging.getLogger(__name__)


def wanted(inbox: Inbox) -> bool:
    return bool((inbox.settings or {}).get("auto_assign"))


def assign_new(ticket_id: int) -> Agent | None:
    """Give an unassigned active ticket to the least busy online agent of its inbox. Safe to run
    twice: an assigned ticket is left as it is."""
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None or ticket.assignee_id is not None or ticket.status not in Status.active():
        return None
    online = presence.registry().online_agent_ids(ticket.inbox_id)
    # Only the online agents are read and checked (a query each): not every agent of the desk.
    agents = db.session.scalars(select(Agent).where(Agent.id.in_(online), Agent.active.is_(True))).all() \
        if online else []
    candidates = [a for a in agents if not a.sees_all_inboxes and can_see_inbox(a, ticket.inbox_id)]
    if not candidates:
        log.info("ticket %s left unassigned: no agent of inbox %s is online", ticket.id, ticket.inbox_id)
        return None
    load = dict(db.session.execute(
        select(Ticket.assignee_id, func.count()).where(Ticket.assignee_id.in_([a.id for a in candidates]),
                                                       Ticket.status.in_(Status.active()))
        .group_by(Ticket.assignee_id)).all())
    chosen = min(candidates, key=lambda a: (load.get(a.id, 0), a.id))
    update_ticket(ticket, None, assignee_id=chosen.id)
    log.info("ticket %s assigned to agent %s (%d active tickets)", ticket.id, chosen.id, load.get(chosen.id, 0))
    return chosen
