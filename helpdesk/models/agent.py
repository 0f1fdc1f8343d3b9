"""People who work the desk, their teams and integration tokens."""

from __future__ import annotations

import enum
import hashlib
import secrets
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_login import UserMixin
from sqlalchemy import Column, Enum, ForeignKey, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ._types import UTCDateTime, utcnow

_hasher = PasswordHasher()


class Role(str, enum.Enum):
    agent = "agent"
    supervisor = "supervisor"
    admin = "admin"


class Availability(str, enum.Enum):
    """Whether an agent takes new tickets from automatic assignment (services/assign.py): set by
    the agent in the desk's top bar. Offline is not a state of its own: it is having no page of
    the desk open (realtime/presence.py)."""

    available = "available"
    busy = "busy"


team_members = Table(
    "team_members",
    db.metadata,
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("agent_id", ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
)


class Team(db.Model):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    members: Mapped[list[Agent]] = relationship(secondary=team_members, back_populates="teams")


class Agent(UserMixin, db.Model):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=20), default=Role.agent)
    locale: Mapped[str] = mapped_column(String(8), default="ja")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    availability: Mapped[Availability] = mapped_column(Enum(Availability, native_enum=False, length=16),
                                                       default=Availability.available, server_default="available")
    teams: Mapped[list[Team]] = relationship(secondary=team_members, back_populates="members")

    def set_password(self, password: str) -> None:
        self.password_hash = _hasher.hash(password)

    def check_password(self, password: str) -> bool:
        try:
            return _hasher.verify(self.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive agents
        return self.active

    def get_id(self) -> str:
        # Sessions and remember-me cookies name the password too (a digest of its hash), so
        # a new password ends every session made with the old one (views/auth.load_agent).
        return f"{self.id}:{self.session_key}"

    @property
    def session_key(self) -> str:
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:16]

    @property
    def sees_all_inboxes(self) -> bool:
        return self.role in (Role.admin, Role.supervisor)

    @property
    def is_supervisor(self) -> bool:
        return self.role in (Role.admin, Role.supervisor)


class ApiToken(db.Model):
    """Token for integrations posting through the API channel; only its hash is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(default=False)

    @staticmethod
    def hash(token: str) -> str:
        # Tokens are 256-bit random, so a fast hash is enough (no dictionary to attack).
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, name: str, inbox_id: int) -> tuple[ApiToken, str]:
        token = "hd_" + secrets.token_urlsafe(32)
        return cls(name=name, inbox_id=inbox_id, token_hash=cls.hash(token), prefix=token[:10]), token
