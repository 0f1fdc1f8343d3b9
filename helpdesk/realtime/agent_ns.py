"""The /agent namespace: authenticated agents, rooms per inbox, presence and typing."""

from __future__ import annotations

from flask import g, has_app_context, request
from flask_login import current_user
from flask_socketio import Namespace, join_room, leave_room

from ..extensions import db
from ..models import Availability, Ticket
from ..models._types import ROW_ID_MAX
from ..services.access import visible_inbox_ids
from . import events, presence


class AgentNamespace(Namespace):
    def trigger_event(self, event, *args):
        # Authenticate every event afresh: a socket may outlive its login session.
        if has_app_context():
            g.pop("_login_user", None)
        return super().trigger_event(event, *args)

    def on_connect(self, auth=None):
        if not current_user.is_authenticated:
            return False  # refuses the connection
        join_room(events.agent_room(current_user.id))
        inbox_ids = visible_inbox_ids(current_user)
        for inbox_id in inbox_ids:
            join_room(events.inbox_room(inbox_id))
        if current_user.is_supervisor:
            join_room(events.SUPERVISORS)
        presence.registry().agent_connected(request.sid, {"id": current_user.id, "name": current_user.name},
                                            inbox_ids)
        if current_user.availability is Availability.available and not current_user.sees_all_inboxes:
            from ..services.assign import enqueue_waiting

            enqueue_waiting(inbox_ids)  # an agent coming online may have room for tickets waiting
        return True

    def on_disconnect(self, reason=None):
        for tid in presence.registry().disconnected(request.sid):
            self._presence(tid)

    def _ticket(self, data) -> Ticket | None:
        try:
            ticket_id = int((data or {}).get("ticket_id"))
        except (TypeError, ValueError):
            return None
        if not 0 < ticket_id <= ROW_ID_MAX:  # past the id column's range, PostgreSQL fails the lookup
            return None
        ticket = db.session.get(Ticket, ticket_id)
        if ticket is None or ticket.inbox_id not in visible_inbox_ids(current_user):
            return None
        return ticket

    def on_view_ticket(self, data):
        if not current_user.is_authenticated:
            return {"ok": False, "error": "unauthenticated"}
        ticket = self._ticket(data)
        if ticket is None:
            return {"ok": False, "error": "not found"}
        try:
            join_room(events.ticket_room(ticket.id))
        except (KeyError, ValueError):  # the page went away while this event waited for its thread
            return {"ok": False, "error": "disconnected"}
        presence.registry().view(request.sid, ticket.id)
        self._presence(ticket.id)
        return {"ok": True}

    def on_leave_ticket(self, data):
        ticket = self._ticket(data) if current_user.is_authenticated else None
        if ticket is None:
            return {"ok": False}
        leave_room(events.ticket_room(ticket.id))
        presence.registry().leave(request.sid, ticket.id)
        self._presence(ticket.id)
        return {"ok": True}

    def on_typing(self, data):
        if not current_user.is_authenticated:
            return {"ok": False}
        ticket = self._ticket(data)
        if ticket is None:
            return {"ok": False}
        payload = {"ticket_id": ticket.id, "agent": {"id": current_user.id, "name": current_user.name},
                   "typing": bool((data or {}).get("typing", True)),
                   "private": bool((data or {}).get("private", False))}
        events.emit_now(events.AGENT_TYPING, payload, to=events.ticket_room(ticket.id), skip_sid=request.sid)
        hook = _typing_hooks.get(ticket.channel)
        if hook and payload["typing"] and not payload["private"]:
            hook(ticket)
        return {"ok": True}

    def _presence(self, ticket_id: int) -> None:
        viewers = presence.registry().viewers(ticket_id)
        events.emit_now(events.PRESENCE_UPDATED, {"ticket_id": ticket_id, "viewers": viewers},
                        to=events.ticket_room(ticket_id))


def drop_agent_sockets(agent_ids) -> None:
    """Disconnect these agents' open pages, on every server (Socket.IO forwards a disconnect
    through the message queue to the server that holds the socket). Call it after the commit
    that changed what they may see: a page reconnects at once and joins the rooms its agent
    may now see, and a deactivated agent is refused. Without this, a socket keeps the inbox
    rooms it joined at connect time."""
    from ..extensions import socketio

    for agent_id in sorted(set(agent_ids)):
        for sid in presence.registry().sockets_of(agent_id):
            socketio.server.disconnect(sid, namespace=events.AGENT_NS)


# Channels that show the customer an agent is typing (widget indicator, LINE loading
# animation) register a hook here: fn(ticket).
_typing_hooks: dict = {}


def on_agent_typing(channel: str):
    def deco(fn):
        _typing_hooks[channel] = fn
        return fn
    return deco


def register(socketio) -> None:
    """Once per process: the shared SocketIO object re-binds its handlers on every init_app."""
    if not any(h.namespace == events.AGENT_NS for h in socketio.namespace_handlers):
        socketio.on_namespace(AgentNamespace(events.AGENT_NS))
