"""Background jobs. Each takes ids (never ORM objects) and is safe to run twice."""

from __future__ import annotations

from .jobs import job


@job(lane="sentiment", coalesce=True)  # one run labels everything pending
def label_sentiment() -> int:
    from .services.sentiment import label_pending

    return label_pending()


@job
def send_message(message_id: int) -> None:
    from .services.replies import deliver

    deliver(message_id)


@job
def auto_assign(ticket_id: int) -> None:
    """A new ticket of an inbox with automatic assignment: to its least busy online agent."""
    from .services.assign import assign_new

    assign_new(ticket_id)


@job(coalesce=True)  # one run gives out the whole queue
def assign_waiting(inbox_id: int) -> None:
    """Room for a ticket waiting in an inbox with a cap on each agent's tickets: give them out."""
    from .services.assign import assign_waiting as give_out

    give_out(inbox_id)


@job
def away_message(message_id: int) -> None:
    """Outside business hours: the inbox's away message to the customer who just wrote."""
    from .services.away import send_if_closed

    send_if_closed(message_id)


@job
def chat_email_copy(message_id: int) -> None:
    """A widget reply to a visitor who had left, copied to the configured email inbox."""
    from .realtime.widget_ns import send_email_copy

    send_email_copy(message_id)


@job
def enrich_message(message_id: int) -> None:
    """After a LINE (or other) message is stored: fetch the sender's profile and the media
    bytes the webhook only referenced, so the webhook itself stays fast."""
    from channels import get_adapter

    from .extensions import db
    from .models import Contact, Message
    from .realtime import events
    from .realtime.serializers import message_json
    from .services import storage
    from .services.tickets import publish_renamed

    msg = db.session.get(Message, message_id)
    if msg is None or msg.contact_id is None:
        return
    adapter = get_adapter(msg.ticket.inbox)
    if not hasattr(adapter, "enrich"):
        return
    contact = db.session.get(Contact, msg.contact_id)  # the speaker: in a LINE group not the ticket's contact
    ident = next((i for i in contact.identities if i.kind == adapter.kind), None)
    known = (ident.display_name if ident else "") or ""
    found = adapter.enrich(dict(msg.meta or {}), list(msg.attachments or []), known)
    profile = found.get("profile")
    if profile and profile.get("name"):
        shown = contact.display_name
        if ident is not None:
            ident.display_name = profile["name"][:200]
        if not contact.name:
            contact.name = profile["name"][:200]
        if profile.get("avatar_url") and not contact.avatar_url:
            contact.avatar_url = profile["avatar_url"][:500]
        if contact.display_name != shown:  # "#12" until now, on every open page
            publish_renamed(contact)
    if found.get("attachments"):
        atts = list(msg.attachments or [])
        for index, att in found["attachments"].items():
            atts[index] = storage.save_attachment(att)
        msg.attachments = atts
        events.publish(events.MESSAGE_UPDATED, message_json(msg), inbox_id=msg.inbox_id, ticket_id=msg.ticket_id)
    db.session.commit()


@job
def show_typing(ticket_id: int) -> None:
    """The customer-side typing sign (LINE loading animation) while an agent writes."""
    from channels import get_adapter

    from .extensions import db
    from .models import Ticket

    ticket = db.session.get(Ticket, ticket_id)
    if ticket is not None and ticket.reply_to:
        adapter = get_adapter(ticket.inbox)
        if hasattr(adapter, "show_typing"):
            adapter.show_typing(ticket.reply_to)


