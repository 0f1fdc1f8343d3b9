"""Tickets: one customer conversation, on one inbox, through its lifecycle."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Column, Enum, ForeignKey, Index, String, Table, event
from sqlalchemy.orm import Mapped, WriteOnlyMapped, mapped_column, relationship

from ..extensions import db
from ._types import UTCDateTime, utcnow
from .agent import Agent, Team
from .contact import Contact
from .inbox import Inbox


class Status(str, enum.Enum):
    new = "new"
    open = "open"
    pending = "pending"
    resolved = "resolved"
    closed = "closed"

    @classmethod
    def active(cls) -> tuple[Status, ...]:
        return (cls.new, cls.open, cls.pending)


class Priority(str, enum.Enum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"

    @property
    def rank(self) -> int:
        return list(Priority).index(self)


ticket_tags = Table(
    "ticket_tags",
    db.metadata,
    Column("ticket_id", ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
)


class Tag(db.Model):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)


class Ticket(db.Model):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_inbox_status_last", "inbox_id", "status", "last_message_at"),
        Index("ix_tickets_contact_inbox_status", "contact_id", "inbox_id", "status"),
        # Supervisor reports: tickets opened in a range per agent/team/channel/inbox with their times
        # and sentiment shift, read from the index alone; and customers active in a range
        # (bench/dashboard.py, docs/performance.md).
        Index("ix_tickets_report", "created_at", "assignee_id", "team_id", "channel", "inbox_id", "first_response_at",
              "resolved_at", "sentiment_first_score", "sentiment_score", "paused_seconds"),
        Index("ix_tickets_contact_last", "last_message_at", "contact_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    channel: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[Status] = mapped_column(Enum(Status, native_enum=False, length=20), default=Status.new, index=True)
    priority: Mapped[Priority] = mapped_column(
        Enum(Priority, native_enum=False, length=20), default=Priority.normal
    )
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"), index=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    # Channel-specific conversation key (email thread root, LINE group id, ...).
    thread_key: Mapped[str | None] = mapped_column(String(255), index=True)
    # Where replies go on the provider: a user id, a LINE group id, an email address.
    reply_to: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The resolution clock stops while the ticket waits for its customer (pending): since when it
    # waits now, and the business seconds of its earlier waits (kept by _pending_clock below;
    # whether the reports take them off is services/sla.py's SLA_PAUSE_WHEN_PENDING).
    pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_seconds: Mapped[int] = mapped_column(default=0, server_default="0")
    # The ticket this one was merged into (services/tickets.merge_tickets): its conversation is
    # there. No foreign key: both are tickets of one inbox, deleted together; and SQLite can add a
    # column with a reference it reports back only by copying the table (the migration).
    merged_into_id: Mapped[int | None]
    # Sentiment aggregate over the customer's messages (services/sentiment.py).
    sentiment_label: Mapped[str | None] = mapped_column(String(10), index=True)
    sentiment_score: Mapped[float | None]
    sentiment_first_score: Mapped[float | None]
    sentiment_worst_score: Mapped[float | None]
    sentiment_trend: Mapped[str | None] = mapped_column(String(10))

    inbox: Mapped[Inbox] = relationship()
    contact: Mapped[Contact] = relationship()
    assignee: Mapped[Agent | None] = relationship()
    team: Mapped[Team | None] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=ticket_tags, order_by="Tag.name")
    messages: WriteOnlyMapped["Message"] = relationship(  # noqa: F821
        back_populates="ticket", passive_deletes=True, order_by="Message.id"
    )


def pending_clock(old: Status | None, new: Status, pending_since: datetime | None, paused_seconds: int | None,
                  now: datetime) -> dict:
    """What ``pending_since`` and ``paused_seconds`` become when a ticket goes from ``old`` to
    ``new`` at ``now``: a wait begins, or ends and its business time is added (the business
    clock of the desk's settings now: a later change of hours does not redo earlier waits)."""
    if new is Status.pending and old is not Status.pending:
        return {"pending_since": now}
    if old is Status.pending and new is not Status.pending:
        from flask import current_app

        from ..services.sla import BusinessClock

        waited = BusinessClock.from_config(current_app.config).seconds_between(pending_since, now) \
            if pending_since is not None else 0
        return {"pending_since": None, "paused_seconds": (paused_seconds or 0) + waited}
    return {}


@event.listens_for(Ticket.status, "set", active_history=True)
def _pending_clock(ticket: Ticket, new: Status, old, _initiator) -> None:
    """Every status change through the ORM keeps the pending clock (ingest, which writes its
    reopening with a plain UPDATE, calls ``pending_clock`` itself)."""
    old = Status(old) if isinstance(old, str) else None  # None: a new ticket's first status
    for key, value in pending_clock(old, Status(new), ticket.pending_since, ticket.paused_seconds, utcnow()).items():
        setattr(ticket, key, value)
