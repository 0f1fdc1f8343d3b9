"""Facebook Messenger and Instagram messaging through Meta's webhooks and the Send API.

Settings: ``graph_base`` (default https://graph.facebook.com), ``api_version`` (default v21.0),
``platform`` "facebook" (default) or "instagram", ``human_agent_tag`` (default True: the app
has the Human Agent permission). Secrets: ``app_secret`` (X-Hub-Signature-256 and
appsecret_proof), ``page_token`` (Page access token), ``verify_token`` (GET verification).

Messaging windows: within 24 hours of the customer's last message a reply is sent with
``messaging_type=RESPONSE``; from 24 hours to 7 days with ``MESSAGE_TAG`` + ``HUMAN_AGENT``;
after that Meta refuses every message, so we refuse it first with a clear error for the agent.

Events come from each entry's ``messaging`` list and, when another app owns the conversation
(handover protocol), its ``standby`` list; standby messages are stored with ``messenger_standby``.
Handled: messages and postbacks (``Inbound``); ``delivery``/``read`` receipts, deleted
messages (``unsend``), ``message_edit`` (``edit``: the customer changed a message's text) and
``reaction`` (``reaction``: an emoji on a message, or its removal) as ``StatusUpdate``s
(services.status applies them). Other events are acknowledged and ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import requests

from .base import Adapter, Attachment, ChannelError, Inbound, Outbound, SendResult, StatusUpdate, TransientSendError
from .base import register
from .line import _d, _ms_to_dt, _s, header, load_json

log = logging.getLogger(__name__)

GRAPH_BASE = "https://graph.facebook.com"
API_VERSION = "v21.0"
STANDARD_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
MAX_TEXT = 2000
MAX_QUICK_REPLIES = 13
# Graph error codes that mean "slow down" or "try again": rate limits and temporary faults.
# 1200: "Temporary send message failure. Please try again later." (Send API error reference).
TRANSIENT_CODES = {1, 2, 4, 17, 32, 341, 613, 1200}
# Files sent as Messenger image attachments; everything else goes as a file attachment.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif")
ATTACHMENT_TYPES = {"image": "image/jpeg", "video": "video/mp4", "audio": "audio/mpeg", "file": "application/octet-stream"}
ATTACHMENT_LABELS = {"image": "[画像]", "video": "[動画]", "audio": "[音声]", "file": "[ファイル]", "location": "[位置情報]",
                     "sticker": "[スタンプ]", "share": "[共有]", "story_mention": "[ストーリーズのメンション]",
                     "ig_reel": "[リール]", "reel": "[リール]", "fallback": "[リンク]", "template": "[テンプレート]"}
# A reaction's emoji when Meta names it only ("reaction": "love"; the documented names).
REACTION_EMOJI = {"love": "❤️", "like": "👍", "dislike": "👎", "smile": "😆", "wow": "😮", "sad": "😢",
                  "angry": "😠"}
# An edited text is the customer's message again: bounded like any inbound text field.
MAX_INBOUND_TEXT = 20000


def hub_signature(secret: str, raw_body: bytes) -> str:
    """X-Hub-Signature-256: "sha256=" + hex HMAC-SHA256 of the raw body with the app secret."""
    return "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()


def verify_hub_signature(secrets: Mapping[str, Any], headers: Mapping[str, str], raw_body: bytes) -> bool:
    secret = str(secrets.get("app_secret") or "")
    given = header(headers, "X-Hub-Signature-256")
    if not secret or not given.startswith("sha256="):
        return False
    return hmac.compare_digest(hub_signature(secret, raw_body).encode(), given.encode())


def hub_handshake(secrets: Mapping[str, Any], args: Mapping[str, str]) -> tuple[int, str]:
    """Meta's subscription check: echo hub.challenge when the verify token matches."""
    expected = str(secrets.get("verify_token") or "")
    token = str(args.get("hub.verify_token") or "")
    if (args.get("hub.mode") == "subscribe" and expected and args.get("hub.challenge")
            and hmac.compare_digest(token.encode(), expected.encode())):
        return 200, str(args["hub.challenge"])[:200]
    return 403, "verification failed"


def meta_envelope(data: dict, what: str) -> tuple[str, list]:
    """Meta's webhook envelope, shared by Messenger and Page/Instagram comments:
    ``object`` is page or instagram, ``entry`` a list."""
    obj = data.get("object")
    if obj not in ("page", "instagram"):
        raise ChannelError(f"not a {what} webhook (object={_s(obj)[:20]!r})")
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise ChannelError(f"{what} webhook without an entry list")
    return obj, entries


