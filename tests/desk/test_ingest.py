"""The one inbound path: dedupe, contacts, ticket threading, events after commit."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import Contact, ContactIdentity, Event, Message, Status, Ticket
from helpdesk.services.ingest import ingest
from helpdesk.services.tickets import update_ticket
from tests import factories as f
from tests.sql import selects_run

pytestmark = pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_new_message_opens_ticket_and_contact(app):
    inbox = f.inbox()
    result = ingest(inbox, f.inbound(external_id="m1", user_id="U1", display_name="佐藤", text="返金してください"))
    assert result.created and result.ticket_created
    ticket = result.message.ticket
    assert ticket.status is Status.new
    assert ticket.contact.display_name == "佐藤"
    assert ticket.subject == "返金してください"
    assert ticket.reply_to == "U1"
    ident = db.session.scalar(select(ContactIdentity))
    assert (ident.kind, ident.external_id) == ("test", "U1")


def test_same_external_id_is_stored_once(app):
    inbox = f.inbox()
    first = ingest(inbox, f.inbound(external_id="dup"))
    again = ingest(inbox, f.inbound(external_id="dup"))
    assert not again.created
    assert again.message.id == first.message.id
    assert count(Message) == 1
    # the same external id on another inbox is a different message
    assert ingest(f.inbox(), f.inbound(external_id="dup")).created


def test_second_message_joins_open_ticket(app):
    inbox = f.inbox()
    a = ingest(inbox, f.inbound(user_id="U1", text="一通目"))
    b = ingest(inbox, f.inbound(user_id="U1", text="二通目"))
    assert a.message.ticket_id == b.message.ticket_id
    assert not b.ticket_created
    assert count(Ticket) == 1 and count(Contact) == 1


def test_thread_hint_finds_ticket_even_for_other_contact_flow(app):
    inbox = f.inbox()
    a = ingest(inbox, f.inbound(external_id="<root@example.jp>", user_id="a@example.jp"))
    b = ingest(inbox, f.inbound(external_id="<r2@example.jp>", user_id="a@example.jp", new_thread=True,
                                thread_hints=("<unknown@x>", "<root@example.jp>")))
    assert b.message.ticket_id == a.message.ticket_id


def test_new_thread_flag_opens_second_ticket(app):
    inbox = f.inbox()
    a = ingest(inbox, f.inbound(user_id="U1"))
    b = ingest(inbox, f.inbound(user_id="U1", new_thread=True))
    assert a.message.ticket_id != b.message.ticket_id


def test_resolved_ticket_reopens_closed_ticket_does_not(app):
    inbox = f.inbox()
    agent = f.agent(inboxes=[inbox])
    first = ingest(inbox, f.inbound(user_id="U1")).message.ticket
    update_ticket(first, agent, status="resolved")
    ingest(inbox, f.inbound(user_id="U1", thread_hints=(first.thread_key or "x",)))
    # no matching hint: the resolved ticket is not "open", so a new ticket starts
    assert count(Ticket) == 2
    second = db.session.scalars(select(Ticket).order_by(Ticket.id.desc())).first()
    update_ticket(second, agent, status="closed")
    third = ingest(inbox, f.inbound(user_id="U1"))
    assert third.ticket_created


def test_resolved_ticket_reopens_on_reply_in_thread(app):
    inbox = f.inbox()
    agent = f.agent(inboxes=[inbox])
    first = ingest(inbox, f.inbound(external_id="<a@x>", user_id="U1")).message.ticket
    update_ticket(first, agent, status="resolved")
    again = ingest(inbox, f.inbound(user_id="U1", thread_hints=("<a@x>",)))
    assert again.message.ticket_id == first.id
    assert again.message.ticket.status is Status.open
    assert again.message.ticket.resolved_at is None


def test_events_recorded_in_order(app):
    inbox = f.inbox()
    ingest(inbox, f.inbound())
    names = db.session.scalars(select(Event.name).order_by(Event.id)).all()
    assert names[:2] == ["ticket.created", "message.created"]


def test_sent_at_kept_in_utc(app):
    inbox = f.inbox()
    jst = timezone(timedelta(hours=9))
    msg = ingest(inbox, f.inbound(sent_at=datetime(2026, 4, 1, 9, 0, tzinfo=jst))).message
    db.session.expire_all()
    assert db.session.get(Message, msg.id).sent_at == datetime(2026, 4, 1, 0, 0, tzinfo=timezone.utc)


def test_search_text_tokenised(app):
    msg = ingest(f.inbox(), f.inbound(text="返金してください")).message
    assert " 返金 " in msg.search_text


@pytest.mark.config(SENTIMENT_ENABLED=False)  # its events after the message's are the labelling's
def test_follow_up_events_carry_every_tag_and_the_identity_name(app):
    """The ticket and its contact are read with their tags and identities up front (eager
    loads): the event of a later message must still show all of the ticket's tags and, for
    a contact without a name of its own, the name of one of its identities."""
    inbox = f.inbox()
    agent = f.agent(inboxes=[inbox])
    first = ingest(inbox, f.inbound(user_id="U-tags", display_name="")).message
    contact = db.session.get(Contact, first.contact_id)
    contact.identities.append(ContactIdentity(kind="line", external_id="U-line-9", display_name="ゆか"))
    update_ticket(first.ticket, agent, tags=["返金", "配送", "至急"])
    db.session.commit()
    db.session.expire_all()
    before = db.session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1))
    second = ingest(inbox, f.inbound(user_id="U-tags", display_name="")).message
    # One event for the message, carrying the ticket it landed on (no ticket.updated after it).
    (ev,) = db.session.scalars(select(Event).where(Event.id > before)).all()
    assert ev.name == "message.created" and ev.payload["id"] == second.id
    assert ev.payload["ticket"]["id"] == first.ticket_id
    assert ev.payload["ticket"]["last_message_at"] == second.sent_at.isoformat()
    assert sorted(ev.payload["ticket"]["tags"]) == ["至急", "返金", "配送"]
    assert ev.payload["ticket"]["contact"]["name"] == "ゆか"


@pytest.mark.config(SENTIMENT_ENABLED=False)
def test_a_new_customers_first_message_reads_only_who_they_are_and_writes_in_one_flush(app):
    """A customer met just now has no tickets and was never sent a survey: their first message
    reads their identity (none), and the contact, the identity and the ticket are written in
    one flush. Its event shows the new ticket's (no) tags without loading them."""
    from sqlalchemy import event as sa_event
    from sqlalchemy.orm import Session

    inbox = f.inbox()
    db.session.refresh(inbox)  # loaded, as the API's token lookup hands it over
    flushes = []

    def on_flush(session, context, instances):
        flushes.append(sorted(type(o).__name__ for o in session.new))

    sa_event.listen(Session, "before_flush", on_flush)
    try:
        with selects_run() as reads:
            result = ingest(inbox, f.inbound(user_id="U-first", display_name="", text="はじめまして"))
    finally:
        sa_event.remove(Session, "before_flush", on_flush)
    assert [statement.split("FROM", 1)[1].split()[0] for statement, _, _ in reads] == ["contact_identities"]
    assert flushes == [["Contact", "ContactIdentity", "Ticket"]]
    created = db.session.scalars(select(Event).where(Event.name == "message.created")).one()
    contact_id = result.message.contact_id
    assert result.ticket_created
    assert created.payload["ticket"]["contact"] == {"id": contact_id, "name": f"#{contact_id}"}
    assert created.payload["ticket"]["tags"] == []


