"""Messages in, out and private notes, with delivery and sentiment."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ._types import JSONType, UTCDateTime, utcnow
from .agent import Agent
from .ticket import Ticket


class Direction(str, enum.Enum):
    inbound = "in"
    outbound = "out"
    note = "note"


class Delivery(str, enum.Enum):
    none = "none"  # inbound messages and notes
    pending = "pending"
    sent = "sent"
    delivered = "delivered"
    read = "read"
    failed = "failed"


class Message(db.Model):
    __tablename__ = "messages"
    __table_args__ = (
        # The dedupe guarantee: a provider retry can never create a second row.
        UniqueConstraint("inbox_id", "external_id"),
        Index("ix_messages_ticket_id_id", "ticket_id", "id"),
        Index("ix_messages_sentiment_pending", "direction", "sentiment_label"),
        Index("ix_messages_created_at", "created_at"),
        # A customer's messages (merges, the directory) and their newest labelled ones
        # (sentiment.py): SQLite, which has no planner statistics, picks it over the report
        # indexes only with the label in it too.
        Index("ix_messages_contact", "contact_id", "direction", "sentiment_label", "sent_at"),
        # Supervisor reports: customer messages by time with their label and score, index-only
        # (bench/dashboard.py, docs/performance.md).
        Index("ix_messages_report", "direction", "sent_at", "sentiment_label", "sentiment_score", "inbox_id",
              "ticket_id"),
        # Voice of the customer: one label's keyword lists by time, index-only. Safe because a list
        # is bounded (services/sentiment.MAX_KEYWORDS terms of nlp.keywords.MAX_KEYWORD_CHARS):
        # PostgreSQL refuses B-tree rows over ~2.7 kB.
        Index("ix_messages_keywords", "direction", "sentiment_label", "sent_at", "keywords"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    direction: Mapped[Direction] = mapped_column(Enum(Direction, native_enum=False, length=10))
    body: Mapped[str] = mapped_column(Text, default="")
    # Quoted history cut from email bodies, kept for "show quoted".
    quoted: Mapped[str | None] = mapped_column(Text)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # Provider facts we may need later: reply tokens, message-ids, sticker ids...
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    external_id: Mapped[str | None] = mapped_column(String(255))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivery: Mapped[Delivery] = mapped_column(Enum(Delivery, native_enum=False, length=10), default=Delivery.none)
    delivery_error: Mapped[str | None] = mapped_column(Text)
    delivery_attempts: Mapped[int] = mapped_column(default=0)
    # A pending reply being sent: until then no other worker sends it (services/replies.deliver,
    # which holds no transaction open across the provider's call).
    send_claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsent: Mapped[bool] = mapped_column(default=False)
    # Sentiment: NULL label on an inbound message means "pending" for the worker.
    sentiment_label: Mapped[str | None] = mapped_column(String(10))
    sentiment_score: Mapped[float | None]
    sentiment_probs: Mapped[dict[str, float] | None] = mapped_column(JSONType)
    sentiment_anger: Mapped[float | None]
    sentiment_model: Mapped[str | None] = mapped_column(String(120))
    sentiment_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    keywords: Mapped[list[str] | None] = mapped_column(JSONType)
    # Space-joined fugashi tokens for Japanese full-text search (nlp.text.search_tokens).
    search_text: Mapped[str] = mapped_column(Text, default="")

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
    agent: Mapped[Agent | None] = relationship()

    @property
    def is_note(self) -> bool:
        return self.direction is Direction.note
