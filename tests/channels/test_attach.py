"""Agents' files on LINE, Messenger, X and the API channel: images as media where the provider
shows them, everything else as signed links, checked by the providers' stand-ins; each link is
then opened as the customer's app would."""

from __future__ import annotations

import logging
from urllib.parse import unquote, urlsplit

import pytest
from sqlalchemy import select

from channels.base import Attachment
from helpdesk.extensions import db
from helpdesk.models import Delivery, Direction, Message, Ticket
from helpdesk.services.replies import ReplyError, post_reply
from tests import factories as f

from . import test_line as line_t
from . import test_messenger as ms_t
from . import test_social as social_t
from .conftest import post_hub
from .standins import GraphStandIn, LineStandIn, Reply, StandIn

PUBLIC = "https://desk.example.jp"
pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False, PUBLIC_URL=PUBLIC)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
CSV = "品番,数量\nA-1,2\n".encode("utf-8")


def files(*pairs) -> list[Attachment]:
    return [Attachment(filename=name, content_type="", data=data) for name, data in pairs]


def only_ticket() -> Ticket:
    return db.session.scalars(select(Ticket)).one()


def open_link(client, url: str):
    """The signed link as the customer's app (or Meta's fetcher) opens it."""
    assert url.startswith(PUBLIC + "/files/"), url
    with client.get(urlsplit(url).path) as resp:
        resp.get_data()  # read, then the file is closed
    return resp


def assert_download(resp, data: bytes, mimetype: str, filename: str) -> None:
    assert resp.status_code == 200 and resp.data == data
    assert resp.mimetype == mimetype
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert unquote(resp.headers["Content-Disposition"].split("filename*=UTF-8''")[1]) == filename
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def links_in(text: str) -> list[str]:
    return [w for w in text.split() if w.startswith("http")]


# ---- LINE ------------------------------------------------------------------------------------------

@pytest.fixture
def line_inbox(app, line_api, line_data):
    return f.inbox(kind="line", settings={"api_base": line_api.url, "api_data_base": line_data.url},
                   secrets={"channel_secret": line_t.SECRET, "channel_token": "line-token"})


def test_line_image_is_an_image_message_and_the_pdf_a_link(app, client, line_inbox, line_api):
    agent = f.agent(inboxes=[line_inbox])
    ev = line_t.text_event("請求書を送ってください", user="U900")
    line_api.reply_tokens.add(ev["replyToken"])
    line_t.post(client, line_inbox, line_t.webhook(ev))
    msg = post_reply(only_ticket(), agent, "請求書と設定画面をお送りします。",
                     files=files(("設定画面.png", PNG), ("請求書.pdf", PDF)))
    [call] = line_api.sent("/v2/bot/message/reply")  # one request: the reply token is used once
    text, image = call.json["messages"]
    assert text["type"] == "text" and text["text"].startswith("請求書と設定画面をお送りします。\n\n📎 請求書.pdf\n")
    [pdf_link] = links_in(text["text"])
    assert image["type"] == "image" and image["originalContentUrl"] == image["previewImageUrl"]
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent
    assert_download(open_link(client, image["originalContentUrl"]), PNG, "image/png", "設定画面.png")
    assert_download(open_link(client, pdf_link), PDF, "application/pdf", "請求書.pdf")


@pytest.mark.config(SENTIMENT_ENABLED=False, PUBLIC_URL="http://127.0.0.1:5000")
def test_line_without_https_sends_the_image_as_a_link_and_says_why(app, client, line_inbox, line_api, caplog):
    line_t.post(client, line_inbox, line_t.webhook(line_t.text_event(user="U901")))
    with caplog.at_level(logging.INFO, logger="channels.line"):
        msg = post_reply(only_ticket(), f.agent(inboxes=[line_inbox]), "画面です", files=files(("画面.png", PNG)))
    [call] = line_api.sent("/reply") or line_api.sent("/push")
    assert [m["type"] for m in call.json["messages"]] == ["text"]
    assert links_in(call.json["messages"][0]["text"])[0].startswith("http://127.0.0.1:5000/files/")
    assert "HTTPS" in caplog.text and "画面.png" in caplog.text
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent


