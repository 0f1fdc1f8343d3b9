"""Social media feeds: X mentions and DMs, Facebook Page and Instagram comments.

One inbox per account; ``settings["network"]`` is "x", "facebook" or "instagram".

X (Account Activity API webhooks, or polling): settings ``api_base`` (default
https://api.x.com), ``account_id`` (our user id), ``poll`` (true for accounts without
webhooks), ``since_id`` (the polling cursor, kept here). Secrets ``consumer_secret``
(CRC and ``x-twitter-webhooks-signature``) and ``access_token`` (an OAuth 2.0 user-context
token with tweet.write and dm.write, sent as ``Authorization: Bearer``).

Facebook/Instagram comments (Meta webhooks, ``feed`` / ``comments`` fields): settings
``graph_base``, ``api_version``, ``account_id`` (Page id or IG user id). Secrets
``app_secret``, ``page_token``, ``verify_token`` as for Messenger.

Threading: one ticket per post and commenter (``thread_key`` "<network>-post:<post>:<user>"),
so each customer's conversation under one post stays together while different posts, or
different people under the same post, are separate tickets. Replies go to the customer's
latest comment. Every tweet and comment is marked public: the whole world reads the answer.
A tweet joins only the conversation it replies to (else it opens a ticket of its own), and DMs
carry the thread key "x-dm:<user>": a public tweet never lands on a customer's DM ticket, where
the agent's answer would go out in public.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Mapping

import requests

from .base import Adapter, ChannelError, Inbound, Outbound, SendResult, StatusUpdate, TransientSendError, register
from .base import with_links
from .line import _d, _ms_to_dt, _s, header, load_json
from .messenger import (
    API_VERSION,
    GRAPH_BASE,
    graph_auth,
    graph_error,
    hub_handshake,
    meta_envelope,
    retry_after,
)
from .messenger import TRANSIENT_CODES, verify_hub_signature

log = logging.getLogger(__name__)

X_API_BASE = "https://api.x.com"
TWEET_LIMIT = 280  # weighted: CJK characters count two
URL_WEIGHT = 23
_LINK = re.compile(r"https?://\S+")
DM_LIMIT = 10000
COMMENT_LIMIT = 8000
POLL_PAGES = 5
# What a CRC token may be: never a JSON object (see ``handshake``).
_CRC_TOKEN = re.compile(r"[A-Za-z0-9+/=_.~-]{1,255}")


def crc_response(consumer_secret: str, crc_token: str) -> str:
    """X's CRC answer: "sha256=" + base64 HMAC-SHA256 of the crc_token keyed with the consumer secret."""
    digest = hmac.new(consumer_secret.encode(), crc_token.encode(), hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def x_signature(consumer_secret: str, raw_body: bytes) -> str:
    """x-twitter-webhooks-signature: the same scheme over the raw POST body."""
    return "sha256=" + base64.b64encode(hmac.new(consumer_secret.encode(), raw_body, hashlib.sha256).digest()).decode()


def weighted_length(text: str) -> int:
    """Tweet length as X counts it: Latin and common punctuation 1, everything else (kana, kanji) 2,
    and every link 23 (X shortens it to a t.co link)."""
    total = 0
    text = _LINK.sub("x" * URL_WEIGHT, text)
    for ch in text:
        cp = ord(ch)
        light = cp <= 0x10FF or 0x2000 <= cp <= 0x200D or 0x2010 <= cp <= 0x201F or 0x2032 <= cp <= 0x2037
        total += 1 if light else 2
    return total


def _x_time(value: Any) -> datetime | None:
    """v1.1 "Wed Oct 10 20:19:24 +0000 2018" or v2 ISO 8601."""
    if not isinstance(value, str):
        return None
    for parse in (lambda v: datetime.strptime(v, "%a %b %d %H:%M:%S %z %Y"),
                  lambda v: datetime.fromisoformat(v.replace("Z", "+00:00"))):
        try:
            dt = parse(value)
            return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


@register
class SocialAdapter(Adapter):
    kind = "social"
    label = "Social"
    webhook = True

    @property
    def network(self) -> str:
        net = self.settings.get("network") or "x"
        return net if net in ("x", "facebook", "instagram") else "x"

    # ---- webhook checks ----------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        if self.network != "x":
            return verify_hub_signature(self.secrets, headers, raw_body)
        secret = str(self.secrets.get("consumer_secret") or "")
        given = header(headers, "x-twitter-webhooks-signature")
        if not secret or not given:
            return False
        return self.constant_time_equal(x_signature(secret, raw_body), given)

    def handshake(self, args: Mapping[str, str]) -> tuple[int, str] | None:
        if self.network != "x":
            return hub_handshake(self.secrets, args)
        token = args.get("crc_token")
        secret = str(self.secrets.get("consumer_secret") or "")
        if not token or not secret:
            return 400, json.dumps({"error": "crc_token missing"})
        if not _CRC_TOKEN.fullmatch(str(token)):
            # The CRC answer is the same HMAC as a POST's signature: answering for any string
            # would sign whatever JSON body a forger asks for. X's tokens are short plain text.
            log.warning("X CRC with a crc_token that is not a plain token refused")
            return 400, json.dumps({"error": "invalid crc_token"})
        return 200, json.dumps({"response_token": crc_response(secret, str(token))})

    # ---- inbound -----------------------------------------------------------------------------

    def parse(self, raw: bytes | Mapping[str, Any]) -> list[Inbound | StatusUpdate]:
        data = load_json(raw)
        if self.network == "x":
            return self._parse_x(data)
        return self._parse_meta(data)

    def _parse_x(self, data: dict) -> list[Inbound | StatusUpdate]:
        me = _s(data.get("for_user_id")) or _s(self.settings.get("account_id"))
        known = {"tweet_create_events", "direct_message_events", "tweet_delete_events"}
        if not me and not (known & data.keys()):
            raise ChannelError("not an X Account Activity payload")
        items: list[Inbound | StatusUpdate] = []
        tweets = data.get("tweet_create_events")
        for tweet in tweets if isinstance(tweets, list) else []:
            item = self._tweet_v1(_d(tweet), me)
            if item:
                items.append(item)
        users = _d(data.get("users"))
        dms = data.get("direct_message_events")
        for ev in dms if isinstance(dms, list) else []:
            item = self._dm(_d(ev), me, users)
            if item:
                items.append(item)
        deletes = data.get("tweet_delete_events")
        for ev in deletes if isinstance(deletes, list) else []:
            status = _d(_d(ev).get("status"))
            if _s(status.get("id")):
                items.append(StatusUpdate(kind="unsend", user_id=_s(status.get("user_id")),
                                          external_ids=(f"tweet:{_s(status.get('id'))}",)))
        other = sorted(k for k in data if k.endswith("_events") and k not in known)
        if other:
            log.info("X events %s acknowledged and ignored", ",".join(other)[:100])
        return items

    def _tweet_v1(self, tweet: dict, me: str) -> Inbound | None:
        tid = _s(tweet.get("id_str")) or _s(tweet.get("id"))
        user = _d(tweet.get("user"))
        uid = _s(user.get("id_str")) or _s(user.get("id"))
        if not tid or not uid:
            log.warning("X tweet without id or user skipped")
            return None
        if uid == me or "retweeted_status" in tweet:
            return None  # our own tweets (replies echo back) and plain retweets are not questions
        text = _s(_d(tweet.get("extended_tweet")).get("full_text")) or _s(tweet.get("full_text")) or _s(tweet.get("text"))
        return self._tweet(tid, uid, _s(user.get("name")), _s(user.get("screen_name")), text,
                           _s(tweet.get("in_reply_to_status_id_str")),
                           _ms_to_dt(tweet.get("timestamp_ms")) or _x_time(tweet.get("created_at")))

    def _tweet(self, tid: str, uid: str, name: str, handle: str, text: str, parent: str,
               sent_at: datetime | None) -> Inbound:
        meta = {"public": True, "network": "x", "x_kind": "tweet", "tweet_id": tid, "x_user_id": uid,
                "x_screen_name": handle, "reply_to": tid}
        display = f"{name} (@{handle})" if name and handle else name or (f"@{handle}" if handle else "")
        # A public tweet continues only the conversation it replies to: without that hint, ingest
        # would fall back to the customer's latest ticket, perhaps their DMs, and the agent's next
        # answer there (with the order number, the address...) would go out as a public reply.
        return Inbound(external_id=f"tweet:{tid}", user_id=uid, text=text or "[tweet]", display_name=display,
                       thread_hints=(f"tweet:{parent}",) if parent else (), sent_at=sent_at, meta=meta,
                       identity_kind="x", new_thread=True)

    def _dm(self, ev: dict, me: str, users: dict) -> Inbound | None:
        if _s(ev.get("type")) != "message_create":
            return None
        eid = _s(ev.get("id"))
        mc = _d(ev.get("message_create"))
        sender = _s(mc.get("sender_id"))
        if not eid or not sender:
            log.warning("X DM event without id or sender skipped")
            return None
        if sender == me:
            return None  # DMs we sent come back as events too
        user = _d(users.get(sender))
        text = _s(_d(mc.get("message_data")).get("text"))
        name, handle = _s(user.get("name")), _s(user.get("screen_name"))
        display = f"{name} (@{handle})" if name and handle else name or handle
        return Inbound(external_id=f"dm:{eid}", user_id=sender, text=text or "[DM]", display_name=display,
                       thread_hints=(f"x-dm:{sender}",), sent_at=_ms_to_dt(ev.get("created_timestamp")),
                       identity_kind="x",
                       meta={"network": "x", "x_kind": "dm", "x_user_id": sender, "x_screen_name": handle,
                             "reply_to": sender})

    def _parse_meta(self, data: dict) -> list[Inbound | StatusUpdate]:
        obj, entries = meta_envelope(data, "Meta")
        items: list[Inbound | StatusUpdate] = []
        for entry in entries:
            entry = _d(entry)
            owner = _s(entry.get("id")) or _s(self.settings.get("account_id"))
            changes = entry.get("changes")
            for change in changes if isinstance(changes, list) else []:
                change = _d(change)
                field, value = _s(change.get("field")), _d(change.get("value"))
                if obj == "page" and field == "feed":
                    item = self._fb_comment(value, owner, entry.get("time"))
                elif obj == "instagram" and field == "comments":
                    item = self._ig_comment(value, owner, entry.get("time"))
                else:
                    log.info("Meta change %r acknowledged and ignored", field[:40])
                    item = None
                if item is not None:
                    items.append(item)
        return items

    def _fb_comment(self, v: dict, page_id: str, entry_time: Any) -> Inbound | StatusUpdate | None:
        if _s(v.get("item")) != "comment":
            return None  # reactions, likes, new posts: not conversations
        cid, post = _s(v.get("comment_id")), _s(v.get("post_id"))
        sender = _d(v.get("from"))
        uid = _s(sender.get("id"))
        verb = _s(v.get("verb"))
        if not cid:
            log.warning("Facebook comment without comment_id skipped")
            return None
        if verb == "remove":
            return StatusUpdate(kind="unsend", user_id=uid, external_ids=(f"fb-comment:{cid}",))
        if verb != "add":
            log.info("Facebook comment verb %r ignored", verb[:20])
            return None
        if not uid or not post:
            log.warning("Facebook comment %s without sender or post skipped", cid[:40])
            return None
        if uid == page_id:
            return None  # our own replies
        created = v.get("created_time")
        sent_at = (datetime.fromtimestamp(created, tz=timezone.utc) if isinstance(created, int) and 0 < created < 2**33
                   else _x_time(created) or _ms_to_dt(entry_time))
        return Inbound(external_id=f"fb-comment:{cid}", user_id=uid, text=_s(v.get("message")) or "[comment]",
                       display_name=_s(sender.get("name")), thread_hints=(f"facebook-post:{post}:{uid}",),
                       sent_at=sent_at, new_thread=True, identity_kind="facebook",
                       meta={"public": True, "network": "facebook", "comment_id": cid, "post_id": post,
                             "parent_id": _s(v.get("parent_id")), "reply_to": cid})

    def _ig_comment(self, v: dict, account_id: str, entry_time: Any) -> Inbound | None:
        cid = _s(v.get("id"))
        sender = _d(v.get("from"))
        uid = _s(sender.get("id"))
        media = _s(_d(v.get("media")).get("id"))
        if not cid or not uid or not media:
            log.warning("Instagram comment without id, sender or media skipped")
            return None
        if uid == account_id:
            return None
        handle = _s(sender.get("username"))
        sent_at = None
        if isinstance(entry_time, int) and 0 < entry_time < 2**33:
            sent_at = datetime.fromtimestamp(entry_time, tz=timezone.utc)
        return Inbound(external_id=f"ig-comment:{cid}", user_id=uid, text=_s(v.get("text")) or "[comment]",
                       display_name=f"@{handle}" if handle else "", thread_hints=(f"instagram-post:{media}:{uid}",),
                       sent_at=sent_at, new_thread=True, identity_kind="instagram",
                       meta={"public": True, "network": "instagram", "comment_id": cid, "post_id": media,
                             "parent_id": _s(v.get("parent_id")), "reply_to": cid})

    # ---- outbound ----------------------------------------------------------------------------

    def send(self, recipient: str, outbound: Outbound) -> SendResult:
        if outbound.attachments:
            # Posts, comments and DMs here carry text only: the agent's files go as signed links
            # (on a public reply, anyone who sees the post can open them until they expire).
            outbound = replace(outbound, text=with_links(outbound.text, outbound.attachments))
        if self.network == "x":
            return self._send_x(recipient, outbound)
        return self._send_comment(recipient, outbound)

    def _x_url(self, path: str) -> str:
        return f"{str(self.settings.get('api_base') or X_API_BASE).rstrip('/')}/{path.lstrip('/')}"

    def _x_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets.get('access_token') or ''}"}

    def _send_x(self, recipient: str, outbound: Outbound) -> SendResult:
        last = outbound.context.get("last_inbound_meta") or {}
        as_dm = bool((outbound.meta or {}).get("dm")) or last.get("x_kind") == "dm"
        if as_dm:
            user_id = str(last.get("x_user_id") or recipient)
            if len(outbound.text) > DM_LIMIT:
                return SendResult(ok=False, error=f"DM は {DM_LIMIT} 文字までです (DMs are limited to {DM_LIMIT})")
            resp = self._request("POST", self._x_url(f"2/dm_conversations/with/{user_id}/messages"),
                                 json={"text": outbound.text}, headers=self._x_headers())
            data = self._x_result(resp)
            if isinstance(data, SendResult):
                return data
            return SendResult(ok=True, external_id=f"dm:{_s(data.get('dm_event_id'))}" if data.get("dm_event_id")
                              else None, meta={"x_kind": "dm"})
        if weighted_length(outbound.text) > TWEET_LIMIT:
            return SendResult(ok=False, error=(
                f"返信が長すぎます: X の投稿は全角 140 文字 (半角 {TWEET_LIMIT} 文字) までです"
                f" (reply too long for X: {weighted_length(outbound.text)}/{TWEET_LIMIT} weighted characters)"))
        tweet_id = str(last.get("tweet_id") or recipient)
        resp = self._request("POST", self._x_url("2/tweets"), headers=self._x_headers(),
                             json={"text": outbound.text, "reply": {"in_reply_to_tweet_id": tweet_id}})
        data = self._x_result(resp)
        if isinstance(data, SendResult):
            return data
        return SendResult(ok=True, external_id=f"tweet:{_s(data.get('id'))}" if data.get("id") else None,
                          meta={"public": True, "x_kind": "tweet"})

    @staticmethod
    def _request(method: str, url: str, **kw) -> requests.Response:
        try:
            return requests.request(method, url, timeout=(5, 15), **kw)
        except requests.RequestException as exc:
            raise TransientSendError(f"{url.split('/')[2]} unreachable: {exc.__class__.__name__}") from None

    @staticmethod
    def _x_result(resp: requests.Response) -> dict | SendResult:
        try:
            body = _d(resp.json())
        except ValueError:
            body = {}
        if resp.status_code in (200, 201):
            return _d(body.get("data"))
        detail = _s(body.get("detail")) or _s(body.get("title")) or resp.reason or "error"
        if resp.status_code == 429 or resp.status_code >= 500:
            wait = retry_after(resp)
            reset = resp.headers.get("x-rate-limit-reset")
            if wait is None and reset and reset.isdigit():
                wait = max(0.0, min(900.0, int(reset) - time.time()))
            raise TransientSendError(f"X {resp.status_code}: {detail}", retry_after=wait)
        if resp.status_code == 401:
            return SendResult(ok=False, error=f"X のアクセストークンが無効です (X 401: {detail})")
        return SendResult(ok=False, error=f"X {resp.status_code}: {detail[:300]}")

    def _graph_url(self, path: str) -> str:
        base = str(self.settings.get("graph_base") or GRAPH_BASE).rstrip("/")
        return f"{base}/{self.settings.get('api_version') or API_VERSION}/{path}"

    def _send_comment(self, recipient: str, outbound: Outbound) -> SendResult:
        if len(outbound.text) > COMMENT_LIMIT:
            return SendResult(ok=False, error=f"コメントは {COMMENT_LIMIT} 文字までです (comment too long)")
        last = outbound.context.get("last_inbound_meta") or {}
        comment_id = str(recipient or last.get("comment_id") or "")
        if not comment_id:
            return SendResult(ok=False, error="返信先のコメントがありません (no comment to reply to)")
        edge = "replies" if self.network == "instagram" else "comments"
        resp = self._request("POST", self._graph_url(f"{comment_id}/{edge}"), **graph_auth(self.secrets),
                             data={"message": outbound.text})
        if resp.status_code == 200:
            try:
                new_id = _s(_d(resp.json()).get("id"))
            except ValueError:
                new_id = ""
            prefix = "ig-comment" if self.network == "instagram" else "fb-comment"
            return SendResult(ok=True, external_id=f"{prefix}:{new_id}" if new_id else None, meta={"public": True})
        code, _sub, message = graph_error(resp)
        if resp.status_code == 429 or resp.status_code >= 500 or code in TRANSIENT_CODES:
            raise TransientSendError(f"Graph API {resp.status_code} (code {code}): {message}",
                                     retry_after=retry_after(resp))
        return SendResult(ok=False, error=f"Graph API {resp.status_code} (code {code}): {message}")

    # ---- polling (accounts without webhooks) ------------------------------------------------------

    def poll(self, since_id: str | None) -> tuple[list[Inbound], str | None]:
        """New mentions since the cursor, oldest first, and the new cursor. X only.

        Raises TransientSendError when X cannot be asked now (the cursor then stays put)."""
        if self.network != "x":
            raise ChannelError(f"polling is implemented for X, not {self.network}")
        me = str(self.settings.get("account_id") or "")
        if not me:
            raise ChannelError("settings.account_id (our X user id) is required for polling")
        params: dict[str, Any] = {"max_results": 100, "expansions": "author_id",
                                  "tweet.fields": "created_at,author_id,referenced_tweets,conversation_id",
                                  "user.fields": "name,username"}
        if since_id:
            params["since_id"] = since_id
        items: list[Inbound] = []
        newest = since_id
        for _page in range(POLL_PAGES):
            resp = self._request("GET", self._x_url(f"2/users/{me}/mentions"), params=params,
                                 headers=self._x_headers())
            data = self._x_result_page(resp)
            raw_users = _d(data.get("includes")).get("users")
            users = {_s(u.get("id")): u for u in raw_users if isinstance(u, dict)} if isinstance(raw_users, list) else {}
            tweets = data.get("data")
            for tweet in tweets if isinstance(tweets, list) else []:
                tweet = _d(tweet)
                tid, uid = _s(tweet.get("id")), _s(tweet.get("author_id"))
                if not tid or not uid or uid == me:
                    continue
                refs = tweet.get("referenced_tweets")
                parent = next((_s(_d(r).get("id")) for r in (refs if isinstance(refs, list) else [])
                               if _d(r).get("type") == "replied_to"), "")
                user = users.get(uid, {})
                items.append(self._tweet(tid, uid, _s(user.get("name")), _s(user.get("username")),
                                         _s(tweet.get("text")), parent, _x_time(tweet.get("created_at"))))
            meta = _d(data.get("meta"))
            if newest is None or (_s(meta.get("newest_id")) and _id_gt(_s(meta["newest_id"]), newest)):
                newest = _s(meta.get("newest_id")) or newest
            token = _s(meta.get("next_token"))
            if not token:
                break
            params["pagination_token"] = token
        items.sort(key=lambda i: int(i.external_id.split(":", 1)[1]) if i.external_id.split(":", 1)[1].isdigit() else 0)
        return items, newest

    def _x_result_page(self, resp: requests.Response) -> dict:
        if resp.status_code == 200:
            try:
                return _d(resp.json())
            except ValueError:
                raise TransientSendError("X answered with invalid JSON") from None
        result = self._x_result(resp)  # raises for 429/5xx
        raise ChannelError(result.error if isinstance(result, SendResult) else f"X {resp.status_code}")


def _id_gt(a: str, b: str) -> bool:
    try:
        return int(a) > int(b)
    except ValueError:
        return a > b
