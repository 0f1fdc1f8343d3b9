"""Who is connected: agents viewing a ticket ("X is viewing"), agents online for an
inbox (the widget's "we are online"), visitors online (no email copy of a reply they see),
and an agent's own sockets (dropped when an admin changes what the agent may see).

The process that owns a socket is the only one that adds or removes it: the /agent and
/widget namespaces call this registry on connect, view, leave and disconnect. It keeps
its own sockets in memory; that is the whole answer when no Redis is configured.

With ``REDIS_URL`` every change is also copied to Redis, so every web process and every
RQ worker (which has no sockets) gets the same answer. One sorted set per ticket, inbox,
visitor key and agent holds socket ids scored with their expiry time; ``agent:<sid>`` holds the
agent's id and name. A heartbeat thread re-adds this process's sockets every
``TTL_SECONDS / 3``, so the entries of a server that crashed expire by themselves, and a
Redis that restarted empty is refilled. Readers count only entries not yet expired.

An answer is this process's sockets plus what Redis says. When Redis cannot be reached
(logged as a warning, never raised) it is this process's sockets only: a lower bound.
Every yes is then still true, and a wrong no loses nothing: no viewers shown, the widget
asks for an email, an email copy of a reply goes to a visitor who may have seen it live.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from flask import current_app

log = logging.getLogger(__name__)

# Writers' and readers' clocks may differ by seconds, not minutes.
TTL_SECONDS = 180.0

T = TypeVar("T")


def registry() -> Presence:
    """This app's registry, made on first use (no I/O in the app factory)."""
    ext = current_app.extensions
    if "helpdesk.presence" not in ext:
        ext["helpdesk.presence"] = Presence(current_app.config["REDIS_URL"] or None,
                                            current_app.config["SOCKETIO_CHANNEL"])
    return ext["helpdesk.presence"]


@dataclass
class _AgentSocket:
    agent: dict  # {"id", "name"}
    inbox_ids: tuple[int, ...]
    ticket_ids: set[int] = field(default_factory=set)


def _distinct_agents(agents) -> list[dict]:
    """One entry per agent (an agent may have the ticket open in two tabs), stable order."""
    return sorted({a["id"]: a for a in agents}.values(), key=lambda a: a["id"])


