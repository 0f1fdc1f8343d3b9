"""Who may see which inbox: the one permission rule every view and socket uses."""

from __future__ import annotations

from sqlalchemy import or_, select

from ..extensions import db
from ..models import Agent, Inbox
from ..models.agent import team_members
from ..models.inbox import inbox_members


def visible_inbox_ids(agent: Agent) -> set[int]:
    if agent.sees_all_inboxes:
        return set(db.session.scalars(select(Inbox.id)))
    team_ids = select(team_members.c.team_id).where(team_members.c.agent_id == agent.id)
    member_of = select(inbox_members.c.inbox_id).where(inbox_members.c.agent_id == agent.id)
    return set(
        db.session.scalars(select(Inbox.id).where(or_(Inbox.id.in_(member_of), Inbox.team_id.in_(team_ids))))
    )


def can_see_inbox(agent: Agent, inbox_id: int) -> bool:
    return agent.sees_all_inboxes or inbox_id in visible_inbox_ids(agent)


def assignable_agents(inbox: Inbox) -> list[Agent]:
    """Agents who can see an inbox, for the assignee menu."""
    agents = db.session.scalars(select(Agent).where(Agent.active.is_(True)).order_by(Agent.name)).all()
    return [a for a in agents if can_see_inbox(a, inbox.id)]
