"""An inbox is one channel account (a mailbox, a LINE channel, a widget...)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ._types import JSONType, UTCDateTime, utcnow
from .agent import Agent

inbox_members = Table(
    "inbox_members",
    db.metadata,
    Column("inbox_id", ForeignKey("inboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("agent_id", ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
)


def _new_key() -> str:
    return secrets.token_urlsafe(16)


class Inbox(db.Model):
    __tablename__ = "inboxes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20), index=True)
    # Public identifier used in webhook URLs and the widget tag; not a secret.
    key: Mapped[str] = mapped_column(String(40), unique=True, default=_new_key)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    secrets: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    members: Mapped[list[Agent]] = relationship(secondary=inbox_members)

    def secret(self, name: str, default: str = "") -> str:
        return str((self.secrets or {}).get(name, default))

    def masked_secrets(self) -> dict[str, str]:
        """Secrets as an admin may see them again: the last four characters tell which one is
        saved, but only of a secret long enough that they give little of it away (a short one,
        a test password say, was shown whole)."""
        return {k: ("•" * 8 + (str(v)[-4:] if len(str(v)) >= 12 else "")) if v else ""
                for k, v in (self.secrets or {}).items()}
