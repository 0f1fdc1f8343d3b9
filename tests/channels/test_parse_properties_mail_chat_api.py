"""Property tests for the parsers outside the webhook channels: email MIME, the widget
protocol and the API channel. No input may make them raise anything but ChannelError,
and what they return is always well formed."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from channels.api import ApiAdapter
from channels.base import ChannelError, Inbound
from channels.chat import ChatAdapter
from channels.email import EmailAdapter

SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

charsets = st.sampled_from(["iso-2022-jp", "shift_jis", "euc-jp", "utf-8", "cp932", "x-unknown", "", "us-ascii"])
encodings = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", ""])
header_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@st.composite
def mime_messages(draw) -> bytes:
    """Mail-shaped bytes: real header names, hostile values, random charsets and
    transfer encodings, optionally nested multiparts with mismatched boundaries."""
    lines = []
    for name in draw(st.lists(st.sampled_from(
            ["From", "Subject", "Message-ID", "In-Reply-To", "References", "Reply-To", "Date", "Sender"]),
            max_size=8)):
        lines.append(f"{name}: {draw(header_text)}")
    if draw(st.booleans()):
        lines.append(f"From: {draw(header_text)} <{draw(st.text(max_size=10))}@{draw(st.text(max_size=10))}>")
    if draw(st.booleans()):
        enc_word = f"=?{draw(charsets)}?{draw(st.sampled_from(['B', 'Q', 'X']))}?{draw(st.text(max_size=20))}?="
        lines.append(f"Subject: {enc_word}")
    depth = draw(st.integers(min_value=0, max_value=3))
    boundary = draw(st.text(alphabet="abc123'()+_,-./:=? ", min_size=0, max_size=12))
    ctype = "multipart/mixed" if depth else draw(st.sampled_from(["text/plain", "text/html", "application/pdf", ""]))
    lines.append(f'Content-Type: {ctype}; charset="{draw(charsets)}"; boundary="{boundary}"')
    lines.append(f"Content-Transfer-Encoding: {draw(encodings)}")
    head = "\r\n".join(lines).encode("utf-8", "surrogateescape")
    body = draw(st.binary(max_size=300))
    for _ in range(depth):
        part = (f"--{boundary}\r\nContent-Type: text/plain; charset={draw(charsets)}\r\n"
                f"Content-Transfer-Encoding: {draw(encodings)}\r\n\r\n").encode()
        body = part + body + (f"\r\n--{boundary}" + ("--" if draw(st.booleans()) else "")).encode()
    return head + b"\r\n\r\n" + body


def _well_formed(items) -> None:
    assert len(items) == 1 and isinstance(items[0], Inbound)
    inbound = items[0]
    assert isinstance(inbound.external_id, str) and inbound.external_id
    assert isinstance(inbound.user_id, str) and inbound.user_id
    assert isinstance(inbound.text, str) and "\x00" not in inbound.subject


@SETTINGS
@given(raw=mime_messages())
def test_mime_shaped_mail_never_crashes(raw):
    try:
        _well_formed(EmailAdapter({}, {}).parse(raw))
    except ChannelError:
        pass


@SETTINGS
@given(raw=st.binary(max_size=400))
def test_arbitrary_bytes_as_mail_never_crash(raw):
    try:
        _well_formed(EmailAdapter({}, {}).parse(raw))
    except ChannelError:
        pass


@SETTINGS
@given(payload=st.one_of(json_values, st.fixed_dictionaries(
    {"key": st.one_of(st.text(max_size=300), json_values), "text": st.one_of(st.text(max_size=50), json_values)},
    optional={"client_id": json_values, "name": json_values, "email": json_values, "attachments": json_values})))
@example(payload={"key": "0", "text": "", "attachments": 1})  # found by this test: a TypeError, not a refusal
def test_widget_messages_never_crash(payload):
    try:
        _well_formed(ChatAdapter({}, {}).parse(payload))
    except ChannelError:
        pass


@SETTINGS
@given(payload=st.one_of(json_values, st.binary(max_size=100), st.fixed_dictionaries(
    {"external_id": json_values, "user_id": json_values, "text": json_values},
    optional={"sent_at": st.one_of(st.text(max_size=30), json_values), "name": json_values,
              "subject": json_values, "thread": json_values})))
def test_api_payloads_never_crash(payload):
    try:
        _well_formed(ApiAdapter({}, {}).parse(payload))
    except ChannelError:
        pass