class Presence:
    def __init__(self, redis_url: str | None = None, prefix: str = "helpdesk", ttl: float = TTL_SECONDS) -> None:
        self._agents: dict[str, _AgentSocket] = {}
        self._visitors: dict[str, str] = {}  # sid -> visitor key
        # One lock orders each local change with its copy in Redis, so a heartbeat or a
        # view racing a disconnect never puts back a socket that has gone.
        self._lock = threading.Lock()
        self._ttl = ttl
        self._prefix = f"{prefix}:presence"
        self._heartbeat: threading.Thread | None = None
        self._redis = None
        if redis_url:
            from redis import Redis

            self._redis = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)

    # ---- changes (only from the process that owns the socket) -----------------------

    def agent_connected(self, sid: str, agent: dict, inbox_ids) -> None:
        with self._lock:
            self._agents[sid] = entry = _AgentSocket(dict(agent), tuple(sorted(inbox_ids)))
            self._copy({sid: self._keys(sid)}, {sid: entry.agent})

    def visitor_connected(self, sid: str, key: str) -> None:
        with self._lock:
            self._visitors[sid] = key
            self._copy({sid: self._keys(sid)})

    def view(self, sid: str, ticket_id: int) -> None:
        with self._lock:
            entry = self._agents.get(sid)
            if entry is None:
                return
            entry.ticket_ids.add(ticket_id)
            self._copy({sid: [self._key("ticket", ticket_id)]}, {sid: entry.agent})

    def leave(self, sid: str, ticket_id: int) -> None:
        with self._lock:
            entry = self._agents.get(sid)
            if entry is None or ticket_id not in entry.ticket_ids:
                return
            entry.ticket_ids.discard(ticket_id)
            self._uncopy(sid, [self._key("ticket", ticket_id)])

    def disconnected(self, sid: str) -> list[int]:
        """Forget a socket everywhere; returns the tickets it was viewing."""
        with self._lock:
            keys = self._keys(sid)
            entry = self._agents.pop(sid, None)
            self._visitors.pop(sid, None)
            if keys:
                self._uncopy(sid, keys, agent=entry is not None)
        return sorted(entry.ticket_ids) if entry else []

    # ---- questions (any process) ------------------------------------------------

    def viewers(self, ticket_id: int) -> list[dict]:
        with self._lock:
            here = [e.agent for e in self._agents.values() if ticket_id in e.ticket_ids]
        return _distinct_agents(here + self._shared(lambda: self._shared_agents(self._key("ticket", ticket_id)), []))

    def agents_online(self, inbox_id: int) -> bool:
        with self._lock:
            if any(inbox_id in e.inbox_ids for e in self._agents.values()):
                return True
        return self._shared(lambda: self._live_count(self._key("inbox", inbox_id)) > 0, False)

    def online_agent_ids(self, inbox_id: int) -> set[int]:
        """The agents with a live /agent socket that sees this inbox, on any server."""
        with self._lock:
            here = {e.agent["id"] for e in self._agents.values() if inbox_id in e.inbox_ids}
        return here | {a["id"] for a in self._shared(lambda: self._shared_agents(self._key("inbox", inbox_id)), [])}

    def online_among(self, agent_ids) -> set[int]:
        """Which of these agents have a live /agent socket, on any server."""
        ids = set(agent_ids)
        with self._lock:
            here = {e.agent["id"] for e in self._agents.values()} & ids

        def shared() -> set[int]:
            rest = sorted(ids - here)
            if not rest:
                return set()
            now = time.time()
            with self._redis.pipeline(transaction=False) as p:
                for agent_id in rest:
                    p.zcount(self._key("sockets", agent_id), now, "+inf")
                counts = p.execute()
            return {agent_id for agent_id, n in zip(rest, counts) if n}

        return here | self._shared(shared, set())

    def visitor_online(self, key: str) -> bool:
        with self._lock:
            if key in self._visitors.values():
                return True
        return self._shared(lambda: self._live_count(self._key("visitor", key)) > 0, False)

    def sockets_of(self, agent_id: int) -> list[str]:
        """The agent's /agent socket ids on every server."""
        with self._lock:
            here = {sid for sid, e in self._agents.items() if e.agent["id"] == agent_id}

        def shared() -> set[str]:
            return {s.decode() for s in self._redis.zrangebyscore(self._key("sockets", agent_id), time.time(), "+inf")}

        return sorted(here | self._shared(shared, set()))

    # ---- Redis ------------------------------------------------------------------

    def _key(self, kind: str, ident) -> str:
        return f"{self._prefix}:{kind}:{ident}"

    def _keys(self, sid: str) -> list[str]:
        """The sorted sets a local socket belongs to."""
        if sid in self._visitors:
            return [self._key("visitor", self._visitors[sid])]
        entry = self._agents.get(sid)
        if entry is None:
            return []
        return ([self._key("sockets", entry.agent["id"])]
                + [self._key("inbox", i) for i in entry.inbox_ids]
                + [self._key("ticket", t) for t in entry.ticket_ids])

    def _shared(self, ask: Callable[[], T], default: T) -> T:
        if self._redis is None:
            return default
        from redis.exceptions import RedisError

        try:
            return ask()
        except RedisError as exc:
            log.warning("presence: Redis unavailable, answering from this process only (%s)", exc)
            return default

    def _live_count(self, key: str) -> int:
        return self._redis.zcount(key, time.time(), "+inf")

    def _shared_agents(self, key: str) -> list[dict]:
        """The agents of the live sockets in one of the sorted sets."""
        sids = self._redis.zrangebyscore(key, time.time(), "+inf")
        if not sids:
            return []
        found = self._redis.mget([self._key("agent", s.decode()) for s in sids])
        return [json.loads(v) for v in found if v is not None]

    def _copy(self, sets: dict[str, list[str]], agents: dict[str, dict] | None = None) -> None:
        """Add sockets to their sorted sets with a fresh expiry; drop expired members on the way."""
        if self._redis is None:
            return
        now = time.time()
        ttl = max(1, round(self._ttl))

        def write():
            with self._redis.pipeline(transaction=False) as p:
                for sid, keys in sets.items():
                    for key in keys:
                        p.zadd(key, {sid: now + self._ttl})
                        p.zremrangebyscore(key, "-inf", now)
                        p.expire(key, ttl)
                for sid, agent in (agents or {}).items():
                    p.set(self._key("agent", sid), json.dumps(agent, ensure_ascii=False), ex=ttl)
                p.execute()

        self._shared(write, None)
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(target=self._beat, name="helpdesk-presence", daemon=True)
            self._heartbeat.start()

    def _uncopy(self, sid: str, keys: list[str], agent: bool = False) -> None:
        if self._redis is None:
            return

        def write():
            with self._redis.pipeline(transaction=False) as p:
                for key in keys:
                    p.zrem(key, sid)
                if agent:
                    p.delete(self._key("agent", sid))
                p.execute()

        self._shared(write, None)

    def _beat(self) -> None:
        """Runs while this process has sockets; a new one starts with the next connect."""
        while True:
            time.sleep(self._ttl / 3)
            with self._lock:
                sids = [*self._agents, *self._visitors]
                if not sids:
                    self._heartbeat = None
                    return
                try:
                    self._copy({sid: self._keys(sid) for sid in sids},
                               {sid: e.agent for sid, e in self._agents.items()})
                except Exception:  # a dead heartbeat would let every live entry expire
                    log.exception("presence heartbeat failed")
