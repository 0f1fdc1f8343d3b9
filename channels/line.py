"""LINE Messaging API: webhook events in, reply/push out, through the official line-bot-sdk.

Settings: ``api_base`` (default https://api.line.me), ``api_data_base`` (default
https://api-data.line.me), ``reply_token_ttl`` seconds (default 50), ``max_content_bytes``
(default 10 MB). Secrets: ``channel_secret`` (webhook signature), ``channel_token``
(channel access token, sent as ``Authorization: Bearer``).

Choices worth knowing:

* ``external_id`` of a message event is LINE's message id, of other events the
  ``webhookEventId``. Both are stable across redelivery (``deliveryContext.isRedelivery``),
  so a redelivered event hits the ingest dedupe; the message id is used for messages because
  the ``unsend`` event names the message id, not the event id.
* Each chat is its own conversation: a message carries its chat's key (``line-user:<id>``
  one-to-one, ``line-group:<id>``, ``line-room:<id>``) and continues that chat's ticket or opens
  a new one, never another chat's (a private message in a group's ticket, or a group's message
  in a member's private one, would send the agent's answer to the wrong people).
* Text is split into messages of at most 5000 UTF-16 code units, which is how LINE counts
  (an emoji outside the BMP is two), at a line break where possible.
* ``parse`` is pure. Profiles (display name, picture) and media content are fetched afterwards
  by the ``enrich_message`` job through :meth:`LineAdapter.enrich`, so the webhook answers fast.
* The reply token is kept in the inbound message's meta with the event timestamp. ``send``
  uses it while it is fresh and unused, else pushes with an ``X-Line-Retry-Key`` derived from
  the outbound message id, so a retried push is executed once by LINE (a repeat gets 409).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import mimetypes
import threading
import time
import unicodedata
import uuid
from datetime import datetime, timezone
from typing import Any, Mapping
from urllib.parse import parse_qsl

from .base import Adapter, Attachment, ChannelError, Inbound, Outbound, SendResult, StatusUpdate, TransientSendError
from .base import register, with_links

log = logging.getLogger(__name__)

API_BASE = "https://api.line.me"
API_DATA_BASE = "https://api-data.line.me"
# LINE documents the reply token as usable once, within about a minute of the event.
REPLY_TOKEN_TTL = 50.0
MAX_TEXT = 5000  # characters per text message
MAX_MESSAGES = 5  # messages per reply/push request
MAX_QUICK_REPLIES = 13
MAX_CONTENT_BYTES = 10 * 1024 * 1024
# Image messages: JPEG or PNG at an HTTPS URL of at most 2000 characters; the preview image
# (the same URL here) at most 1 MB.
IMAGE_TYPES = ("image/jpeg", "image/png")
MAX_URL = 2000
MAX_PREVIEW_BYTES = 1024 * 1024
# Namespace for retry keys: uuid5(namespace, message id) is stable across processes and retries.
RETRY_KEY_NAMESPACE = uuid.UUID("6f2a3c1e-8d4b-5e7f-9a0b-1c2d3e4f5a6b")
LOADING_SECONDS = 20

MEDIA_LABELS = {"image": "[画像]", "video": "[動画]", "audio": "[音声]", "file": "[ファイル]"}
MEDIA_TYPES = {"image": "image/jpeg", "video": "video/mp4", "audio": "audio/m4a", "file": "application/octet-stream"}
MEDIA_EXT = {"image": ".jpg", "video": ".mp4", "audio": ".m4a", "file": ""}
STICKER_TEXT = "[スタンプ]"
CONTENT_URL_PREFIX = "line-content:"

# Reply tokens this process already spent (a reply that timed out must not be tried again).
_spent_tokens: dict[str, float] = {}
_spent_lock = threading.Lock()
# Last loading-animation call per chat, so a typing agent does not flood the API.
_loading_sent: dict[str, float] = {}


def signature(secret: str, raw_body: bytes) -> str:
    """X-Line-Signature: base64 of HMAC-SHA256 over the raw body with the channel secret."""
    return base64.b64encode(hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()).decode()


def utf16_units(text: str) -> int:
    """Length as LINE counts it: UTF-16 code units, so an emoji outside the BMP counts two."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


_REGIONAL = 0x1F1E6  # regional indicator A; two of them make a flag