def graph_auth(secrets) -> dict[str, dict[str, str]]:
    """Graph API auth as requests kwargs: Bearer page token + appsecret_proof parameter."""
    token = str(secrets.get("page_token") or "")
    params = {}
    if secrets.get("app_secret"):
        params["appsecret_proof"] = appsecret_proof(str(secrets["app_secret"]), token)
    return {"headers": {"Authorization": f"Bearer {token}"}, "params": params}


def appsecret_proof(secret: str, token: str) -> str:
    """Meta's appsecret_proof: hex HMAC-SHA256 of the access token keyed with the app secret."""
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def graph_error(resp: requests.Response) -> tuple[int | None, int | None, str]:
    """(code, subcode, message) from a Graph API error answer."""
    try:
        err = _d(_d(resp.json()).get("error"))
    except ValueError:
        err = {}
    code = err.get("code") if isinstance(err.get("code"), int) else None
    sub = err.get("error_subcode") if isinstance(err.get("error_subcode"), int) else None
    return code, sub, str(err.get("message") or resp.reason or "error")[:300]


def retry_after(resp: requests.Response) -> float | None:
    try:
        value = resp.headers.get("Retry-After")
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def window_state(last_inbound_at: datetime | None, now: datetime | None = None) -> dict[str, Any]:
    """Where a Messenger conversation stands: "standard" (reply freely), "human_agent"
    (HUMAN_AGENT tag up to 7 days) or "closed"; with the time left in the current window."""
    now = now or datetime.now(timezone.utc)
    if last_inbound_at is None:
        return {"state": "closed", "remaining": timedelta(0), "hours_left": 0}
    if last_inbound_at.tzinfo is None:
        last_inbound_at = last_inbound_at.replace(tzinfo=timezone.utc)
    age = now - last_inbound_at
    if age <= STANDARD_WINDOW:
        state, remaining = "standard", STANDARD_WINDOW - age
    elif age <= HUMAN_AGENT_WINDOW:
        state, remaining = "human_agent", HUMAN_AGENT_WINDOW - age
    else:
        state, remaining = "closed", timedelta(0)
    return {"state": state, "remaining": remaining, "hours_left": int(remaining.total_seconds() // 3600),
            "minutes_left": int(remaining.total_seconds() // 60)}


def _parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _edit(sender: str, event: dict) -> StatusUpdate | None:
    """``message_edit`` (webhook field message_edits): the message's new text. The customer
    can edit a message five times; ``num_edit`` counts them (documented as an integer,
    accepted as a numeric string too)."""
    edit = _d(event.get("message_edit"))
    mid, text = _s(edit.get("mid")), edit.get("text")
    if not mid or not isinstance(text, str) or not text.strip():
        log.warning("Messenger message_edit without a mid or a text skipped")
        return None
    num = _s(edit.get("num_edit"))
    num = int(num) if num.isdigit() else None
    at = _ms_to_dt(event.get("timestamp"))
    return StatusUpdate(kind="edit", user_id=sender, external_ids=(mid,),
                        meta={"text": text[:MAX_INBOUND_TEXT], "num_edit": num, "at": at.isoformat() if at else None})


def _reaction(sender: str, event: dict) -> StatusUpdate | None:
    """``reaction`` (webhook field message_reactions): an emoji on a message, mostly an
    agent's reply; an "unreact" takes it back and may come without the emoji."""
    reaction = _d(event.get("reaction"))
    mid, action = _s(reaction.get("mid")), _s(reaction.get("action"))
    name = _s(reaction.get("reaction"))[:20]
    emoji = _s(reaction.get("emoji"))[:16] or REACTION_EMOJI.get(name, "")
    if not mid or action not in ("react", "unreact") or (action == "react" and not emoji):
        log.warning("Messenger reaction without a mid, an action or an emoji skipped")
        return None
    at = _ms_to_dt(event.get("timestamp"))
    return StatusUpdate(kind="reaction", user_id=sender, external_ids=(mid,),
                        meta={"action": action, "emoji": emoji, "reaction": name,
                              "at": at.isoformat() if at else None})


@register
class MessengerAdapter(Adapter):
    kind = "messenger"
    label = "Messenger"
    webhook = True

    @property
    def platform(self) -> str:
        return "instagram" if self.settings.get("platform") == "instagram" else "facebook"

    def verify(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        return verify_hub_signature(self.secrets, headers, raw_body)

    def handshake(self, args: Mapping[str, str]) -> tuple[int, str] | None:
        return hub_handshake(self.secrets, args)

    # ---- inbound ---------------------------------------------------------------------------

    def parse(self, raw: bytes | Mapping[str, Any]) -> list[Inbound | StatusUpdate]:
        obj, entries = meta_envelope(load_json(raw), "Messenger")
        items: list[Inbound | StatusUpdate] = []
        for entry in entries:
            # "standby": the same events while another app (a bot, Meta's Page inbox) owns the
            # conversation under the handover protocol; the customer's messages are theirs all
            # the same and must not be lost.
            for field in ("messaging", "standby"):
                events = _d(entry).get(field)
                for event in events if isinstance(events, list) else []:
                    if not isinstance(event, dict):
                        continue
                    item = self._event(event, instagram=obj == "instagram")
                    if isinstance(item, Inbound) and field == "standby":
                        item = replace(item, meta={**item.meta, "messenger_standby": True})
                    if item is not None:
                        items.append(item)
        return items

    def _event(self, event: dict, instagram: bool) -> Inbound | StatusUpdate | None:
        sender = _s(_d(event.get("sender")).get("id"))
        if not sender:
            log.warning("Messenger event without a sender skipped")
            return None
        sent_at = _ms_to_dt(event.get("timestamp"))
        identity = "instagram" if instagram else "messenger"
        if "message_edit" in event:
            return _edit(sender, event)
        if "reaction" in event:
            return _reaction(sender, event)
        if "message" in event:
            msg = _d(event["message"])
            if msg.get("is_echo"):
                return None  # our own sends, echoed back to us
            mid = _s(msg.get("mid"))
            if not mid:
                log.warning("Messenger message without a mid skipped")
                return None
            if msg.get("is_deleted"):
                return StatusUpdate(kind="unsend", user_id=sender, external_ids=(mid,))
            text = _s(msg.get("text"))
            attachments = []
            labels = []
            raw_atts = msg.get("attachments") if isinstance(msg.get("attachments"), list) else []
            for i, att in enumerate(raw_atts[:10]):
                att = _d(att)
                atype = _s(att.get("type")) or "file"
                payload = _d(att.get("payload"))
                url = _s(payload.get("url"))
                labels.append(ATTACHMENT_LABELS.get(atype, f"[{atype[:20]}]"))
                if atype == "location":
                    coords = _d(payload.get("coordinates"))
                    labels[-1] += f" {coords.get('lat')}, {coords.get('long')}" if coords else ""
                    continue
                if url:
                    attachments.append(Attachment(filename=f"{atype}-{i + 1}", size=0, url=url,
                                                  content_type=ATTACHMENT_TYPES.get(atype, "application/octet-stream")))
            meta: dict[str, Any] = {"messenger_platform": "instagram" if instagram else "facebook"}
            qr = _d(msg.get("quick_reply")).get("payload")
            if qr:
                meta["quick_reply_payload"] = _s(qr)[:1000]
            hints = ()
            reply_mid = _s(_d(msg.get("reply_to")).get("mid"))
            if reply_mid:
                hints = (reply_mid,)
                meta["reply_to_mid"] = reply_mid
            body = text or " ".join(labels) or "[message]"
            return Inbound(external_id=mid, user_id=sender, text=body, attachments=tuple(attachments),
                           thread_hints=hints, sent_at=sent_at, meta=meta, identity_kind=identity)
        if "postback" in event:
            pb = _d(event["postback"])
            mid = _s(pb.get("mid")) or f"postback:{sender}:{_s(event.get('timestamp'))}"
            text = _s(pb.get("title")) or _s(pb.get("payload")) or "[postback]"
            return Inbound(external_id=mid, user_id=sender, text=text[:2000], sent_at=sent_at,
                           meta={"messenger_platform": "instagram" if instagram else "facebook",
                                 "postback_payload": _s(pb.get("payload"))[:1000]},
                           identity_kind=identity)
        if "delivery" in event:
            d = _d(event["delivery"])
            mids = tuple(_s(m) for m in d.get("mids") or [] if _s(m)) if isinstance(d.get("mids"), list) else ()
            wm = d.get("watermark") if isinstance(d.get("watermark"), int) else None
            return StatusUpdate(kind="delivered", user_id=sender, external_ids=mids, watermark=wm)
        if "read" in event:
            r = _d(event["read"])
            wm = r.get("watermark") if isinstance(r.get("watermark"), int) else None
            mid = _s(r.get("mid"))  # Instagram names the message read instead of a watermark
            if wm is None and not mid:
                return None
            return StatusUpdate(kind="read", user_id=sender, external_ids=(mid,) if mid else (), watermark=wm)
        kinds = sorted(k for k in event if k not in ("sender", "recipient", "timestamp"))
        log.info("Messenger event %s acknowledged and ignored", ",".join(kinds)[:80])
        return None

    # ---- outbound --------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        base = str(self.settings.get("graph_base") or GRAPH_BASE).rstrip("/")
        return f"{base}/{self.settings.get('api_version') or API_VERSION}/{path.lstrip('/')}"

    def _auth(self) -> dict[str, dict[str, str]]:
        """requests kwargs: the token in the Authorization header (never in a URL, where
        HTTP libraries log it), the appsecret_proof (an HMAC, not a secret) as a parameter."""
        return graph_auth(self.secrets)

    def send(self, recipient: str, outbound: Outbound) -> SendResult:
        if len(outbound.text) > MAX_TEXT:
            return SendResult(ok=False, error=f"Messenger のメッセージは {MAX_TEXT} 文字までです "
                                               f"(Messenger messages are limited to {MAX_TEXT} characters)")
        window = window_state(_parse_iso(outbound.context.get("last_inbound_at")))
        envelope: dict[str, Any] = {"recipient": {"id": recipient}}
        if window["state"] == "standard":
            envelope["messaging_type"] = "RESPONSE"
        elif window["state"] == "human_agent" and self.settings.get("human_agent_tag", True):
            envelope["messaging_type"] = "MESSAGE_TAG"
            envelope["tag"] = "HUMAN_AGENT"
        else:
            return SendResult(ok=False, error=(
                "返信期限切れ: お客様の最後のメッセージから期限が過ぎたため Messenger では送信できません。"
                " (Messaging window closed: Meta allows replies only within 24 hours of the customer's last"
                " message, or 7 days with the HUMAN_AGENT tag.)"))
        # The Send API carries one thing per request: the text, then each file (Meta fetches it
        # from the signed link).
        parts: list[dict[str, Any]] = [{"text": outbound.text}] if outbound.text else []
        parts += [{"attachment": {"type": "image" if a.content_type in IMAGE_TYPES else "file",
                                  "payload": {"url": a.url, "is_reusable": False}}}
                  for a in outbound.attachments if a.url]
        if not parts:
            return SendResult(ok=False, error="nothing to send")
        quick = [q for q in (outbound.meta or {}).get("quick_replies") or [] if isinstance(q, dict)]
        if quick:
            parts[-1]["quick_replies"] = [
                {"content_type": "text", "title": str(q.get("label") or q.get("text"))[:20],
                 "payload": str(q.get("text") or q.get("label"))[:1000]} for q in quick[:MAX_QUICK_REPLIES]]
        # A retry resumes after the parts an earlier attempt delivered (see TransientSendError.meta).
        done = int((outbound.meta or {}).get("messenger_parts_sent") or 0)
        first_id = (outbound.meta or {}).get("messenger_first_mid")
        result = SendResult(ok=True)
        for n in range(done, len(parts)):
            try:
                result = self._post("me/messages", {**envelope, "message": parts[n]}, outbound.message_id,
                                    window["state"])
            except TransientSendError as exc:
                if n == done:
                    raise
                raise TransientSendError(str(exc), exc.retry_after,
                                         {"messenger_parts_sent": n, "messenger_first_mid": first_id}) from None
            if not result.ok:
                if n > 0:
                    return SendResult(ok=False, error=f"{n}/{len(parts)} 件送信後に失敗 (failed after {n} of "
                                                      f"{len(parts)} parts): {result.error}")
                return result
            first_id = first_id or result.external_id
        return SendResult(ok=True, external_id=first_id or result.external_id, meta=dict(result.meta))

    def _post(self, path: str, body: dict, message_id: int, state: str) -> SendResult:
        try:
            resp = requests.post(self._url(path), **self._auth(), json=body,
                                 timeout=(5, float(self.settings.get("read_timeout", 15))))
        except requests.RequestException as exc:
            raise TransientSendError(f"Graph API unreachable: {exc.__class__.__name__}") from None
        if resp.status_code == 200:
            try:
                mid = _s(_d(resp.json()).get("message_id"))
            except ValueError:
                mid = ""
            return SendResult(ok=True, external_id=mid or None, meta={"messenger_window": state})
        code, sub, message = graph_error(resp)
        if resp.status_code == 429 or resp.status_code >= 500 or code in TRANSIENT_CODES:
            raise TransientSendError(f"Graph API {resp.status_code} (code {code}): {message}",
                                     retry_after=retry_after(resp))
        if code == 10 and sub == 2018278:
            return SendResult(ok=False, error=f"返信期限切れ (window closed): {message}")
        if code == 190 or resp.status_code == 401:
            return SendResult(ok=False, error=f"ページのアクセストークンが無効です (invalid page token): {message}")
        if code == 551:
            return SendResult(ok=False, error=f"このお客様には送信できません (user unavailable): {message}")
        return SendResult(ok=False, error=f"Graph API {resp.status_code} (code {code}): {message}")

    def show_typing(self, recipient: str) -> bool:
        """sender_action typing_on while an agent types (allowed inside the standard window)."""
        try:
            resp = requests.post(self._url("me/messages"), **self._auth(), timeout=(5, 10),
                                 json={"recipient": {"id": recipient}, "sender_action": "typing_on"})
        except requests.RequestException:
            return False
        return resp.status_code == 200