@job
def poll_social(inbox_id: int | None = None) -> int:
    """Fetch new posts for social inboxes that cannot receive webhooks (settings.poll).

    The cursor (settings.since_id) moves only after every fetched item is stored, and ingest
    dedupes, so a crash in between re-reads at most one batch and never stores twice."""
    import logging

    from sqlalchemy import select

    from channels import ChannelError, TransientSendError, get_adapter

    from .extensions import db
    from .models import Inbox
    from .services.ingest import ingest

    log = logging.getLogger(__name__)
    query = select(Inbox).where(Inbox.kind == "social", Inbox.active.is_(True))
    if inbox_id is not None:
        query = query.where(Inbox.id == inbox_id)
    created = 0
    for inbox in db.session.scalars(query).all():
        if not (inbox.settings or {}).get("poll"):
            continue
        try:
            items, cursor = get_adapter(inbox).poll((inbox.settings or {}).get("since_id"))
        except (ChannelError, TransientSendError) as exc:
            log.warning("polling social inbox %s failed: %s", inbox.id, exc)
            continue
        for item in items:
            created += ingest(inbox, item).created
        if cursor and cursor != inbox.settings.get("since_id"):
            inbox.settings = {**inbox.settings, "since_id": cursor}
            db.session.commit()
    return created


@job(retry=False)  # every sweep queues one
def poll_email() -> float:
    """Poll due IMAP mailboxes. The embedded runner's job re-enqueues itself (no cron needed);
    with RQ workers every sweep queues one, so polling lives as long as the sweep does."""
    from flask import current_app

    from .services.mailbox import poll_due, run_scheduled_poll

    if current_app.config["JOBS"] == "rq":
        return poll_due()
    return run_scheduled_poll()


def schedule_sweep(after: int | None = None) -> None:
    """Queue the next sweep, at the next multiple of SWEEP_SECONDS (Unix time) from now, or
    from ``after``, the time of the run that asks (a worker's clock may lag the scheduler's).

    Each run has its own job id, named after its time: whoever schedules it (every worker as it
    starts, every sweep as it begins) names the same job, and RQ keeps one (``unique``), so there
    is one chain however many workers there are. A run killed with its worker (kill -9) has
    already scheduled the next one, and RQ's record of the killed run (failed, abandoned) is
    that run's alone. With one fixed id, the re-scheduled job shared its hash with the run
    before it, whose 500 s result TTL then expired it while no scheduler was alive, and RQ's
    clean-up of a killed run marked whatever run held the id failed."""
    import time

    from flask import current_app

    from .jobs import jobs

    every = current_app.config["SWEEP_SECONDS"]
    now = time.time()
    due = (max(int(now), after or 0) // every + 1) * every
    jobs.enqueue("sweep", due, delay=due - now, job_id=f"sweep-{due}")


def requeue_pending_sends(created_before=None) -> None:
    """Replies still pending whose job was lost (Redis down when it was queued, a worker killed,
    a stopped embedded server) get a new one; deliver() skips any sent or being sent meanwhile.
    Not one whose retry is scheduled (backing off after a timeout, or told by the provider to
    wait: a 429's Retry-After): sent now, it would use up its attempts early and end failed for
    good while the provider still asks us to wait."""
    from sqlalchemy import select

    from .extensions import db
    from .jobs import jobs
    from .models import Delivery, Direction, Message

    stmt = select(Message.id).where(Message.direction == Direction.outbound, Message.delivery == Delivery.pending)
    if created_before is not None:
        stmt = stmt.where(Message.created_at < created_before)
    ids = db.session.scalars(stmt).all()
    retrying = jobs.scheduled_args("send_message")
    for message_id in ids:
        if message_id not in retrying:
            jobs.enqueue("send_message", message_id)


@job(retry=False)  # the next run, SWEEP_SECONDS later, does its work; a retry would run beside it
def sweep(slot: int | None = None) -> None:
    """Production safety net, every SWEEP_SECONDS (30 s) on the RQ scheduler: work recorded in the
    database whose job was lost (Redis down when it was queued, a worker killed) is
    queued again, and the email inboxes are polled. Handlers are idempotent, so queueing
    twice is harmless."""
    from datetime import timedelta

    from flask import current_app
    from sqlalchemy import exists, select

    from .extensions import db
    from .jobs import jobs
    from .models._types import utcnow
    from .services.sentiment import PENDING

    schedule_sweep(after=slot)  # first: this run may die with its worker
    jobs.enqueue("poll_email")
    requeue_pending_sends(created_before=utcnow() - timedelta(seconds=current_app.config["SWEEP_SECONDS"]))
    if db.session.scalar(select(exists().where(PENDING))):
        jobs.enqueue("label_sentiment")
