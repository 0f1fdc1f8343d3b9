"""Outbound email against a real SMTP server (aiosmtpd): headers, encodings, threading, errors."""

from __future__ import annotations

import email
import socket
from email import policy

import pytest

from channels.base import Outbound, TransientSendError
from channels.email import EmailAdapter, encode_iso2022jp
from channels._mail_text import decode_header_value, decode_iso2022jp
from tests.live import free_port

CONTEXT = {
    "thread_key": None,
    "external_ids": ["<first@customer.jp>", "sha256:abc", "<helpdesk.5.1.0123456789abcdef@example.jp>",
                     "<second@customer.jp>"],
    "last_inbound_external_id": "<second@customer.jp>",
    "last_inbound_meta": {"subject": "Re: 注文について", "quote": "商品がまだ届きません。\n確認をお願いします。"},
    "last_inbound_at": "2026-11-01T01:05:00+00:00",
    "agent_name": "佐藤",
    "contact_email": "taro@customer.jp",
    "contact_name": "山田 太郎",
}


def outbound(**kw) -> Outbound:
    base = dict(text="お問い合わせありがとうございます。\n本日発送いたしました。", ticket_id=5, message_id=9,
                subject="注文について", context=CONTEXT)
    base.update(kw)
    return Outbound(**base)


def adapter(server_settings, **settings) -> EmailAdapter:
    base = {"address": "support@example.jp", "from_address": "support@example.jp", "from_name": "サポート窓口"}
    base.update(server_settings)
    base.update(settings)
    return EmailAdapter(base, {"smtp_password": settings.pop("password", "")})


def test_reply_is_delivered_with_threading_headers(smtp_server):
    sink, server = smtp_server
    result = adapter(server).send("taro@customer.jp", outbound())
    assert result.ok, result.error
    assert result.external_id.startswith("<helpdesk.5.9.") and result.external_id.endswith("@example.jp>")
    got = sink.messages[0]
    assert (got["mail_from"], got["rcpt_tos"]) == ("support@example.jp", ["taro@customer.jp"])
    msg = sink.parsed()
    assert msg["Message-ID"] == result.external_id
    assert msg["In-Reply-To"] == "<second@customer.jp>"
    assert msg["References"].split() == ["<first@customer.jp>", "<helpdesk.5.1.0123456789abcdef@example.jp>",
                                         "<second@customer.jp>"]
    assert str(msg["Subject"]) == "Re: 注文について [#5]"
    assert msg["From"].addresses[0].display_name == "サポート窓口"
    assert msg["X-Helpdesk-Ticket"] == "5"


def test_utf8_body_has_japanese_quote_header_of_the_customers_last_message(smtp_server):
    sink, server = smtp_server
    adapter(server).send("taro@customer.jp", outbound())
    msg = sink.parsed()
    assert msg.get_content_type() == "text/plain" and msg.get_content_charset() == "utf-8"
    assert msg.get_content().replace("\r\n", "\n") == (
        "お問い合わせありがとうございます。\n本日発送いたしました。\n\n"
        "2026年11月1日(日) 10:05 山田 太郎 <taro@customer.jp>:\n"
        "> 商品がまだ届きません。\n> 確認をお願いします。\n")
    raw = sink.messages[0]["data"]
    assert raw.isascii()  # RFC 2047 headers and base64 body: safe through any relay
    assert b"Subject: Re: =?utf-8?" in raw


def test_message_id_is_the_same_on_every_attempt(smtp_server):
    sink, server = smtp_server
    a = adapter(server)
    first, again = a.send("taro@customer.jp", outbound()), a.send("taro@customer.jp", outbound())
    assert first.external_id == again.external_id
    assert sink.parsed(0)["Message-ID"] == sink.parsed(1)["Message-ID"]
    assert a.send("taro@customer.jp", outbound(message_id=10)).external_id != first.external_id


def test_iso2022jp_option_encodes_nec_characters(smtp_server):
    sink, server = smtp_server
    text = "①㈱山田商事様\nⅡ期のご請求です。ｶﾀｶﾅ"
    result = adapter(server, outbound_charset="iso-2022-jp").send("taro@customer.jp", outbound(text=text))
    assert result.ok
    raw = sink.messages[0]["data"]
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert raw.isascii() and all(len(line) <= 78 for line in head.split(b"\r\n"))
    msg = email.message_from_bytes(raw, policy=policy.compat32)
    assert msg.get_content_charset() == "iso-2022-jp"
    assert msg["Content-Transfer-Encoding"] == "7bit"
    body = decode_iso2022jp(msg.get_payload(decode=True)).replace("\r\n", "\n")
    assert body.startswith("①㈱山田商事様\nⅡ期のご請求です。カタカナ\n\n2026年11月1日(日) 10:05 山田 太郎")
    assert msg["Subject"].startswith("=?ISO-2022-JP?B?")
    assert decode_header_value(msg["Subject"]) == "Re: 注文について [#5]"
    assert decode_header_value(msg["From"]) == "サポート窓口 <support@example.jp>"
    assert msg["In-Reply-To"] == "<second@customer.jp>"


