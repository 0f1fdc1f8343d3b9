"""The API channel: an integration posts customer messages as JSON; replies
are collected by the integration (or pushed to its callback URL)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Mapping

import requests

from .base import Adapter, ChannelError, Inbound, Outbound, SendResult, TransientSendError, register, valid_email

MAX_TEXT = 20_000


def attachment_links(outbound: Outbound) -> list[dict[str, Any]]:
    """The agent's files as an integration receives them."""
    return [{"filename": a.filename, "content_type": a.content_type, "size": a.size, "url": a.url}
            for a in outbound.attachments if a.url]


@register
class ApiAdapter(Adapter):
    kind = "api"
    label = "API"

    def parse(self, raw: bytes | Mapping[str, Any]) -> list[Inbound]:
        if isinstance(raw, (bytes, str)):
            try:
                raw = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ChannelError("body is not valid JSON") from exc
        if not isinstance(raw, Mapping):
            raise ChannelError("body must be a JSON object")
        for key in ("external_id", "user_id", "text", "name", "email", "subject", "thread"):
            if key in raw and raw[key] is not None and not isinstance(raw[key], str):
                raise ChannelError(f"field {key!r} must be a string")
        # blank is missing: a message of spaces would open a ticket with nothing in it
        missing = [k for k in ("external_id", "user_id", "text") if not (raw.get(k) or "").strip()]
        if missing:
            raise ChannelError("missing fields: " + ", ".join(missing))
        text = raw["text"]
        email = (raw.get("email") or "").strip() or None
        if email is not None and not valid_email(email):
            raise ChannelError("email is not a valid address")
        if len(text) > MAX_TEXT:
            raise ChannelError(f"text longer than {MAX_TEXT} characters")
        if len(raw["external_id"]) > 255 or len(raw["user_id"]) > 255:
            raise ChannelError("external_id and user_id are limited to 255 characters")
        sent_at = None
        if raw.get("sent_at"):
            try:
                sent_at = datetime.fromisoformat(str(raw["sent_at"]))
            except ValueError as exc:
                raise ChannelError("sent_at must be ISO 8601") from exc
            if sent_at.tzinfo is None:
                raise ChannelError("sent_at needs a timezone offset")
            # a client clock in the future would sort the ticket above everything else, as in email
            sent_at = min(sent_at, datetime.now(timezone.utc))
        return [
            Inbound(
                external_id=raw["external_id"],
                user_id=raw["user_id"],
                text=text,
                display_name=(raw.get("name") or "")[:200],
                email=email,
                subject=(raw.get("subject") or "")[:300],
                thread_hints=(raw["thread"],) if raw.get("thread") else (),
                sent_at=sent_at,
            )
        ]

    def send(self, recipient: str, outbound: Outbound) -> SendResult:
        url = self.settings.get("callback_url")
        if not url:
            # Integrations without a callback read replies from the API.
            return SendResult(ok=True)
        try:
            resp = requests.post(
                url,
                json={"ticket_id": outbound.ticket_id, "message_id": outbound.message_id,
                      "user_id": recipient, "text": outbound.text,
                      # The agent's files as signed links that expire (HELPDESK_PUBLIC_URL/files/...).
                      "attachments": attachment_links(outbound)},
                # Stable per message: a send retried after a crash is recognised by the receiver.
                headers={"Idempotency-Key": f"helpdesk-message-{outbound.message_id}"},
                timeout=10,
            )
        except requests.RequestException as exc:
            raise TransientSendError(f"callback unreachable: {exc}") from exc
        if resp.status_code == 409:
            return SendResult(ok=True)  # the receiver already has this message (a retried send)
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientSendError(f"callback answered {resp.status_code}")
        if resp.status_code >= 400:
            return SendResult(ok=False, error=f"callback refused with {resp.status_code}")
        return SendResult(ok=True)
