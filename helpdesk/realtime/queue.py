"""The Socket.IO message queue on Redis, with a publisher that never hangs a request.

python-socketio's ``RedisManager`` publishes and listens on one Redis client without a timeout,
so while Redis hangs (paused, a network partition) every emit, which runs after each commit
that stores a message, waits for it: a webhook or API post stored its message but did not
answer. Here a publish waits ``REDIS_TIMEOUT_SECONDS`` at most, on a client of its own, and is
not tried again after a timeout; the listener keeps its blocking client, since a read timeout
there would drop the events published while it subscribes again. An emit lost so is an event
every page gets back from ``/api/v1/events`` when it resyncs (events.py). Every publish tries
Redis again: one skipped for a while after a failure would drop the first events after Redis
came back, to pages whose own connection never broke and so never resync.
"""

from __future__ import annotations

import threading

import socketio


class RedisQueue(socketio.RedisManager):
    def __init__(self, url: str, *, timeout: float, **kwargs):
        super().__init__(url, **kwargs)
        self._timeout = timeout
        self._publisher = None
        self._lock = threading.Lock()

    def _publisher_client(self):
        with self._lock:
            if self._publisher is None:
                from redis import Redis

                from ..config import redis_timeouts

                self._publisher = Redis.from_url(self.redis_url,
                                                 **redis_timeouts({"REDIS_TIMEOUT_SECONDS": self._timeout}))
            return self._publisher

    def _publish(self, data):
        from redis.exceptions import RedisError

        try:
            return self._publisher_client().publish(self.channel, self.json.dumps(data))
        except RedisError as exc:
            self._get_logger().error("Cannot publish to redis, event dropped (pages resync): %s", exc)
            return None
