"""Merging a duplicate ticket of the same customer into the one the agent keeps."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from helpdesk.extensions import db
from helpdesk.models import AuditLog, Direction, Event, Message, Status, Ticket
from helpdesk.services.ingest import ingest
from helpdesk.services.replies import ReplyError, post_reply
from helpdesk.services.tickets import TicketError, merge_tickets, update_ticket
from tests import factories as f
from tests.conftest import csrf_token, login


@pytest.fixture
def pair(app):
    """Two tickets of one customer in one inbox: the customer wrote again as a new thread."""
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="佐藤")
    keep = ingest(inbox, f.inbound(user_id="c", text="注文番号 A-1 が届きません")).message.ticket
    post_reply(keep, agent, "確認いたします")
    dup = ingest(inbox, f.inbound(user_id="c", text="先ほどの件です。まだですか", new_thread=True)).message.ticket
    update_ticket(dup, agent, tags=["至急"])
    assert dup.id != keep.id
    return inbox, agent, db.session.get(Ticket, keep.id), db.session.get(Ticket, dup.id)


def _bodies(ticket_id: int) -> list[str]:
    return db.session.scalars(select(Message.body).where(Message.ticket_id == ticket_id).order_by(Message.id)).all()


def test_messages_tags_and_history_move_and_the_duplicate_is_closed_with_a_note(app, pair):
    inbox, agent, keep, dup = pair
    keep.status = Status.resolved  # answered, while the duplicate still waits
    db.session.commit()
    merge_tickets(keep, dup, agent)
    db.session.expire_all()
    keep, dup = db.session.get(Ticket, keep.id), db.session.get(Ticket, dup.id)
    assert _bodies(keep.id) == ["注文番号 A-1 が届きません", "確認いたします", "先ほどの件です。まだですか"]
    assert [t.name for t in keep.tags] == ["至急"]
    assert keep.status is Status.open  # the duplicate was still waiting for an answer
    assert dup.status is Status.closed
    (note,) = db.session.scalars(select(Message).where(Message.ticket_id == dup.id)).all()
    assert note.direction is Direction.note and f"#{keep.id}" in note.body
    assert keep.sentiment_label is not None  # aggregates recomputed over the merged thread
    log = db.session.scalar(select(AuditLog).where(AuditLog.action == "ticket.merge"))
    assert (log.object_id, log.changes) == (keep.id, {"merged": dup.id, "messages": 1})
    merged = db.session.scalars(select(Event).where(Event.name == "ticket.updated").order_by(Event.id.desc())
                                .limit(2)).all()
    assert {e.ticket_id for e in merged} == {keep.id, dup.id}
    assert all(e.payload["changes"] == ["merged"] and e.payload["merged_into"] == keep.id for e in merged)


def test_a_reply_to_a_moved_message_threads_into_the_kept_ticket(app, pair):
    inbox, agent, keep, dup = pair
    dup_msg = db.session.scalar(select(Message).where(Message.ticket_id == dup.id))
    merge_tickets(keep, dup, agent)
    again = ingest(inbox, f.inbound(user_id="c", text="追伸です", thread_hints=(dup_msg.external_id,),
                                    new_thread=True))
    assert again.message.ticket_id == keep.id


def test_refusals(app, pair):
    inbox, agent, keep, dup = pair
    other_customer = ingest(inbox, f.inbound(user_id="someone-else")).message.ticket
    other_inbox = f.inbox(kind="test")
    same_customer_elsewhere = ingest(other_inbox, f.inbound(user_id="c")).message.ticket
    with app.test_request_context("/?lang=en"):
        for target, source, why in [(keep, keep, "itself"), (keep, other_customer, "same customer"),
                                    (keep, same_customer_elsewhere, "same inbox")]:
            with pytest.raises(TicketError, match=why):
                merge_tickets(target, source, agent)
        merge_tickets(keep, dup, agent)
        with pytest.raises(TicketError, match="nothing left"):
            merge_tickets(keep, db.session.get(Ticket, dup.id), agent)
    db.session.expire_all()
    assert len(_bodies(keep.id)) == 3 and len(_bodies(other_customer.id)) == 1


def test_merge_from_the_ticket_page(app, client, pair):
    inbox, agent, keep, dup = pair
    login(client, agent.email)
    html = client.get(f"/agent/tickets/{dup.id}").get_data(as_text=True)
    assert 'id="merge-ticket"' in html and f'<option value="{keep.id}">#{keep.id}' in html
    token = csrf_token(client, f"/agent/tickets/{dup.id}")
    resp = client.post(f"/agent/tickets/{dup.id}/merge", data={"into": str(keep.id), "csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/agent/tickets/{keep.id}")
    page = client.get(f"/agent/tickets/{keep.id}").get_data(as_text=True)
    assert f"チケット #{dup.id} をこのチケットに統合しました" in page and "先ほどの件です" in page
    # An agent who cannot see the inbox can neither merge from nor into it.
    outsider = f.agent(inboxes=[f.inbox(kind="test")])
    client = app.test_client()
    login(client, outsider.email)
    token = csrf_token(client, "/agent/")
    assert client.post(f"/agent/tickets/{keep.id}/merge",
                       data={"into": str(dup.id), "csrf_token": token}).status_code == 403


def test_the_merged_ticket_points_to_the_kept_one_and_takes_no_reply(app, client, pair):
    """Its conversation, and the customer's next message, are on the kept ticket: an answer
    sent from the merged one went to the customer as the only message of a closed ticket."""
    inbox, agent, keep, dup = pair
    merge_tickets(keep, dup, agent)
    dup = db.session.get(Ticket, dup.id, populate_existing=True)
    assert dup.merged_into_id == keep.id
    with pytest.raises(ReplyError) as refused:
        post_reply(dup, agent, "こちらでご案内します")
    with app.test_request_context():  # the message is translated where it is shown
        assert str(refused.value) == f"このチケットは #{keep.id} に統合されました。返信はそちらでどうぞ。"
    note = post_reply(dup, agent, "統合済み（社内メモ）", private=True)  # a note stays possible
    assert note.direction is Direction.note
    login(client, agent.email)
    page = client.get(f"/agent/tickets/{dup.id}").get_data(as_text=True)
    assert f"このチケットは #{keep.id} に統合されました。" in page
    assert f'href="/agent/tickets/{keep.id}"' in page
    token = csrf_token(client, f"/agent/tickets/{dup.id}")
    resp = client.post(f"/agent/tickets/{dup.id}/reply", data={"body": "返信", "csrf_token": token},
                       headers={"Accept": "application/json"})
    assert resp.status_code == 400 and f"#{keep.id}" in resp.json["error"]
    assert client.get(f"/agent/tickets/{keep.id}").get_data(as_text=True).count("merged-into") == 0
    assert _bodies(dup.id)[-1] == "統合済み（社内メモ）"


def test_tickets_merged_before_the_column_get_their_keeper_from_the_audit_log(app, pair):
    import importlib

    inbox, agent, keep, dup = pair
    merge_tickets(keep, dup, agent)
    db.session.execute(update(Ticket).values(merged_into_id=None))  # as merges left them before
    db.session.commit()
    migration = importlib.import_module(
        "helpdesk.migrations.versions.841ef24e5c35_reply_send_claims_and_merged_tickets")
    with db.engine.begin() as conn:
        migration.backfill_merged_into(conn)
    rows = db.session.execute(select(Ticket.id, Ticket.merged_into_id).order_by(Ticket.id)).all()
    assert rows == [(keep.id, None), (dup.id, keep.id)]
