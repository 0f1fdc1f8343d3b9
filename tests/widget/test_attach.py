"""Agents' files in the chat widget: the visitor gets them live with a signed link that opens
without any session, and in the history after a reload; files on private notes never leave."""

from __future__ import annotations

from urllib.parse import unquote

from sqlalchemy import select

from channels.base import Attachment
from helpdesk.extensions import db
from helpdesk.models import Delivery, Ticket
from helpdesk.services import storage
from helpdesk.services.replies import post_reply
from tests.widget.helpers import NS, hello, received, say

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)


def only_ticket() -> Ticket:
    db.session.expire_all()
    return db.session.scalars(select(Ticket).where(Ticket.channel == "chat")).one()


def get(client, path, **kw):
    with client.get(path, **kw) as resp:
        resp.get_data()
    return resp


def test_visitor_gets_the_files_live_as_signed_links(app, client, sockets, chat_inbox, agent):
    sockets.agent(agent)
    c = sockets.visitor(chat_inbox)
    hello(c)
    say(c, "領収書をいただけますか")
    c.get_received(NS)
    msg = post_reply(only_ticket(), agent, "こちらです。", files=[
        Attachment(filename="領収書.pdf", content_type="", data=PDF),
        Attachment(filename="画面.png", content_type="", data=PNG)])
    (event,) = received(c, "message.created")
    assert event["body"] == "こちらです。"
    pdf, png = event["attachments"]
    assert {k: pdf[k] for k in ("index", "filename", "content_type", "size")} == {
        "index": 0, "filename": "領収書.pdf", "content_type": "application/pdf", "size": len(PDF)}
    assert png["index"] == 1 and png["content_type"] == "image/png"
    # A path on the desk, where the frame lives; the visitor's browser opens it with no pass.
    assert pdf["url"].startswith("/files/") and unquote(pdf["url"].rsplit("/", 1)[1]) == "領収書.pdf"
    resp = get(client, pdf["url"])
    assert resp.status_code == 200 and resp.data == PDF and resp.mimetype == "application/pdf"
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert get(client, png["url"]).data == PNG
    db.session.refresh(msg)
    assert msg.delivery is Delivery.sent


def test_files_are_in_the_history_after_a_reload(app, client, sockets, chat_inbox, agent):
    sockets.agent(agent)
    first = sockets.visitor(chat_inbox)
    token = hello(first)["token"]
    say(first, "請求書をください")
    post_reply(only_ticket(), agent, "", files=[Attachment(filename="請求書.pdf", content_type="", data=PDF)])
    first.disconnect(namespace=NS)
    again = sockets.visitor(chat_inbox, token=token)
    r = hello(again)
    out = r["history"][-1]
    assert out["direction"] == "out" and out["body"] == ""
    assert out["attachments"] == [{"index": 0, "filename": "請求書.pdf", "content_type": "application/pdf",
                                   "size": len(PDF)}]
    resp = get(client, f"/widget/api/attachments/{out['id']}/0", headers={"X-Widget-Pass": r["pass"]})
    assert resp.status_code == 200 and resp.data == PDF


def test_a_file_on_a_private_note_never_reaches_the_visitor(app, client, sockets, chat_inbox, agent):
    sockets.agent(agent)
    c = sockets.visitor(chat_inbox)
    hello(c)
    say(c, "質問です")
    c.get_received(NS)
    note = post_reply(only_ticket(), agent, "社内用の見積", private=True,
                      files=[Attachment(filename="原価表.pdf", content_type="", data=PDF)])
    assert note.attachments[0]["stored"]
    assert received(c, "message.created") == []
    # Even a correctly signed link to a note's file opens nothing.
    assert get(client, f"/files/{storage.link_token(note.id, 0)}").status_code == 404