def test_line_five_messages_per_request_extra_images_become_links(app, client, line_inbox, line_api, caplog):
    line_t.post(client, line_inbox, line_t.webhook(line_t.text_event(user="U902")))
    shots = files(*[(f"画面{i}.png", PNG + bytes([i])) for i in range(1, 6)])
    with caplog.at_level(logging.INFO, logger="channels.line"):
        msg = post_reply(only_ticket(), f.agent(inboxes=[line_inbox]), "手順の画面です", files=shots)
    accepted = line_api.sent("/push")[-1]  # the reply token was not LINE's: pushed
    types = [m["type"] for m in accepted.json["messages"]]
    assert types == ["text", "image", "image", "image", "image"]
    text = accepted.json["messages"][0]["text"]
    assert "📎 画面5.png" in text and len(links_in(text)) == 1
    assert "over the 5-message limit" in caplog.text
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent


def test_line_preview_over_one_megabyte_goes_as_a_link(app, client, line_inbox, line_api):
    line_t.post(client, line_inbox, line_t.webhook(line_t.text_event(user="U903")))
    big = PNG + bytes(1024 * 1024)
    post_reply(only_ticket(), f.agent(inboxes=[line_inbox]), "", files=files(("大きい画面.png", big)))
    call = (line_api.sent("/reply") + line_api.sent("/push"))[-1]
    [only] = call.json["messages"]
    assert only["type"] == "text" and only["text"].startswith("📎 大きい画面.png\nhttps://desk.example.jp/files/")


def test_line_stand_in_refuses_image_urls_line_would_refuse():
    url = "https://a.example/x.png"
    ok = {"type": "image", "originalContentUrl": url, "previewImageUrl": url}
    assert LineStandIn._messages_ok([ok]) is None
    assert LineStandIn._messages_ok([{**ok, "previewImageUrl": "http://a.example/x.png"}])
    assert LineStandIn._messages_ok([{**ok, "originalContentUrl": "https://a.example/" + "x" * 2000}])
    assert LineStandIn._messages_ok([ok] * 6)


# ---- Messenger -------------------------------------------------------------------------------------

@pytest.fixture
def ms_inbox(app, graph):
    return f.inbox(kind="messenger", settings={"graph_base": graph.url},
                   secrets={"app_secret": "app-secret", "page_token": "page-token", "verify_token": "vt"})


def test_messenger_text_then_image_then_file(app, client, ms_inbox, graph):
    post_hub(client, "messenger", ms_inbox, ms_t.messaging(ms_t.message("見積書をください", psid="7100")))
    msg = post_reply(only_ticket(), f.agent(inboxes=[ms_inbox]), "見積書です。",
                     files=files(("画面.png", PNG), ("見積書.pdf", PDF)))
    text, image, doc = [c.json for c in graph.sent("/me/messages")]
    for call in (text, image, doc):
        assert call["recipient"] == {"id": "7100"} and call["messaging_type"] == "RESPONSE"
    assert text["message"] == {"text": "見積書です。"}
    assert image["message"]["attachment"]["type"] == "image"
    assert doc["message"]["attachment"]["type"] == "file"
    # Meta names a file after the URL's last segment: the real name follows the token.
    doc_url = doc["message"]["attachment"]["payload"]["url"]
    assert unquote(doc_url.rsplit("/", 1)[1]) == "見積書.pdf"
    assert_download(open_link(client, image["message"]["attachment"]["payload"]["url"]), PNG, "image/png", "画面.png")
    assert_download(open_link(client, doc_url), PDF, "application/pdf", "見積書.pdf")
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent and msg.external_id == "m_out1"  # the text's id


class FlakyGraph(GraphStandIn):
    """Graph answering 500 to the first file part: a hiccup in the middle of a send."""

    def __init__(self):
        super().__init__()
        self.hiccups = 1

    def route(self, call):
        if self.hiccups and "attachment" in ((call.json or {}).get("message") or {}):
            self.hiccups -= 1
            return Reply(500, {"error": {"message": "An unexpected error has occurred.", "code": 2}})
        return super().route(call)


