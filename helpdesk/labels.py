"""What a person reads for the codes the desk stores (channels, ticket states and priorities,
roles, audit entries): one table each for templates, the desk's JavaScript (through
agent/_live.html), the supervisor reports and the audit log."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

CHANNEL_LABELS = {
    "email": _l("Email"), "chat": _l("Chat"), "line": "LINE", "messenger": "Messenger",
    "social": _l("Social"), "api": "API", "test": _l("Test"),
}


# Each language named in itself, so a reader finds their own whatever the page's language is.
LANGUAGE_NAMES = {"ja": "日本語", "en": "English"}


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def channel_label(kind: str) -> str:
    """The label of a channel kind; an unknown kind (a plug-in channel) shows its code."""
    return str(CHANNEL_LABELS.get(kind, kind))


def channel_labels() -> dict[str, str]:
    return {kind: str(label) for kind, label in CHANNEL_LABELS.items()}


# What the audit log calls each action its entries record (helpdesk.services.tickets.audit):
# an admin reads words, the filter still sends the code. A code not listed here (written by an
# older or newer version, or a plug-in) shows as itself.
AUDIT_ACTION_LABELS = {
    "ticket.update": _l("Ticket updated"), "ticket.merge": _l("Tickets merged"),
    "contact.update": _l("Customer updated"), "contact.merge": _l("Customers merged"),
    "account.update": _l("Own account updated"),
    "inbox.create": _l("Inbox created"), "inbox.update": _l("Inbox updated"),
    "inbox.delete": _l("Inbox deleted"),
    "agent.create": _l("Agent added"), "agent.update": _l("Agent updated"),
    "team.create": _l("Team created"), "team.update": _l("Team updated"), "team.delete": _l("Team deleted"),
    "canned.create": _l("Canned reply created"), "canned.update": _l("Canned reply updated"),
    "canned.delete": _l("Canned reply deleted"),
    "token.create": _l("API token created"), "token.revoke": _l("API token revoked"),
}

# The kinds of record an audit entry is about.
AUDIT_OBJECT_LABELS = {
    "ticket": _l("Ticket"), "contact": _l("Customer"), "agent": _l("Agent"), "inbox": _l("Inbox"),
    "team": _l("Team"), "canned_reply": _l("Canned reply"), "api_token": _l("API token"),
}

# The fields an audit entry's changes name; one not listed shows its key.
AUDIT_FIELD_LABELS = {
    "status": _l("Status"), "priority": _l("Priority"), "assignee_id": _l("Assignee"), "team_id": _l("Team"),
    "tags": _l("Tags"), "subject": _l("Subject"), "name": _l("Name"), "email": _l("Email"), "phone": _l("Phone"),
    "role": _l("Role"), "teams": _l("Teams"), "members": _l("Members"), "password": _l("Password"),
    "secrets": _l("Secrets"), "settings": _l("Settings (JSON)"), "shortcut": _l("Shortcut"),
    "inboxes": _l("Inboxes"), "open_tickets": _l("Open tickets"), "locale": _l("Language"),
    "kind": _l("Channel"), "identities": _l("Identities"), "active": _l("Active (may log in)"),
    "note": _l("Note (agents only)"), "merged_into": _l("Merge into ticket"), "merged": _l("Merged from"),
    "messages": _l("Messages moved"), "availability": _l("Availability"),
}


def audit_action_label(code: str) -> str:
    return str(AUDIT_ACTION_LABELS.get(code, code))


def audit_object_label(code: str) -> str:
    return str(AUDIT_OBJECT_LABELS.get(code, code))


# A field whose meaning depends on the record: an inbox's "active" is not an agent's.
AUDIT_FIELD_LABELS_OF = {
    ("inbox", "active"): _l("Active (accepts new messages)"),
}


def audit_field_label(key: str, object_type: str | None = None) -> str:
    return str(AUDIT_FIELD_LABELS_OF.get((object_type, key)) or AUDIT_FIELD_LABELS.get(key, key))


ROLE_LABELS = {"admin": _l("Administrator"), "supervisor": _l("Supervisor"), "agent": _l("Agent")}
STATUS_LABELS = {"new": _l("New"), "open": _l("Open"), "pending": _l("Pending"), "resolved": _l("Resolved"),
                 "closed": _l("Closed")}
AVAILABILITY_LABELS = {"available": _l("Available"), "busy": _l("Busy")}
PRIORITY_LABELS = {"low": _l("Low"), "normal": _l("Normal"), "high": _l("High"), "urgent": _l("Urgent")}


def availability_label(code: str) -> str:
    return str(AVAILABILITY_LABELS.get(code, code))


def role_label(code: str) -> str:
    return str(ROLE_LABELS.get(code, code))


def status_label(code: str) -> str:
    return str(STATUS_LABELS.get(code, code))


def priority_label(code: str) -> str:
    return str(PRIORITY_LABELS.get(code, code))


def status_labels() -> dict[str, str]:
    return {code: str(label) for code, label in STATUS_LABELS.items()}


def priority_labels() -> dict[str, str]:
    return {code: str(label) for code, label in PRIORITY_LABELS.items()}
