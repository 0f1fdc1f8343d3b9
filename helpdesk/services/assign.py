"""Automatic assignment: a new ticket of an inbox that asks for it (``settings["auto_assign"]``,
the admin's inbox page) goes to the inbox's available online agent with the fewest tickets to work.

* The agents are the inbox's own (its members and its team's) with a page of the desk open now
  (presence, on every server) who have not set themselves busy (``Agent.availability``, the top
  bar). Admins and supervisors, who see every inbox, are not given tickets this way.
* An agent's load is their tickets that are new or open: a pending ticket waits for its
  customer, not for the agent.
* An inbox may cap that load (``settings["auto_assign_limit"]``). A ticket that finds every
  agent at the cap, busy or away waits unassigned, and is given out, most urgent and then oldest
  first, as soon as someone has room: an agent coming online or back from busy, or a ticket
  leaving someone's hands (resolved, pending, given to a colleague). Without a cap a ticket that
  finds nobody waits for an agent to take it, as without the setting: the first agent in the
  morning is not handed the whole night's queue.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import case, func, select

from ..extensions import db
from ..jobs import jobs
from ..models import Agent, Availability, Inbox, Priority, Status, Ticket
from ..realtime import presence
from ..sqlite_writes import write_now
from .access import can_see_inbox

log = logging.getLogger(__name__)

# The statuses that count as an agent's work (and of the tickets that wait for one).
WORKING = (Status.new, Status.open)
_WORKING_VALUES = {s.value for s in WORKING}
# Tickets given out by one run of assign_waiting; a longer queue goes on in the next run.
_BATCH = 200
_URGENCY = case({p.value: -p.rank for p in Priority}, value=Ticket.priority)


def wanted(inbox: Inbox) -> bool:
    return bool((inbox.settings or {}).get("auto_assign"))


def limit(inbox: Inbox) -> int | None:
    """The most tickets to work that automatic assignment lets an agent of this inbox have."""
    value = (inbox.settings or {}).get("auto_assign_limit")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def queues(inbox: Inbox) -> bool:
    """Whether tickets of this inbox wait for an agent with room (assign_waiting)."""
    return wanted(inbox) and limit(inbox) is not None


def assign_new(ticket_id: int) -> Agent | None:
    """Give an unassigned ticket to be worked to the least busy available agent of its inbox.
    Safe to run twice: an assigned ticket is left as it is."""
    return _give(ticket_id)[1]


def assign_waiting(inbox_id: int) -> int:
    """Give the inbox's waiting tickets to its agents with room, most urgent then oldest first,
    until none has room. Returns how many were given."""
    inbox = db.session.get(Inbox, inbox_id)
    if inbox is None or not queues(inbox):
        return 0
    given = 0
    for _ in range(_BATCH):
        ticket_id = db.session.scalar(
            select(Ticket.id)
            .where(Ticket.inbox_id == inbox_id, Ticket.assignee_id.is_(None), Ticket.status.in_(WORKING))
            .order_by(_URGENCY, Ticket.created_at, Ticket.id).limit(1))
        db.session.commit()  # read outside a writer turn: _give takes its own
        if ticket_id is None:
            break
        waiting, chosen = _give(ticket_id)
        if waiting and chosen is None:
            break  # nobody has room
        given += chosen is not None  # (not waiting any more: another run gave it meanwhile)
    else:
        jobs.enqueue("assign_waiting", inbox_id)  # a long queue: the rest in a run of its own
    return given


def _give(ticket_id: int) -> tuple[bool, Agent | None]:
    """Whether the ticket was still waiting, and whom it was given to (None: nobody has room)."""
    from .tickets import update_ticket

    # One writer at a time from here to update_ticket's commit: on SQLite the writer lock, on
    # PostgreSQL the ticket's row and the candidates' rows (locked in id order), so two runs
    # at once neither give one ticket twice nor fill an agent past the cap.
    write_now(db.session)
    ticket = db.session.get(Ticket, ticket_id, with_for_update=True, populate_existing=True)
    if ticket is None or ticket.assignee_id is not None or ticket.status not in WORKING:
        db.session.rollback()
        return False, None
    inbox = ticket.inbox
    online = presence.registry().online_agent_ids(inbox.id)
    # Only the online agents are read and checked (a query each): not every agent of the desk.
    agents = db.session.scalars(
        select(Agent).where(Agent.id.in_(online), Agent.active.is_(True),
                            Agent.availability == Availability.available)
        .order_by(Agent.id).with_for_update()).all() if online else []
    candidates = [a for a in agents if not a.sees_all_inboxes and can_see_inbox(a, inbox.id)]
    load = _load([a.id for a in candidates])
    cap = limit(inbox)
    room = [a for a in candidates if cap is None or load.get(a.id, 0) < cap]
    if not room:
        db.session.rollback()
        why = "every available agent has %d tickets" % cap if candidates else "no agent is available online"
        log.info("ticket %s of inbox %s waits for an agent: %s", ticket.id, inbox.id, why)
        return True, None
    chosen = min(room, key=lambda a: (load.get(a.id, 0), a.id))
    update_ticket(ticket, None, assignee_id=chosen.id)
    log.info("ticket %s assigned to agent %s (%d tickets to work)", ticket.id, chosen.id, load.get(chosen.id, 0))
    return True, chosen


def _load(agent_ids: list[int]) -> dict[int, int]:
    if not agent_ids:
        return {}
    return dict(db.session.execute(
        select(Ticket.assignee_id, func.count()).where(Ticket.assignee_id.in_(agent_ids), Ticket.status.in_(WORKING))
        .group_by(Ticket.assignee_id)).all())


def enqueue_waiting(inbox_ids: Iterable[int]) -> None:
    """Queue a run of assign_waiting for each of these inboxes that queues its tickets. Call it
    after the commit that may have made room (or an agent available)."""
    ids = sorted(set(inbox_ids))
    if not ids:
        return
    inboxes = db.session.scalars(select(Inbox).where(Inbox.id.in_(ids), Inbox.active.is_(True))).all()
    for inbox in inboxes:
        if queues(inbox):
            jobs.enqueue("assign_waiting", inbox.id)


def after_change(ticket: Ticket, changes: dict) -> None:
    """After the commit of a ticket change (the audit's ``changes``): one that may leave an agent
    with room for another ticket (the ticket taken from them, or out of the statuses that count)
    queues a run of assign_waiting, if its inbox queues tickets."""
    old, new = changes.get("status", (None, None))
    freed = changes.get("assignee_id", [None])[0] is not None or (
        old in _WORKING_VALUES and new not in _WORKING_VALUES)
    if freed and queues(ticket.inbox):
        jobs.enqueue("assign_waiting", ticket.inbox_id)
