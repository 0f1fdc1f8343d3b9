"""One serializer per model: every payload (events and JSON API) is built here."""

from __future__ import annotations

from typing import Any

from ..models import Agent, Contact, Message, Ticket


def _iso(dt) -> str | None:
    return dt.isoformat() if dt else None


def agent_json(agent: Agent | None) -> dict[str, Any] | None:
    if agent is None:
        return None
    return {"id": agent.id, "name": agent.name}


def message_json(msg: Message) -> dict[str, Any]:
    return {
        "id": msg.id,
        "ticket_id": msg.ticket_id,
        "inbox_id": msg.inbox_id,
        "direction": msg.direction.value,
        "body": msg.body,
        "has_quoted": bool(msg.quoted),
        "attachments": [
            {k: a.get(k) for k in ("filename", "content_type", "size", "url")} for a in (msg.attachments or [])
        ],
        "agent": agent_json(msg.agent),
        "contact_id": msg.contact_id,
        "sent_at": _iso(msg.sent_at),
        "delivery": msg.delivery.value,
        "delivery_error": msg.delivery_error,
        "unsent": msg.unsent,
        "public": bool((msg.meta or {}).get("public")),
        "sentiment": sentiment_json(msg),
        # the customer edited it (Messenger): the earlier texts, oldest first, with when each was written
        "edited": bool((msg.meta or {}).get("edits")),
        "edits": [{"text": e.get("text"), "at": e.get("at")} for e in (msg.meta or {}).get("edits") or []
                  if isinstance(e, dict)],
        # the customer's emoji on it (a Messenger reaction), or None
        "reaction": (msg.meta or {}).get("reaction") or None,
    }


def sentiment_json(msg: Message) -> dict[str, Any] | None:
    if not msg.sentiment_label:
        return None
    return {
        "label": msg.sentiment_label,
        "score": msg.sentiment_score,
        "probs": msg.sentiment_probs,
        "anger": msg.sentiment_anger,
        "model": msg.sentiment_model,
    }


def ticket_json(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "inbox_id": ticket.inbox_id,
        "channel": ticket.channel,
        "subject": ticket.subject,
        "status": ticket.status.value,
        "priority": ticket.priority.value,
        "assignee": agent_json(ticket.assignee),
        "team_id": ticket.team_id,
        "tags": [t.name for t in ticket.tags],
        "contact": {"id": ticket.contact.id, "name": ticket.contact.display_name},
        "created_at": _iso(ticket.created_at),
        "last_message_at": _iso(ticket.last_message_at),
        "first_response_at": _iso(ticket.first_response_at),
        "resolved_at": _iso(ticket.resolved_at),
        "sentiment": {
            "label": ticket.sentiment_label,
            "score": ticket.sentiment_score,
            "trend": ticket.sentiment_trend,
            "worst": ticket.sentiment_worst_score,
        },
    }


def contact_json(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "name": contact.display_name,
        "email": contact.email,
        "identities": [
            {"kind": i.kind, "external_id": i.external_id, "display_name": i.display_name, "verified": i.verified}
            for i in contact.identities
        ],
        "sentiment": {"label": contact.sentiment_latest_label, "score": contact.sentiment_latest_score,
                      "trend": contact.sentiment_trend},
    }
