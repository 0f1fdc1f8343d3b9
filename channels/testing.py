"""A channel for tests and demos: sends land in a list; failures on request.

It lets the inbound and outbound paths be exercised end to end without a provider.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Mapping

from .api import ApiAdapter, attachment_links
from .base import Outbound, SendResult, TransientSendError, register

SENT: list[dict[str, Any]] = []
_lock = threading.Lock()
_ids = itertools.count(1)


@register
class TestingAdapter(ApiAdapter):
    """Parses like the API channel. Settings: ``fail`` = "transient" (always),
    "transient_once" (first attempt of each message) or "permanent"."""

    kind = "test"
    label = "Test"
    testing_only = True

    def verify(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        return True  # the tests post to the webhook route unsigned

    def send(self, recipient: str, outbound: Outbound) -> SendResult:
        mode = self.settings.get("fail")
        with _lock:
            attempts = sum(1 for s in SENT if s["message_id"] == outbound.message_id and s.get("failed"))
            if mode == "transient" or (mode == "transient_once" and attempts == 0):
                SENT.append({"message_id": outbound.message_id, "failed": True})
                raise TransientSendError("stand-in provider busy", retry_after=0)
            if mode == "permanent":
                return SendResult(ok=False, error="recipient blocked the account")
            SENT.append({"recipient": recipient, "text": outbound.text, "message_id": outbound.message_id,
                         "context": dict(outbound.context), "attachments": attachment_links(outbound)})
            return SendResult(ok=True, external_id=f"test-out-{next(_ids)}")

    @staticmethod
    def delivered(settings: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return [s for s in SENT if not s.get("failed")]
