"""Customers, with one identity per channel they wrote from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ._types import JSONType, UTCDateTime, utcnow


class Contact(db.Model):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    phone: Mapped[str | None] = mapped_column(String(40))
    avatar_url: Mapped[str | None] = mapped_column(String(500))
    # After a merge the loser points at the survivor and is kept for the audit trail.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    attributes: Mapped[dict] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sentiment_latest_score: Mapped[float | None]
    sentiment_latest_label: Mapped[str | None] = mapped_column(String(10))
    sentiment_trend: Mapped[str | None] = mapped_column(String(10))

    identities: Mapped[list[ContactIdentity]] = relationship(
        back_populates="contact", cascade="all, delete-orphan", order_by="ContactIdentity.id"
    )

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        for ident in self.identities:
            if ident.display_name:
                return ident.display_name
        return self.email or f"#{self.id}"


class ContactIdentity(db.Model):
    """(channel kind, external user id): how a customer is recognised on one channel."""

    __tablename__ = "contact_identities"
    __table_args__ = (UniqueConstraint("kind", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(200))
    verified: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    contact: Mapped[Contact] = relationship(back_populates="identities")