@pytest.mark.config(SENTIMENT_ENABLED=False)
@pytest.mark.parametrize("threaded", [False, True], ids=["open-ticket", "thread-hint"])
def test_a_follow_up_to_an_assigned_ticket_reads_its_agent_with_the_ticket(app, threaded):
    """Most follow-ups land on an assigned ticket, and their events show its agent: loaded
    with the ticket, not by a read of its own for every message."""
    inbox = f.inbox()
    agent = f.agent(inboxes=[inbox], name="佐藤")
    first = ingest(inbox, f.inbound(user_id="U-assigned")).message
    update_ticket(first.ticket, agent, assignee_id=agent.id)
    db.session.commit()
    db.session.expire_all()
    hints = (first.external_id,) if threaded else ()
    with selects_run() as reads:
        result = ingest(inbox, f.inbound(user_id="U-assigned", thread_hints=hints))
    assert result.message.ticket_id == first.ticket_id
    assert "agents" not in [statement.split("FROM", 1)[1].split()[0] for statement, _, _ in reads]
    assert result.message.ticket.assignee.name == "佐藤"
    created = db.session.scalars(select(Event).where(Event.name == "message.created")
                                 .order_by(Event.id.desc()).limit(1)).one()
    assert created.payload["ticket"]["assignee"] == {"id": agent.id, "name": "佐藤"}