def test_iso2022jp_falls_back_to_utf8_for_emoji(smtp_server):
    sink, server = smtp_server
    adapter(server, outbound_charset="iso-2022-jp").send("taro@customer.jp", outbound(text="ありがとうございます😊"))
    msg = sink.parsed()
    assert msg.get_content_charset() == "utf-8"
    assert msg.get_content().startswith("ありがとうございます😊")


def test_iso2022jp_paragraph_longer_than_an_smtp_line_goes_as_utf8(smtp_server):
    sink, server = smtp_server
    paragraph = "このたびはご迷惑をおかけして申し訳ございません。" * 30  # one line from a textarea: 1,400+ JIS bytes
    result = adapter(server, outbound_charset="iso-2022-jp").send("taro@customer.jp", outbound(text=paragraph))
    assert result.ok, result.error
    msg = sink.parsed()
    assert msg.get_content_charset() == "utf-8" and msg["Content-Transfer-Encoding"] == "base64"
    assert msg.get_content().startswith(paragraph + "\r\n\r\n")
    assert all(len(line) <= 998 for line in sink.messages[0]["data"].split(b"\r\n"))


def test_iso2022jp_paragraph_that_fits_an_smtp_line_stays_iso2022jp(smtp_server):
    sink, server = smtp_server
    paragraph = "このたびはご迷惑をおかけして申し訳ございません。" * 20  # 966 JIS bytes with its escapes
    adapter(server, outbound_charset="iso-2022-jp").send("taro@customer.jp", outbound(text=paragraph))
    msg = email.message_from_bytes(sink.messages[0]["data"], policy=policy.compat32)
    assert msg.get_content_charset() == "iso-2022-jp"
    assert decode_iso2022jp(msg.get_payload(decode=True)).startswith(paragraph + "\r\n")


def test_long_subject_in_iso2022jp_stays_decodable():
    subject = "【重要】" + "お問い合わせいただいた件につきまして" * 4
    words = __import__("channels.email", fromlist=["_jis_words"])._jis_words(subject)
    assert all(len(w.strip()) <= 75 for w in words.split("\r\n"))
    assert decode_header_value(words) == subject
    assert encode_iso2022jp("①") == b"\x1b$B-!\x1b(B"


def test_crlf_in_subject_cannot_inject_headers(smtp_server):
    sink, server = smtp_server
    result = adapter(server).send("taro@customer.jp", outbound(subject="注文\r\nBcc: evil@example.com\r\n\r\nbody"))
    assert result.ok
    msg = sink.parsed()
    assert msg["Bcc"] is None
    assert sink.messages[0]["rcpt_tos"] == ["taro@customer.jp"]
    assert "\n" not in str(msg["Subject"]) and "Bcc: evil@example.com" in str(msg["Subject"])


@pytest.mark.parametrize("recipient", ["taro@customer.jp\r\nBcc: evil@example.com", "not an address", ""])
def test_bad_recipient_is_a_permanent_failure_and_nothing_is_sent(smtp_server, recipient):
    sink, server = smtp_server
    result = adapter(server).send(recipient, outbound())
    assert not result.ok and "not an email address" in result.error
    assert sink.messages == []


def test_crlf_in_from_name_is_flattened(smtp_server):
    sink, server = smtp_server
    adapter(server, from_name="サポート\r\nBcc: evil@example.com").send("taro@customer.jp", outbound())
    msg = sink.parsed()
    assert msg["Bcc"] is None
    assert msg["From"].addresses[0].addr_spec == "support@example.jp"


def test_4xx_is_transient(smtp_server):
    sink, server = smtp_server
    sink.fail_with = "451 4.3.0 Try again later"
    with pytest.raises(TransientSendError, match="451"):
        adapter(server).send("taro@customer.jp", outbound())


def test_4xx_on_recipient_is_transient(smtp_server):
    sink, server = smtp_server
    sink.fail_rcpt_with = "450 4.2.0 Mailbox busy"
    with pytest.raises(TransientSendError, match="450"):
        adapter(server).send("taro@customer.jp", outbound())


def test_5xx_recipient_is_permanent_and_reported(smtp_server):
    sink, server = smtp_server
    sink.fail_rcpt_with = "550 5.1.1 No such user"
    result = adapter(server).send("taro@customer.jp", outbound())
    assert not result.ok and "550" in result.error and "No such user" in result.error


def test_5xx_on_data_is_permanent(smtp_server):
    sink, server = smtp_server
    sink.fail_with = "554 5.7.1 Message rejected as spam"
    result = adapter(server).send("taro@customer.jp", outbound())
    assert not result.ok and "554" in result.error


def test_connection_refused_is_transient():
    a = adapter({"smtp_host": "127.0.0.1", "smtp_port": free_port(), "smtp_security": "plain", "smtp_timeout": 2})
    with pytest.raises(TransientSendError, match="ConnectionRefused"):
        a.send("taro@customer.jp", outbound())