def _joins_previous(ch: str) -> bool:
    """Characters that belong to the one before them (a dakuten, a variation selector, a skin
    tone, the part after a zero-width joiner): a message must not begin with one."""
    cp = ord(ch)
    return (unicodedata.category(ch) in ("Mn", "Mc", "Me") or cp == 0x200D or 0xFE00 <= cp <= 0xFE0F
            or 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F or 0xE0100 <= cp <= 0xE01EF)


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-16 code units (LINE counts a 🙇 as two), cut
    after a line break in the second half of a piece if there is one, and never between a
    character and what joins onto it."""
    pieces: list[str] = []
    while text:
        units = cut = 0
        for ch in text:
            units += 2 if ord(ch) > 0xFFFF else 1
            if units > limit:
                break
            cut += 1
        if cut >= len(text):
            pieces.append(text)
            break
        fit = cut
        while cut > 1 and (_joins_previous(text[cut]) or text[cut - 1] == "\u200d"):
            cut -= 1
        run = 0  # a flag is a pair of regional indicators: keep pairs together
        while run < cut and _REGIONAL <= ord(text[cut - 1 - run]) <= _REGIONAL + 25:
            run += 1
        if run % 2 and _REGIONAL <= ord(text[cut]) <= _REGIONAL + 25:
            cut -= 1
        if cut <= 1:
            cut = fit  # one endless cluster: cut it anyway rather than loop
        newline = text.rfind("\n", 0, cut)
        if newline >= cut // 2:
            cut = newline + 1
        pieces.append(text[:cut].rstrip("\n") or text[:cut])
        text = text[cut:]
    return pieces


def retry_key(message_id: int) -> str:
    """The X-Line-Retry-Key for an outbound message: same message, same key, forever."""
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, f"helpdesk-message:{message_id}"))


def header(headers: Mapping[str, str], name: str) -> str:
    """Case-insensitive header lookup for Werkzeug headers and plain dicts alike."""
    value = headers.get(name)
    if value is None:
        lname = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == lname), None)
    return str(value or "")


def _s(value: Any) -> str:
    """A provider string field; numbers are accepted, containers are not."""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    return ""


def _d(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _ms_to_dt(value: Any) -> datetime | None:
    try:
        ms = int(value)
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def load_json(raw: bytes | Mapping[str, Any]) -> dict:
    """Decode a webhook body into a dict, or ChannelError."""
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ChannelError(f"body is not JSON: {exc.__class__.__name__}") from None
    if not isinstance(data, dict):
        raise ChannelError("body is not a JSON object")
    return data


@register
class LineAdapter(Adapter):
    kind = "line"
    label = "LINE"
    webhook = True

    # ---- inbound ---------------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        secret = str(self.secrets.get("channel_secret") or "")
        given = header(headers, "X-Line-Signature")
        if not secret or not given:
            return False
        return self.constant_time_equal(signature(secret, raw_body), given)

    def parse(self, raw: bytes | Mapping[str, Any]) -> list[Inbound | StatusUpdate]:
        data = load_json(raw)
        events = data.get("events")
        if not isinstance(events, list):
            raise ChannelError("LINE webhook without an events list")
        items: list[Inbound | StatusUpdate] = []
        for event in events:
            if not isinstance(event, dict):
                log.warning("LINE event that is not an object skipped")
                continue
            item = self._event(event)
            if item is not None:
                items.append(item)
        return items

    def _event(self, event: dict) -> Inbound | StatusUpdate | None:
        etype = _s(event.get("type"))
        source = _d(event.get("source"))
        user_id = _s(source.get("userId"))
        if etype in ("follow", "unfollow"):
            if not user_id:
                log.warning("LINE %s event without a userId skipped", etype)
                return None
            return StatusUpdate(kind=etype, user_id=user_id)
        if etype == "unsend":
            mid = _s(_d(event.get("unsend")).get("messageId"))
            if not mid:
                log.warning("LINE unsend event without a messageId skipped")
                return None
            return StatusUpdate(kind="unsend", user_id=user_id, external_ids=(mid,))
        if etype == "message":
            return self._message(event, source)
        if etype == "postback":
            return self._postback(event, source)
        log.info("LINE event type %r acknowledged and ignored", etype[:40])
        return None

    def _base(self, event: dict, source: dict) -> tuple[str, dict, tuple[str, ...]] | None:
        """The sender id, the message meta every event shares, and the thread hints (the chat's
        key: ``line-group:``/``line-room:`` + its id, or ``line-user:`` + the user's id)."""
        stype = _s(source.get("type")) or "user"
        user_id = _s(source.get("userId"))
        chat_id = {"group": _s(source.get("groupId")), "room": _s(source.get("roomId"))}.get(stype, user_id)
        if not chat_id:
            log.warning("LINE %s event without a source id skipped", stype)
            return None
        if not user_id:
            # Group members who have not agreed to share their id: one placeholder contact per chat.
            user_id = f"{chat_id}:unknown"
        timestamp = event.get("timestamp")
        redelivery = bool(_d(event.get("deliveryContext")).get("isRedelivery"))
        meta: dict[str, Any] = {
            "line_event_id": _s(event.get("webhookEventId")),
            "line_source": stype,
            "line_chat_id": chat_id,
            "line_user_id": user_id,
            "line_timestamp": timestamp if isinstance(timestamp, int) else None,
            "reply_to": chat_id,
        }
        token = _s(event.get("replyToken"))
        # A redelivered event's reply token is stale by the time it reaches us: push instead.
        if token and not redelivery and _s(event.get("mode")) != "standby":
            meta["line_reply_token"] = token
        if redelivery:
            meta["line_redelivered"] = True
        # Every chat is its own conversation: a group's messages never join a member's one-to-one
        # ticket (the agent's answer would go to the whole group) and vice versa.
        hints = (f"line-{stype}:{chat_id}",) if stype in ("group", "room") else (f"line-user:{chat_id}",)
        return user_id, meta, hints

    def _message(self, event: dict, source: dict) -> Inbound | None:
        message = _d(event.get("message"))
        mid = _s(message.get("id"))
        mtype = _s(message.get("type"))
        base = self._base(event, source)
        if not mid or base is None:
            log.warning("LINE message event without a message id or source skipped")
            return None
        user_id, meta, hints = base
        attachments: tuple[Attachment, ...] = ()
        if mtype == "text":
            text = _s(message.get("text"))
            quoted = _s(message.get("quotedMessageId"))
            if quoted:
                meta["line_quoted_message_id"] = quoted
        elif mtype == "sticker":
            keywords = [k for k in message.get("keywords") or [] if isinstance(k, str)][:20] \
                if isinstance(message.get("keywords"), list) else []
            meta["line_sticker"] = {
                "packageId": _s(message.get("packageId")),
                "stickerId": _s(message.get("stickerId")),
                "resourceType": _s(message.get("stickerResourceType")),
                "keywords": keywords,
            }
            # Message stickers carry the words the customer typed on them.
            sticker_text = _s(message.get("text"))
            words = " ".join(filter(None, [sticker_text, *keywords]))
            if words:
                meta["sentiment_text"] = words
            text = STICKER_TEXT + (f" {sticker_text}" if sticker_text else "")
        elif mtype in MEDIA_LABELS:
            provider = _d(message.get("contentProvider"))
            name = _s(message.get("fileName")) or f"{mid}{MEDIA_EXT[mtype]}"
            size = message.get("fileSize") if isinstance(message.get("fileSize"), int) else 0
            if _s(provider.get("type")) == "external":
                url = _s(provider.get("originalContentUrl"))
            else:
                url = CONTENT_URL_PREFIX + mid  # fetched by the enrich job from the api-data host
            ctype = mimetypes.guess_type(name)[0] if mtype == "file" else MEDIA_TYPES[mtype]
            attachments = (Attachment(filename=name, content_type=ctype or MEDIA_TYPES[mtype], size=size,
                                      url=url or None),)
            text = MEDIA_LABELS[mtype] + (f" {name}" if mtype == "file" else "")
            if isinstance(message.get("duration"), int):
                meta["line_duration_ms"] = message["duration"]
        elif mtype == "location":
            title, address = _s(message.get("title")), _s(message.get("address"))
            lat, lon = message.get("latitude"), message.get("longitude")
            coords = f"{lat}, {lon}" if isinstance(lat, (int, float)) and isinstance(lon, (int, float)) else ""
            meta["line_location"] = {"title": title, "address": address, "latitude": lat if coords else None,
                                     "longitude": lon if coords else None}
            text = "\n".join(filter(None, ["[位置情報] " + title if title else "[位置情報]", address, coords]))
        else:
            log.info("LINE message type %r stored as a placeholder", mtype[:40])
            text = f"[{mtype[:40] or 'message'}]"
        return Inbound(external_id=mid, user_id=user_id, text=text, attachments=attachments,
                       thread_hints=hints, sent_at=_ms_to_dt(event.get("timestamp")), meta=meta,
                       identity_kind="line", new_thread=True)

    def _postback(self, event: dict, source: dict) -> Inbound | None:
        event_id = _s(event.get("webhookEventId"))
        base = self._base(event, source)
        postback = _d(event.get("postback"))
        if not event_id or base is None:
            log.warning("LINE postback without webhookEventId or source skipped")
            return None
        user_id, meta, hints = base
        data = _s(postback.get("data"))
        fields = dict(parse_qsl(data, keep_blank_values=True)) if "=" in data else {}
        params = _d(postback.get("params"))
        # Our own postback actions put a human-readable label in the data; else show the raw data.
        text = fields.get("label") or fields.get("text") or data or "[postback]"
        extra = " ".join(_s(v) for v in params.values() if _s(v))
        meta["line_postback"] = {"data": data, "params": {k: _s(v) for k, v in params.items()}}
        return Inbound(external_id=event_id, user_id=user_id, text=(text + (f" {extra}" if extra else ""))[:5000],
                       thread_hints=hints, sent_at=_ms_to_dt(event.get("timestamp")), meta=meta,
                       identity_kind="line", new_thread=True)

    # ---- the SDK ---------------------------------------------------------------------------

    def _config(self, data: bool = False):
        from linebot.v3.messaging import Configuration

        host = self.settings.get("api_data_base" if data else "api_base") or (API_DATA_BASE if data else API_BASE)
        cfg = Configuration(host=str(host).rstrip("/"), access_token=str(self.secrets.get("channel_token") or ""))
        cfg.retries = False  # our job runner retries with backoff; urllib3 must not retry behind it
        return cfg

    def _timeout(self) -> tuple[float, float]:
        return (float(self.settings.get("connect_timeout", 5)), float(self.settings.get("read_timeout", 15)))

    # ---- outbound --------------------------------------------------------------------------

    def _image_files(self, outbound: Outbound) -> tuple[list[Attachment], list[Attachment]]:
        """The agent's files as (image messages, links in the text). LINE shows JPEG and PNG
        from public HTTPS URLs of at most 2000 characters, with a preview of at most 1 MB (the
        same file here: we do not resize); anything else travels as a link."""
        images: list[Attachment] = []
        links: list[Attachment] = []
        for att in outbound.attachments:
            why = None
            if att.content_type not in IMAGE_TYPES or not att.url:
                why = ""  # not an image LINE shows: a link, nothing to explain
            elif not att.url.startswith("https://"):
                why = "LINE needs an HTTPS image URL and HELPDESK_PUBLIC_URL is not https"
            elif len(att.url) > MAX_URL:
                why = f"its URL is longer than LINE's {MAX_URL} characters"
            elif att.size > MAX_PREVIEW_BYTES:
                why = "it is larger than LINE's 1 MB preview image limit"
            if why is None:
                images.append(att)
            else:
                if why:
                    log.info("LINE message %s: image %r sent as a link: %s", outbound.message_id, att.filename, why)
                links.append(att)
        return images, links

    def _messages(self, outbound: Outbound) -> list:
        from linebot.v3.messaging import ImageMessage, MessageAction, QuickReply, QuickReplyItem, TextMessage

        images, links = self._image_files(outbound)
        # At most five messages per request: text chunks first, then images; images that no
        # longer fit go as links in the text (one request, so the reply token is used once).
        keep = len(images)
        while True:
            text = with_links(outbound.text, links + images[keep:])
            chunks = split_text(text, MAX_TEXT)
            if keep == 0 or len(chunks) + keep <= MAX_MESSAGES:
                break
            keep -= 1
        if keep < len(images):
            log.info("LINE message %s: %s image(s) over the %s-message limit sent as links",
                     outbound.message_id, len(images) - keep, MAX_MESSAGES)
        specs: list[tuple[type, dict]] = [(TextMessage, {"text": c}) for c in chunks or ([] if keep else [""])]
        specs += [(ImageMessage, {"originalContentUrl": a.url, "previewImageUrl": a.url}) for a in images[:keep]]
        items = []
        for qr in (outbound.meta or {}).get("quick_replies") or []:
            if isinstance(qr, dict) and (qr.get("label") or qr.get("text")):
                label = str(qr.get("label") or qr.get("text"))[:20]
                items.append(QuickReplyItem(action=MessageAction(label=label, text=str(qr.get("text") or label)[:300])))
        if items:
            specs[-1][1]["quickReply"] = QuickReply(items=items[:MAX_QUICK_REPLIES])
        return [cls(**kwargs) for cls, kwargs in specs]

    def _reply_token(self, outbound: Outbound) -> str | None:
        meta = outbound.context.get("last_inbound_meta") or {}
        token = meta.get("line_reply_token")
        stamp = meta.get("line_timestamp")
        if not token or not isinstance(stamp, int):
            return None
        ttl = float(self.settings.get("reply_token_ttl", REPLY_TOKEN_TTL))
        if time.time() - stamp / 1000 > ttl:
            return None
        with _spent_lock:
            if token in _spent_tokens:
                return None
        # Something we sent after the customer's last message already answered it (reply or push).
        ids = list(outbound.context.get("external_ids") or [])
        last_in = outbound.context.get("last_inbound_external_id")
        if last_in in ids and ids.index(last_in) < len(ids) - 1:
            return None
        return token

    def send(self, recipient: str, outbound: Outbound) -> SendResult:
        from linebot.v3.messaging import ApiClient, MessagingApi, PushMessageRequest, ReplyMessageRequest
        from linebot.v3.messaging.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        messages = self._messages(outbound)
        if len(messages) > MAX_MESSAGES:  # text (with any file links) over five messages' worth
            return SendResult(ok=False, error=f"LINE のメッセージは {MAX_TEXT * MAX_MESSAGES} 文字までです "
                                               f"(LINE messages are limited to {MAX_TEXT * MAX_MESSAGES} characters)")
        token = self._reply_token(outbound)
        with ApiClient(self._config()) as client:
            api = MessagingApi(client)
            if token:
                with _spent_lock:
                    _spent_tokens[token] = time.time()
                    _prune(_spent_tokens, 600)
                try:
                    resp = api.reply_message(ReplyMessageRequest(replyToken=token, messages=messages),
                                             _request_timeout=self._timeout())
                    return SendResult(ok=True, external_id=_first_id(resp), meta={"line_sent_via": "reply"})
                except ApiException as exc:
                    if exc.status == 400 and "reply token" in (exc.body or "").lower():
                        log.info("LINE reply token rejected for message %s; pushing", outbound.message_id)
                    else:
                        return self._failure(exc)
                except HTTPError as exc:
                    raise TransientSendError(f"LINE unreachable: {exc.__class__.__name__}") from None
            try:
                resp = api.push_message(PushMessageRequest(to=recipient, messages=messages),
                                        x_line_retry_key=retry_key(outbound.message_id),
                                        _request_timeout=self._timeout())
                return SendResult(ok=True, external_id=_first_id(resp), meta={"line_sent_via": "push"})
            except ApiException as exc:
                if exc.status == 409:
                    # Our retry key was accepted before (the earlier attempt's answer was lost): sent once.
                    log.info("LINE push for message %s was already accepted (409)", outbound.message_id)
                    return SendResult(ok=True, meta={"line_sent_via": "push", "line_retry_conflict": True})
                return self._failure(exc)
            except HTTPError as exc:
                raise TransientSendError(f"LINE unreachable: {exc.__class__.__name__}") from None

    @staticmethod
    def _failure(exc) -> SendResult:
        """Map a LINE error answer: 429/5xx retry later, anything else is final."""
        status = exc.status or 0
        detail = _error_message(exc.body)
        if status == 429 and "monthly limit" in detail.lower():
            # The plan's messages for this month are used up: retrying only delays the answer.
            return SendResult(ok=False, error=f"LINE の今月の送信可能メッセージ数の上限に達しました "
                                              f"(LINE 429: {detail})")
        if status == 429 or status >= 500:
            retry_after = _retry_after(exc.headers)
            raise TransientSendError(f"LINE {status}: {detail}", retry_after=retry_after)
        if status in (401, 403):
            return SendResult(ok=False, error=f"LINE のチャネルアクセストークンが無効です (LINE {status}: {detail})")
        return SendResult(ok=False, error=f"LINE {status}: {detail}")

    # ---- after ingest: profile and content ---------------------------------------------------

    def fetch_profile(self, user_id: str, source: str = "user", chat_id: str = "") -> dict[str, str] | None:
        """Display name and picture of a user (group/room member API in a group or room)."""
        from linebot.v3.messaging import ApiClient, MessagingApi
        from linebot.v3.messaging.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        if not user_id or user_id.endswith(":unknown"):
            return None
        with ApiClient(self._config()) as client:
            api = MessagingApi(client)
            try:
                if source == "group" and chat_id:
                    prof = api.get_group_member_profile(chat_id, user_id, _request_timeout=self._timeout())
                elif source == "room" and chat_id:
                    prof = api.get_room_member_profile(chat_id, user_id, _request_timeout=self._timeout())
                else:
                    prof = api.get_profile(user_id, _request_timeout=self._timeout())
            except (ApiException, HTTPError) as exc:
                log.warning("LINE profile of %s not fetched: %s", user_id[:40], getattr(exc, "status", exc))
                return None
        return {"name": prof.display_name or "", "avatar_url": prof.picture_url or ""}

    def fetch_content(self, message_id: str) -> bytes | None:
        """Media a user sent, from the api-data host; None when missing or over the size limit."""
        from linebot.v3.messaging import ApiClient, MessagingApiBlob
        from linebot.v3.messaging.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        limit = int(self.settings.get("max_content_bytes", MAX_CONTENT_BYTES))
        with ApiClient(self._config(data=True)) as client:
            try:
                resp = MessagingApiBlob(client).get_message_content_with_http_info(
                    message_id, _request_timeout=self._timeout())
            except (ApiException, HTTPError) as exc:
                log.warning("LINE content of message %s not fetched: %s", message_id[:40],
                            getattr(exc, "status", exc))
                return None
        if resp.status_code == 202:
            log.info("LINE content of message %s is still being prepared", message_id[:40])
            return None
        body = bytes(resp.data or b"")
        if len(body) > limit:
            log.warning("LINE content of message %s is %s bytes, over the %s limit; not stored",
                        message_id[:40], len(body), limit)
            return None
        return body

    def enrich(self, meta: Mapping[str, Any], attachments: list[dict], known_name: str) -> dict[str, Any]:
        """What the enrich_message job stores after ingest: a profile if the contact has no name
        yet, and the bytes of LINE-hosted media (index -> Attachment)."""
        result: dict[str, Any] = {"profile": None, "attachments": {}}
        if not known_name:
            result["profile"] = self.fetch_profile(str(meta.get("line_user_id") or ""),
                                                   str(meta.get("line_source") or "user"),
                                                   str(meta.get("line_chat_id") or ""))
        for i, att in enumerate(attachments):
            url = str(att.get("url") or "")
            if att.get("stored") or not url.startswith(CONTENT_URL_PREFIX):
                continue
            data = self.fetch_content(url[len(CONTENT_URL_PREFIX):])
            if data is not None:
                result["attachments"][i] = Attachment(filename=att.get("filename") or "line", size=len(data),
                                                      content_type=att.get("content_type") or "", data=data)
        return result

    def show_typing(self, chat_id: str) -> bool:
        """The loading animation while an agent types (one-to-one chats only, throttled)."""
        from linebot.v3.messaging import ApiClient, MessagingApi, ShowLoadingAnimationRequest
        from linebot.v3.messaging.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        if not chat_id.startswith("U"):
            return False  # LINE shows it only in chats with a single user
        now = time.monotonic()
        with _spent_lock:
            if now - _loading_sent.get(chat_id, -1e9) < LOADING_SECONDS / 2:
                return False
            _loading_sent[chat_id] = now
            _prune(_loading_sent, 300, now)
        with ApiClient(self._config()) as client:
            try:
                MessagingApi(client).show_loading_animation(
                    ShowLoadingAnimationRequest(chatId=chat_id, loadingSeconds=LOADING_SECONDS),
                    _request_timeout=self._timeout())
            except (ApiException, HTTPError) as exc:
                log.info("LINE loading animation for %s not shown: %s", chat_id[:40], getattr(exc, "status", exc))
                return False
        return True


def _first_id(resp) -> str | None:
    sent = getattr(resp, "sent_messages", None) or []
    return str(sent[0].id) if sent and getattr(sent[0], "id", None) else None


def _error_message(body: Any) -> str:
    if not body:
        return "no details"
    try:
        data = json.loads(body)
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])[:300]
    except (ValueError, TypeError):
        pass
    return str(body)[:300]


def _retry_after(headers) -> float | None:
    try:
        value = headers.get("Retry-After") if headers else None
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _prune(d: dict[str, float], age: float, now: float | None = None) -> None:
    now = time.time() if now is None else now
    if len(d) > 1000:
        for k in [k for k, t in d.items() if now - t > age]:
            d.pop(k, None)
