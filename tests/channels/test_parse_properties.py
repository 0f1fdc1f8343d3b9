"""Property tests: whatever arrives, parse() returns items or raises ChannelError, nothing else."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.base import ChannelError, Inbound, StatusUpdate
from channels.line import LineAdapter
from channels.messenger import MessengerAdapter
from channels.social import SocialAdapter

ADAPTERS = [
    LineAdapter({}, {"channel_secret": "s"}),
    MessengerAdapter({}, {"app_secret": "s"}),
    MessengerAdapter({"platform": "instagram"}, {"app_secret": "s"}),
    SocialAdapter({"network": "x", "account_id": "1"}, {}),
    SocialAdapter({"network": "facebook", "account_id": "1"}, {}),
    SocialAdapter({"network": "instagram", "account_id": "1"}, {}),
]

KEYS = ["events", "type", "message", "source", "userId", "groupId", "id", "text", "timestamp", "replyToken",
        "webhookEventId", "deliveryContext", "isRedelivery", "unsend", "messageId", "postback", "data", "params",
        "keywords", "contentProvider", "fileName", "fileSize", "latitude", "object", "entry", "messaging",
        "sender", "recipient", "mid", "attachments", "payload", "url", "delivery", "mids", "watermark", "read",
        "is_echo", "reply_to", "changes", "field", "value", "from", "post_id", "comment_id", "verb", "item",
        "media", "for_user_id", "tweet_create_events", "direct_message_events", "users", "id_str", "user",
        "message_create", "sender_id", "message_data", "tweet_delete_events", "status", "created_at",
        "created_timestamp", "quick_reply", "coordinates"]
VALUES = {"type": ["message", "text", "sticker", "image", "video", "audio", "file", "location", "follow",
                   "unfollow", "postback", "unsend", "group", "room", "user", "message_create", "external", "line"],
          "object": ["page", "instagram"], "field": ["feed", "comments"], "verb": ["add", "remove", "edited"],
          "item": ["comment", "reaction"]}

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=True), st.text(max_size=20), st.sampled_from(sum(VALUES.values(), [])))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=6)),
    max_leaves=8,
)
payloads = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6)


def shaped(**fields):
    """A provider-shaped object: fields are mostly well-typed, sometimes junk or missing."""
    keys = sorted(fields)
    good = st.fixed_dictionaries({k: st.one_of(fields[k], fields[k], fields[k], json_values) for k in keys})
    return st.one_of(good, good, good, st.fixed_dictionaries({}, optional={k: json_values for k in keys}))


ids = st.one_of(st.text(min_size=1, max_size=8), st.integers(min_value=0, max_value=10**20))
line_event = shaped(
    type=st.sampled_from(["message"] * 6 + ["postback", "follow", "unfollow", "unsend", "beacon"]), timestamp=st.integers(min_value=-2**63, max_value=2**63),
    webhookEventId=ids, replyToken=ids, mode=st.sampled_from(["active", "standby"]),
    deliveryContext=shaped(isRedelivery=st.booleans()),
    source=shaped(type=st.sampled_from(["user", "group", "room"]), userId=ids, groupId=ids, roomId=ids),
    message=shaped(id=ids, type=st.sampled_from(["text", "sticker", "image", "video", "audio", "file", "location", "x"]), text=st.text(max_size=10), keywords=st.lists(ids),
                   fileName=st.text(max_size=10), fileSize=st.integers(), latitude=st.floats(), longitude=st.floats(),
                   contentProvider=shaped(type=st.sampled_from(["line", "external"]), originalContentUrl=ids),
                   duration=st.integers(), quotedMessageId=ids, packageId=ids, stickerId=ids),
    postback=shaped(data=st.text(max_size=20), params=st.dictionaries(st.text(max_size=5), json_values, max_size=3)),
    unsend=shaped(messageId=ids),
)
meta_event = shaped(
    sender=shaped(id=ids), recipient=shaped(id=ids), timestamp=st.integers(min_value=-2**63, max_value=2**63),
    message=shaped(mid=ids, text=st.text(max_size=10), is_echo=st.booleans(), is_deleted=st.booleans(),
                   attachments=st.lists(shaped(type=st.sampled_from(["image", "location", "file", "x"]),
                                               payload=shaped(url=ids, coordinates=shaped(lat=st.floats()))),
                                        max_size=3),
                   quick_reply=shaped(payload=ids), reply_to=shaped(mid=ids)),
    postback=shaped(mid=ids, title=ids, payload=ids),
    delivery=shaped(mids=st.lists(ids, max_size=3), watermark=st.integers()),
    read=shaped(watermark=st.integers(), mid=ids),
)
change = shaped(field=st.sampled_from(["feed", "comments", "mentions"]), value=shaped(
    item=st.sampled_from(["comment", "reaction"]), verb=st.sampled_from(["add", "remove", "edited"]),
    comment_id=ids, post_id=ids, id=ids, text=ids, message=ids, parent_id=ids,
    created_time=st.one_of(st.integers(min_value=-2**63, max_value=2**63), st.text(max_size=30)),
    media=shaped(id=ids), **{"from": shaped(id=ids, name=ids, username=ids)}))
x_payload = shaped(
    for_user_id=ids,
    tweet_create_events=st.lists(shaped(id_str=ids, text=ids, timestamp_ms=ids, created_at=st.text(max_size=30),
                                        in_reply_to_status_id_str=ids, extended_tweet=shaped(full_text=ids),
                                        user=shaped(id_str=ids, name=ids, screen_name=ids)), max_size=3),
    direct_message_events=st.lists(shaped(type=st.just("message_create"), id=ids, created_timestamp=ids,
                                          message_create=shaped(sender_id=ids, message_data=shaped(text=ids))),
                                   max_size=3),
    tweet_delete_events=st.lists(shaped(status=shaped(id=ids, user_id=ids)), max_size=2),
    users=st.dictionaries(ids.map(str), shaped(name=ids, screen_name=ids), max_size=2),
)
provider_payloads = st.one_of(
    st.builds(lambda evs: {"events": evs}, st.lists(line_event, max_size=4)),
    st.builds(lambda obj, entries: {"object": obj, "entry": entries}, st.sampled_from(["page", "instagram"]),
              st.lists(shaped(id=ids, time=st.integers(), messaging=st.lists(meta_event, max_size=3),
                              changes=st.lists(change, max_size=3)), max_size=3)),
    x_payload,
)


def _check(adapter, raw) -> None:
    try:
        items = adapter.parse(raw)
    except ChannelError:
        return
    assert all(isinstance(i, (Inbound, StatusUpdate)) for i in items)
    for i in items:
        if isinstance(i, Inbound):
            assert isinstance(i.external_id, str) and i.external_id
            assert isinstance(i.user_id, str) and i.user_id
            assert isinstance(i.text, str)


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=payloads)
def test_structured_payloads_never_crash(payload):
    for adapter in ADAPTERS:
        _check(adapter, json.dumps(payload, allow_nan=True).encode())


@settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=provider_payloads)
def test_provider_shaped_payloads_never_crash(payload):
    for adapter in ADAPTERS:
        _check(adapter, json.dumps(payload, allow_nan=True).encode())


@settings(max_examples=100, deadline=None, database=None)
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(raw):
    for adapter in ADAPTERS:
        _check(adapter, raw)


@settings(max_examples=60, deadline=None, database=None)
@given(events=st.lists(json_values, max_size=4))
def test_event_lists_never_crash(events):
    adapter_list = ADAPTERS
    for wrapper in ({"events": events}, {"object": "page", "entry": events}, {"object": "instagram", "entry": events},
                    {"for_user_id": "1", "tweet_create_events": events, "direct_message_events": events}):
        for adapter in adapter_list:
            _check(adapter, json.dumps(wrapper, allow_nan=True).encode())


def test_deeply_nested_json_is_a_channel_error():
    raw = b"[" * 100000 + b"]" * 100000
    for adapter in ADAPTERS:
        with pytest.raises(ChannelError):
            adapter.parse(raw)
