"""The inbox query: filters, Japanese full-text search, sort and pagination."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import and_, exists, or_, select

from nlp.text import normalize, search_tokens

from ..extensions import db
from ..models import Agent, Contact, Message, Priority, Status, Tag, Ticket
from ..models._types import ROW_ID_MAX, folded
from ..models.ticket import ticket_tags

SORTS = {
    "recent": (Ticket.last_message_at.desc(), Ticket.id.desc()),
    "oldest": (Ticket.last_message_at.asc(), Ticket.id.asc()),
    "created": (Ticket.created_at.desc(), Ticket.id.desc()),
    # Most negative first; unlabelled tickets last.
    "sentiment": (Ticket.sentiment_score.is_(None), Ticket.sentiment_score.asc(), Ticket.id.desc()),
    "priority": (None,),  # built below: a CASE over the enum order
}


@dataclass
class InboxFilter:
    status: str = "active"  # active | all | one Status value
    channel: str = ""
    assignee: str = ""  # "" all, "mine", "unassigned", or an agent id
    team: str = ""
    tag: str = ""
    sentiment: str = ""  # negative | neutral | positive | angry(=worst <= -0.6)
    inbox: str = ""
    q: str = ""
    sort: str = "recent"
    page: int = 1
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_args(cls, args) -> InboxFilter:
        f = cls()
        for name in ("status", "channel", "assignee", "team", "tag", "sentiment", "inbox", "q", "sort"):
            value = (args.get(name) or "").strip()[:200]
            if value:
                setattr(f, name, value)
        try:
            f.page = max(1, min(int(args.get("page", 1)), 10_000))
        except (TypeError, ValueError):
            f.page = 1
        if f.sort not in SORTS:
            f.sort = "recent"
        return f

    def live(self) -> dict:
        """The filter as the inbox page applies it to live events (desk.js ``inView``): the
        values ``inbox_query`` uses, and None for those it ignores. A search cannot be
        checked against an event, so the page only knows that there is one."""
        def number(value: str) -> int | None:
            return int(value) if value.isdigit() else None  # as inbox_query reads it

        statuses = {s.value for s in Status}
        return {
            "status": self.status if self.status == "active" or self.status in statuses else "all",
            "channel": self.channel or None,
            "inbox": number(self.inbox),
            "assignee": self.assignee if self.assignee in ("mine", "unassigned") else number(self.assignee),
            "team": number(self.team),
            "tag": self.tag or None,
            "sentiment": self.sentiment if self.sentiment in ("negative", "neutral", "positive", "angry") else None,
            "angry_score": current_app.config["ESCALATE_SCORE"],
            "search": bool(self.q),
        }


def inbox_query(agent: Agent, visible: set[int], f: InboxFilter):
    stmt = select(Ticket).where(Ticket.inbox_id.in_(visible or {-1}))
    if f.status == "active":
        stmt = stmt.where(Ticket.status.in_(Status.active()))
    elif f.status in {s.value for s in Status}:
        stmt = stmt.where(Ticket.status == Status(f.status))
    if f.channel:
        stmt = stmt.where(Ticket.channel == f.channel)
    if f.inbox.isdigit():
        stmt = stmt.where(Ticket.inbox_id == int(f.inbox))
    if f.assignee == "mine":
        stmt = stmt.where(Ticket.assignee_id == agent.id)
    elif f.assignee == "unassigned":
        stmt = stmt.where(Ticket.assignee_id.is_(None))
    elif f.assignee.isdigit():
        stmt = stmt.where(Ticket.assignee_id == int(f.assignee))
    if f.team.isdigit():
        stmt = stmt.where(Ticket.team_id == int(f.team))
    if f.tag:
        stmt = stmt.where(
            exists().where(ticket_tags.c.ticket_id == Ticket.id, ticket_tags.c.tag_id == Tag.id, Tag.name == f.tag)
        )
    if f.sentiment in {"negative", "neutral", "positive"}:
        stmt = stmt.where(Ticket.sentiment_label == f.sentiment)
    elif f.sentiment == "angry":  # "very negative": now, among the negative ones (not at its worst ever)
        stmt = stmt.where(Ticket.sentiment_label == "negative",
                          Ticket.sentiment_score <= current_app.config["ESCALATE_SCORE"])
    if f.q:
        stmt = stmt.where(_text_match(f.q))
    if f.sort == "priority":
        stmt = stmt.order_by(_priority_rank().desc(), Ticket.last_message_at.desc(), Ticket.id.desc())
    else:
        stmt = stmt.order_by(*SORTS[f.sort])
    return stmt


def _priority_rank():
    from sqlalchemy import case

    return case({p.value: i for i, p in enumerate(Priority)}, value=Ticket.priority, else_=0)


def _text_match(q: str):
    """Every query word must appear as a whole token in one of the ticket's messages,
    or the query must appear in the subject or the customer's name."""
    tokens = search_tokens(q)
    conds = []
    if tokens:
        conds.append(
            exists().where(
                Message.ticket_id == Ticket.id,
                and_(*[Message.search_text.contains(f" {t} ", autoescape=True) for t in tokens]),
            )
        )
    needle = normalize(q)
    # subjects and names are stored as written: ﾔﾏﾀﾞ, ＡＢＣ
    conds.append(folded(Ticket.subject).contains(needle, autoescape=True))
    conds.append(exists().where(Contact.id == Ticket.contact_id,
                                folded(Contact.name).contains(needle, autoescape=True)))
    if needle.startswith("#") and needle[1:].isdigit() and int(needle[1:]) <= ROW_ID_MAX:
        conds.append(Ticket.id == int(needle[1:]))
    return or_(*conds)


def paginate(stmt, page: int, per_page: int):
    return db.paginate(stmt, page=page, per_page=per_page, error_out=False)