@pytest.mark.config(SENTIMENT_ENABLED=False)
@pytest.mark.parametrize("status", [Status.resolved, Status.pending])
def test_an_automatic_reply_does_not_reopen_its_ticket(app, status):
    """An out-of-office answer to our reply (or to the survey sent on resolving) is stored on
    its ticket without reopening it: otherwise each resolve would bring the ticket back."""
    inbox = f.inbox()
    first = ingest(inbox, f.inbound(user_id="U-away")).message
    ticket = first.ticket
    ticket.status = status
    db.session.commit()
    auto = ingest(inbox, f.inbound(user_id="U-away", text="ただいま休暇中です。", thread_hints=(first.external_id,),
                                   meta={"auto_submitted": "auto-replied"})).message
    db.session.refresh(ticket)
    assert auto.ticket_id == ticket.id and ticket.status is status
    ingest(inbox, f.inbound(user_id="U-away", text="戻りました。まだ届いていません", thread_hints=(first.external_id,)))
    db.session.refresh(ticket)
    assert ticket.status is Status.open  # the customer writing again does


def test_a_follow_up_reads_by_index_not_by_scanning_a_table(app, db_url):
    """Every message runs these reads; one that scans a table grows with the desk's history.
    (The tags were once joined in a way SQLite answered by scanning all of ticket_tags.)"""
    if not db_url.startswith("sqlite"):
        pytest.skip("the plans checked are SQLite's (PostgreSQL scans tables this small by choice)")
    inbox = f.inbox()
    agent = f.agent(inboxes=[inbox])
    first = ingest(inbox, f.inbound(user_id="U-plan")).message
    update_ticket(first.ticket, agent, tags=["返金", "配送"])
    for i in range(3):  # other customers' tagged tickets, so a scan has rows to find
        other = ingest(inbox, f.inbound(user_id=f"U-other-{i}")).message
        update_ticket(other.ticket, agent, tags=["配送"])
    db.session.commit()
    db.session.expire_all()
    with selects_run() as reads:
        ingest(inbox, f.inbound(user_id="U-plan"))
    assert len(reads) >= 2  # the contact and the ticket, at least
    conn = db.session.connection()
    for statement, parameters, _ in reads:
        plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
        # a scan of a table (not of a subquery's own rows, which a window's plan shows)
        assert not [step for step in plan if step.startswith("SCAN ") and step.split()[1] in db.metadata.tables], \
            (statement, plan)


def test_objects_written_with_plain_statements_match_their_rows(app):
    """Ingest writes the message and the ticket's changes with plain INSERT/UPDATE and keeps
    the ORM objects in step by hand: they must hold exactly what the rows hold, with nothing
    left to load or to flush (a column added to the models and forgotten here fails this)."""
    from sqlalchemy import inspect

    from helpdesk.services.ingest import _store

    inbox = f.inbox()
    agent = f.agent(inboxes=[inbox])
    first = ingest(inbox, f.inbound(external_id="<a@x>", user_id="U1")).message.ticket
    update_ticket(first, agent, status="resolved")
    db.session.commit()
    before = first.updated_at
    result = _store(inbox, f.inbound(user_id="U1", thread_hints=("<a@x>",), meta={"reply_to": "U1-new"}))
    msg, ticket = result.message, result.message.ticket
    assert ticket is first and ticket.status is Status.open and ticket.resolved_at is None
    assert ticket.reply_to == "U1-new" and ticket.updated_at == ticket.last_message_at > before
    for obj in (msg, ticket):
        state, table = inspect(obj), type(obj).__table__
        assert not state.modified and not state.unloaded & set(table.columns.keys())
        row = db.session.execute(select(table).where(table.c.id == obj.id)).one()._mapping
        assert {c.key: getattr(obj, c.key) for c in table.columns} == dict(row)
    db.session.commit()
    assert ticket.status is Status.open


def test_late_redelivery_leaves_the_resolved_ticket_alone(app):
    """The duplicate is found by the unique constraint after the ticket was already reopened
    in the same transaction: the rollback must undo that, and emit nothing."""
    inbox = f.inbox()
    agent = f.agent(inboxes=[inbox])
    ticket = ingest(inbox, f.inbound(external_id="late-1", user_id="U1")).message.ticket
    update_ticket(ticket, agent, status="resolved")
    db.session.commit()
    events_before = count(Event)
    again = ingest(inbox, f.inbound(external_id="late-1", user_id="U1"))
    assert not again.created and again.message.ticket_id == ticket.id
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).status is Status.resolved
    assert db.session.scalar(select(func.count()).where(Message.external_id == "late-1")) == 1
    assert count(Event) == events_before