def test_server_that_never_answers_is_a_transient_timeout():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts the TCP connection, never says hello
        a = adapter({"smtp_host": "127.0.0.1", "smtp_port": silent.getsockname()[1], "smtp_security": "plain",
                     "smtp_timeout": 0.5})
        with pytest.raises(TransientSendError, match="(?i)timeout|timed out"):
            a.send("taro@customer.jp", outbound())


def test_missing_smtp_host_is_permanent():
    result = adapter({}).send("taro@customer.jp", outbound())
    assert not result.ok and "smtp_host" in result.error


@pytest.fixture
def tls_smtp_server(tls_cert):
    """aiosmtpd requiring STARTTLS and AUTH (a submission server on port 587)."""
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from tests.live import SmtpSink

    cert, key = tls_cert
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            b"support@example.jp", "s3cret-パス".encode())
        return AuthResult(success=ok, handled=False)

    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True,
                            authenticator=authenticator, auth_required=True, decode_data=False)
    controller.start()
    yield sink, {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "starttls",
                 "smtp_user": "support@example.jp", "tls_ca_file": str(cert), "smtp_timeout": 5}
    controller.stop()


def test_starttls_and_login(tls_smtp_server):
    sink, server = tls_smtp_server
    a = EmailAdapter({**server, "from_address": "support@example.jp"}, {"smtp_password": "s3cret-パス"})
    assert a.send("taro@customer.jp", outbound()).ok
    assert sink.messages[0]["tls"] and sink.messages[0]["authenticated"]


def test_wrong_password_is_permanent(tls_smtp_server):
    _, server = tls_smtp_server
    a = EmailAdapter({**server, "from_address": "support@example.jp"}, {"smtp_password": "wrong"})
    result = a.send("taro@customer.jp", outbound())
    assert not result.ok and "535" in result.error


def test_untrusted_certificate_is_permanent(tls_smtp_server):
    _, server = tls_smtp_server
    a = EmailAdapter({**server, "tls_ca_file": None, "from_address": "support@example.jp"}, {"smtp_password": "x"})
    result = a.send("taro@customer.jp", outbound())
    assert not result.ok and "certificate" in result.error


SIGNATURE = "━━━━━━━━━━━━━━━━\n株式会社サンプル カスタマーサポート\n担当: {agent}\nsupport@example.jp\n━━━━━━━━━━━━━━━━"


def test_the_inbox_signature_goes_under_the_reply_with_the_agents_name(smtp_server):
    sink, server = smtp_server
    adapter(server, signature=SIGNATURE).send("taro@customer.jp", outbound())
    assert sink.parsed().get_content().replace("\r\n", "\n") == (
        "お問い合わせありがとうございます。\n本日発送いたしました。\n\n"
        "━━━━━━━━━━━━━━━━\n株式会社サンプル カスタマーサポート\n担当: 佐藤\nsupport@example.jp\n━━━━━━━━━━━━━━━━\n\n"
        "2026年11月1日(日) 10:05 山田 太郎 <taro@customer.jp>:\n"
        "> 商品がまだ届きません。\n> 確認をお願いします。\n")


def test_the_signature_in_iso2022jp_and_without_an_agent(smtp_server):
    sink, server = smtp_server
    context = {**CONTEXT, "agent_name": "", "last_inbound_meta": {}}  # a survey the desk sends itself
    signature = "株式会社サンプル\r\n{agent}\r\nsupport@example.jp"
    adapter(server, signature=signature, outbound_charset="iso-2022-jp").send(
        "taro@customer.jp", outbound(text="アンケートのお願い", context=context))
    msg = email.message_from_bytes(sink.messages[0]["data"], policy=policy.compat32)
    assert msg.get_content_charset() == "iso-2022-jp"
    body = decode_iso2022jp(msg.get_payload(decode=True)).replace("\r\n", "\n")
    assert body == "アンケートのお願い\n\n株式会社サンプル\nsupport@example.jp\n"


@pytest.mark.parametrize("charset", ["utf-8", "iso-2022-jp"])
def test_an_automatic_reply_says_so_and_an_agents_does_not(smtp_server, charset):
    """RFC 3834: the away message and a survey's question are Auto-Submitted, so the customer's
    vacation responder does not answer them (and the desk does not answer the responder)."""
    sink, server = smtp_server
    mail = adapter(server, outbound_charset=charset)
    assert mail.send("taro@customer.jp", outbound(text="営業時間外です。", meta={"auto_reply": "away"})).ok
    assert mail.send("taro@customer.jp", outbound(message_id=10)).ok
    assert mail.send("taro@customer.jp", outbound(message_id=11, meta={"survey": {"id": 1, "kind": "csat"}})).ok
    away, answer, survey = (email.message_from_bytes(m["data"], policy=policy.default) for m in sink.messages)
    assert away["Auto-Submitted"] == "auto-replied"
    assert answer["Auto-Submitted"] is None
    assert survey["Auto-Submitted"] == "auto-generated"  # asked of the desk's accord, answered by a person
