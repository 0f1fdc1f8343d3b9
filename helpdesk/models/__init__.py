"""All models, importable from one place."""

from .agent import Agent, ApiToken, Availability, Role, Team
from .contact import Contact, ContactIdentity
from .inbox import Inbox
from .message import Delivery, Direction, Message
from .misc import Alert, AuditLog, CannedReply, Event
from .survey import Survey, SurveyAnswer  # noqa: F401
from .ticket import Priority, Status, Tag, Ticket

__all__ = [
    "Agent", "Alert", "ApiToken", "AuditLog", "Availability", "CannedReply", "Contact", "ContactIdentity", "Delivery",
    "Direction", "Event", "Inbox", "Message", "Priority", "Role", "Status", "Tag", "Team", "Ticket",
]