def test_messenger_retry_resumes_after_the_parts_already_sent(app, client):
    with FlakyGraph() as graph:
        box = f.inbox(kind="messenger", settings={"graph_base": graph.url},
                      secrets={"app_secret": "app-secret", "page_token": "page-token", "verify_token": "vt"})
        post_hub(client, "messenger", box, ms_t.messaging(ms_t.message(psid="7101")))
        msg = post_reply(only_ticket(), f.agent(inboxes=[box]), "領収書です。", files=files(("領収書.pdf", PDF)))
        bodies = [c.json["message"] for c in graph.sent("/me/messages")]
    assert [("text" in b, "attachment" in b) for b in bodies] == [(True, False), (False, True), (False, True)]
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent and msg.delivery_attempts == 2
    assert msg.external_id == "m_out1"  # the text's id, kept across the retry


# ---- X ---------------------------------------------------------------------------------------------

def test_x_dm_carries_the_links_in_its_text(app, client, xapi):
    box = f.inbox(kind="social", settings={"network": "x", "api_base": xapi.url, "account_id": social_t.ME},
                  secrets={"consumer_secret": social_t.CONSUMER_SECRET, "access_token": "x-user-token"})
    social_t.post_x(client, box, social_t.dm(sender="4100"))
    post_reply(only_ticket(), f.agent(inboxes=[box]), "伝票をお送りします", files=files(("伝票.pdf", PDF)))
    [call] = xapi.sent("/2/dm_conversations/with/4100/messages")
    text = call.json["text"]
    assert text.startswith("伝票をお送りします\n\n📎 伝票.pdf\n")
    assert_download(open_link(client, links_in(text)[0]), PDF, "application/pdf", "伝票.pdf")


def test_files_are_refused_on_a_public_reply(app, client, xapi, caplog):
    box = f.inbox(kind="social", settings={"network": "x", "api_base": xapi.url, "account_id": social_t.ME},
                  secrets={"consumer_secret": social_t.CONSUMER_SECRET, "access_token": "x-user-token"})
    social_t.post_x(client, box, social_t.tweets(social_t.tweet()))
    ticket = only_ticket()
    with app.test_request_context("/?lang=en"), pytest.raises(ReplyError, match="public reply"):
        post_reply(ticket, f.agent(inboxes=[box]), "請求書です", files=files(("請求書.pdf", PDF)))
    db.session.rollback()
    assert db.session.scalar(select(Message).where(Message.direction == Direction.outbound)) is None
    assert xapi.sent("/2/tweets") == []
    assert "the reply is a public post" in caplog.text


def test_x_public_reply_counts_a_typed_link_as_23(app, client, xapi):
    box = f.inbox(kind="social", settings={"network": "x", "api_base": xapi.url, "account_id": social_t.ME},
                  secrets={"consumer_secret": social_t.CONSUMER_SECRET, "access_token": "x-user-token"})
    social_t.post_x(client, box, social_t.tweets(social_t.tweet()))
    # 120 kana (240) + a space and a long link counted as 23: fits in 280.
    link = "https://support.example.jp/guide/" + "a" * 80
    msg = post_reply(only_ticket(), f.agent(inboxes=[box]), "あ" * 120 + " " + link)
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent, msg.delivery_error
    [call] = xapi.sent("/2/tweets")
    assert call.json["text"].endswith(link)


# ---- API callback ----------------------------------------------------------------------------------

class CallbackStandIn(StandIn):
    """An integration's callback endpoint: accepts every JSON post."""

    def route(self, call):
        return Reply(200, {"ok": True})


def test_api_callback_gets_the_files_as_links(app, client):
    with CallbackStandIn() as hook:
        box = f.inbox(kind="api", settings={"callback_url": hook.url + "/replies"})
        token = f.api_token(box)
        r = client.post("/api/v1/messages", headers={"Authorization": f"Bearer {token}"},
                        json={"external_id": "crm-1", "user_id": "c-9", "text": "明細をください"})
        assert r.status_code == 201
        post_reply(only_ticket(), f.agent(inboxes=[box]), "明細です", files=files(("明細.csv", CSV)))
        [call] = hook.sent("/replies")
    assert call.json["text"] == "明細です"
    [att] = call.json["attachments"]
    assert (att["filename"], att["content_type"], att["size"]) == ("明細.csv", "text/csv", len(CSV))
    # Not an image or PDF: served as bytes to save, never as something a browser renders.
    assert_download(open_link(client, att["url"]), CSV, "application/octet-stream", "明細.csv")

