"""The agent desk: inbox, ticket view, replies, notes and ticket changes."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Email, Length, Optional

from channels import kinds
from channels.base import Attachment
from channels.email import render_signature

from ..extensions import db
from ..models import Agent, CannedReply, Contact, Inbox, Message, Priority, Status, Tag, Team, Ticket
from ..models._types import ROW_ID_MAX
from ..realtime.events import last_event_id
from ..realtime.serializers import message_json
from ..services import storage
from ..services.access import assignable_agents, visible_inbox_ids
from ..services.contacts import (can_see_contact, contact_query, likely_duplicates, seen_only_in_part,
                                 ticket_stats)
from ..services.replies import ReplyError, post_reply, public_reply, reply_file_limits
from ..services.search import InboxFilter, inbox_query, paginate
from ..services.tickets import (TicketError, bulk_update, merge_contacts, merge_tickets, tag_names, update_contact,
                                update_ticket)
from . import form_error_text
from .auth import safe_next

bp = Blueprint("agent", __name__, url_prefix="/agent")
log = logging.getLogger(__name__)


class ReplyForm(FlaskForm):
    # May be empty when files are attached (post_reply refuses a reply with neither).
    body = TextAreaField(_l("Reply"), validators=[Optional(), Length(max=20_000)])
    private = BooleanField(_l("Private note"))
    # A reply to a public post goes by direct message instead (services.replies.public_reply).
    dm = BooleanField(_l("Send as a direct message instead"))
    # "Send and set pending / resolved": the usual last step of an answer, in the same click.
    then_status = SelectField(_l("Then"), choices=[SelectChoice(""), SelectChoice(Status.pending.value),
                                                    SelectChoice(Status.resolved.value)], validators=[Optional()])

    @property
    def file_limits(self) -> dict[str, int]:
        """For the reply box's file picker, which checks before sending."""
        return reply_file_limits()


class TicketForm(FlaskForm):
    status = SelectField(_l("Status"), choices=[SelectChoice(s.value) for s in Status], validators=[Optional()])
    priority = SelectField(_l("Priority"), choices=[SelectChoice(p.value) for p in Priority], validators=[Optional()])
    assignee = SelectField(_l("Assignee"), choices=[], validate_choice=False, validators=[Optional()])
    team = SelectField(_l("Team"), choices=[], validate_choice=False, validators=[Optional()])
    tags = StringField(_l("Tags"), validators=[Optional(), Length(max=500)])


class BulkForm(FlaskForm):
    """One change for the tickets ticked in the inbox; an empty field means unchanged."""

    status = SelectField(_l("Status"), choices=[SelectChoice("")] + [SelectChoice(s.value) for s in Status],
                         validators=[Optional()])
    priority = SelectField(_l("Priority"), choices=[SelectChoice("")] + [SelectChoice(p.value) for p in Priority],
                           validators=[Optional()])
    assignee = StringField(_l("Assignee"), validators=[Optional(), Length(max=12)])
    team = StringField(_l("Team"), validators=[Optional(), Length(max=12)])
    add_tag = StringField(_l("Add tag"), validators=[Optional(), Length(max=60)])


MAX_BULK = 200


class TicketMergeForm(FlaskForm):
    into = IntegerField(_l("Merge into ticket"), validators=[DataRequired()])


class ContactForm(FlaskForm):
    name = StringField(_l("Name"), validators=[Optional(), Length(max=200)])
    email = StringField(_l("Email address"), validators=[Optional(), Email(), Length(max=254)])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40)])
    note = TextAreaField(_l("Note (agents only)"), validators=[Optional(), Length(max=2000)])


class MergeForm(FlaskForm):
    other_id = StringField(_l("Contact id to merge"), validators=[DataRequired(), Length(max=12)])


@bp.app_template_filter("fromiso")
def _fromiso(value):
    """An ISO time kept in a message's meta (an edit's) as a datetime for ``datetimeformat``; None
    when it is missing or unreadable."""
    from ..services.ingest import parse_datetime

    try:
        return parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        return None


@bp.before_request
@login_required
def _require_login():
    pass


def _ticket_or_404(ticket_id: int) -> Ticket:
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None:
        abort(404)
    if ticket.inbox_id not in visible_inbox_ids(current_user):
        log.warning("agent %s denied ticket %s", current_user.id, ticket_id)
        abort(403)
    return ticket


@bp.get("/")
def inbox():
    # Read before the page's data: the socket resyncs from here, so nothing committed
    # while the page renders is missed.
    since = last_event_id()
    visible = visible_inbox_ids(current_user)
    f = InboxFilter.from_args(request.args)
    page = paginate(inbox_query(current_user, visible, f), f.page, current_app.config["PAGE_SIZE"])
    inboxes = db.session.scalars(select(Inbox).where(Inbox.id.in_(visible or {-1})).order_by(Inbox.name)).all()
    return render_template(
        "agent/inbox.html",
        page=page,
        f=f,
        inboxes=inboxes,
        channels=sorted({i.kind for i in inboxes} | set(kinds())),
        teams=db.session.scalars(select(Team).order_by(Team.name)).all(),
        tags=db.session.scalars(select(Tag).order_by(Tag.name)).all(),
        statuses=[s.value for s in Status],
        priorities=[p.value for p in Priority],
        visible_inbox_ids=sorted(visible),
        page_event_id=since,
        bulk_form=BulkForm(),
        bulk_agents=db.session.scalars(select(Agent).where(Agent.active.is_(True)).order_by(Agent.name)).all(),
    )


@bp.post("/tickets/bulk")
def bulk():
    """Apply one change to the tickets ticked in the inbox list."""
    form = BulkForm()
    back = safe_next(request.form.get("next"))
    if not form.validate_on_submit():
        abort(400)
    ids = sorted({i for i in request.form.getlist("ticket_ids", type=int) if 0 < i <= ROW_ID_MAX})
    if not ids:
        flash(_("Select at least one ticket."), "error")
        return redirect(back)
    if len(ids) > MAX_BULK:
        flash(_("At most %(n)s tickets at once.", n=MAX_BULK), "error")
        return redirect(back)
    assignee = (form.assignee.data or "").strip()
    team = (form.team.data or "").strip()
    if ((assignee not in ("", "none", "me") and not assignee.isdigit())
            or (team not in ("", "none") and not team.isdigit())):
        abort(400)
    visible = visible_inbox_ids(current_user)
    tickets = db.session.scalars(
        select(Ticket).where(Ticket.id.in_(ids), Ticket.inbox_id.in_(visible or {-1})).order_by(Ticket.id)
    ).all()
    if len(tickets) < len(ids):
        log.warning("agent %s bulk-edited tickets they cannot see: %s", current_user.id,
                    sorted(set(ids) - {t.id for t in tickets}))
    changed, refused = bulk_update(
        tickets, current_user,
        status=form.status.data or None,
        priority=form.priority.data or None,
        assignee_id=current_user.id if assignee == "me" else (assignee or ""),
        team_id=None if team == "none" else (int(team) if team else ""),
        add_tags=_tag_list(form.add_tag.data or "") or None,  # split as the ticket page's tags field is
    )
    flash(ngettext("%(num)d ticket updated.", "%(num)d tickets updated.", changed), "info")
    for ticket_id, reason in list(refused.items())[:5]:
        flash(_("#%(id)s not changed: %(reason)s", id=ticket_id, reason=reason), "error")
    hidden = len(ids) - len(tickets)
    if hidden:
        flash(ngettext("%(num)d ticket was not found or is not yours to see.",
                       "%(num)d tickets were not found or are not yours to see.", hidden), "error")
    return redirect(back)


@bp.get("/tickets/<int:ticket_id>")
def ticket(ticket_id: int):
    since = last_event_id()
    t = _ticket_or_404(ticket_id)
    contact = t.contact
    visible = visible_inbox_ids(current_user)
    # The whole cross-channel history of this customer, in time order.
    history = db.session.scalars(
        select(Message)
        .join(Ticket, Message.ticket_id == Ticket.id)
        .where(Ticket.contact_id == contact.id, Ticket.inbox_id.in_(visible))
        .order_by(Message.sent_at, Message.id)
    ).all()
    past = db.session.scalars(
        select(Ticket).where(Ticket.contact_id == contact.id, Ticket.id != t.id, Ticket.inbox_id.in_(visible))
        .order_by(Ticket.created_at.desc())
    ).all()
    form = TicketForm(status=t.status.value, priority=t.priority.value, assignee=str(t.assignee_id or ""),
                      team=str(t.team_id or ""), tags=", ".join(tag.name for tag in t.tags))
    assignable = assignable_agents(t.inbox)
    form.assignee.choices = [SelectChoice("", _("Unassigned"))] + [
        SelectChoice(str(a.id), a.name) for a in assignable]
    if t.assignee is not None and t.assignee not in assignable:
        # Shown as it is (an assignee who lost access to the inbox), so saving another field
        # does not quietly unassign the ticket.
        form.assignee.choices.insert(1, SelectChoice(str(t.assignee.id), _(
            "%(name)s (cannot work on this inbox)", name=t.assignee.name)))
    form.team.choices = [SelectChoice("", _("No team"))] + [
        SelectChoice(str(team.id), team.name) for team in db.session.scalars(select(Team).order_by(Team.name))]
    return render_template(
        "agent/ticket.html",
        t=t,
        contact=contact,
        history=history,
        past=past,
        reply_form=ReplyForm(),
        form=form,
        merge_form=MergeForm(),
        contact_form=ContactForm(name=contact.name, email=contact.email, phone=contact.phone,
                                 note=(contact.attributes or {}).get("note", "")),
        # As on the customer's own page: no forms the server would refuse (_require_contact_visible).
        contact_editable=not seen_only_in_part([contact.id], visible),
        ticket_merge_form=TicketMergeForm(),
        merge_candidates=[p for p in past if p.inbox_id == t.inbox_id and p.status is not Status.closed],
        canned=db.session.scalars(select(CannedReply).order_by(CannedReply.shortcut)).all(),
        signature=render_signature(t.inbox.settings or {}, current_user.name) if t.inbox.kind == "email" else "",
        public=public_reply(t),
        messages_json=[message_json(m) for m in history],
        page_event_id=since,
    )


@bp.post("/tickets/<int:ticket_id>/reply")
def reply(ticket_id: int):
    t = _ticket_or_404(ticket_id)
    form = ReplyForm()
    wants_json = request.accept_mimetypes.best == "application/json"
    if not form.validate_on_submit():
        if wants_json:
            return jsonify(error="invalid", message=_("The reply is empty or too long."), fields=form.errors), 400
        flash(_("The reply is empty or too long."), "error")
        return redirect(url_for(".ticket", ticket_id=t.id))
    # Read one byte past the limit, so an oversized file is refused by post_reply's check.
    limit = reply_file_limits()["max_bytes"] + 1
    files = [Attachment(filename=f.filename, content_type=f.mimetype or "", data=f.stream.read(limit))
             for f in request.files.getlist("files") if f.filename]
    # Only where the channel can (a hand-made request must not turn a Facebook comment's public
    # answer, files and all, into a "DM" the adapter would post in the open anyway).
    public = public_reply(t)
    meta = {"dm": True} if form.dm.data and public and public["dm_possible"] else None
    try:
        msg = post_reply(t, current_user, form.body.data, private=form.private.data, files=files, meta=meta)
    except ReplyError as exc:
        if wants_json:
            return jsonify(error=str(exc), message=str(exc)), 400
        flash(str(exc), "error")
        return redirect(url_for(".ticket", ticket_id=t.id))
    if form.then_status.data:
        update_ticket(t, current_user, status=form.then_status.data)  # after the reply, as the customer sees it
    if wants_json:
        return jsonify(message_json(msg)), 201
    return redirect(url_for(".ticket", ticket_id=t.id) + f"#m{msg.id}")


@bp.post("/tickets/<int:ticket_id>/update")
def update(ticket_id: int):
    t = _ticket_or_404(ticket_id)
    form = TicketForm()
    if not form.validate_on_submit():
        abort(400)
    assignee = request.form.get("assignee", "")
    team = request.form.get("team", "")
    if not (team == "" or team.isdigit()) or not (assignee in ("", "none") or assignee.isdigit()):
        abort(400)  # not one of the offered choices: a hand-made request
    tags = _tag_list(form.tags.data or "")
    # The form posts every field; only those the agent changed apply. A field left as the page
    # showed it (``was_*``) must not undo what a colleague changed since (an assignment, a status).
    posted = {name for name in ("status", "priority", "assignee", "team", "tags") if name in request.form}
    for name, value in (("status", form.status.data or ""), ("priority", form.priority.data or ""),
                        ("assignee", assignee), ("team", team)):
        if request.form.get(f"was_{name}") == value:
            posted.discard(name)
    if "was_tags" in request.form and _tag_list(request.form["was_tags"]) == tags:
        posted.discard("tags")
    try:
        update_ticket(
            t, current_user,
            status=(form.status.data or None) if "status" in posted else None,
            priority=(form.priority.data or None) if "priority" in posted else None,
            assignee_id=(None if assignee in ("", "none") else assignee) if "assignee" in posted else "",
            team_id=(int(team) if team else None) if "team" in posted else "",
            tags=tags if "tags" in posted else None,
        )
    except TicketError as exc:
        flash(str(exc), "error")
    return redirect(url_for(".ticket", ticket_id=t.id))


def _tag_list(text: str) -> list[str]:
    """Tags as typed: separated by commas, the Japanese 「、」 and full-width 「，」 included."""
    for comma in ("、", "，", "､"):
        text = text.replace(comma, ",")
    return tag_names(text.split(","))


@bp.post("/tickets/<int:ticket_id>/merge")
def merge_ticket(ticket_id: int):
    """Fold this ticket (a duplicate) into another ticket of the same customer and inbox."""
    source = _ticket_or_404(ticket_id)
    form = TicketMergeForm()
    if not form.validate_on_submit():
        abort(400)
    target = _ticket_or_404(form.into.data)
    try:
        merge_tickets(target, source, current_user)
    except TicketError as exc:
        flash(str(exc), "error")
        return redirect(url_for(".ticket", ticket_id=source.id))
    flash(_("Ticket #%(id)s was merged into this one.", id=source.id), "info")
    return redirect(url_for(".ticket", ticket_id=target.id))


@bp.post("/contacts/<int:contact_id>/update")
def update_contact_view(contact_id: int):
    contact = db.session.get(Contact, contact_id) or abort(404)
    _require_contact_visible(contact, visible_inbox_ids(current_user))
    form = ContactForm()
    if not form.validate_on_submit():
        flash(form_error_text(form) or _("The request could not be processed"), "error")
        return _back(contact)
    update_contact(contact, current_user, name=form.name.data or "", email=form.email.data,
                   phone=form.phone.data, note=form.note.data or "")
    return _back(contact)


def _back(contact: Contact):
    """Back to the ticket page a sidebar form was posted from (its ``ticket_id`` field),
    else to the customer's own page."""
    back = request.form.get("ticket_id", "")
    if back.isdigit():
        return redirect(url_for(".ticket", ticket_id=int(back)))
    return redirect(url_for(".contact", contact_id=contact.id))


@bp.post("/contacts/<int:contact_id>/merge")
def merge(contact_id: int):
    survivor = db.session.get(Contact, contact_id) or abort(404)
    visible = visible_inbox_ids(current_user)
    # Permission first, so a refused agent learns nothing from validation errors.
    _require_contact_visible(survivor, visible)
    form = MergeForm()
    if not form.validate_on_submit() or not form.other_id.data.strip().isdigit():
        abort(400)
    other = db.session.get(Contact, int(form.other_id.data)) or abort(404)
    _require_contact_visible(other, visible)
    name = other.display_name
    try:
        merge_contacts(survivor, other, current_user)
    except TicketError as exc:
        flash(str(exc), "error")
    else:
        flash(_("%(name)s was merged into this customer.", name=name), "ok")
    return _back(survivor)


def _require_contact_visible(contact: Contact, visible: set[int]) -> None:
    """An agent may only touch customers whose every ticket is in an inbox they can see."""
    if seen_only_in_part([contact.id], visible):
        log.warning("agent %s denied contact %s", current_user.id, contact.id)
        abort(403)


@bp.get("/contacts")
def contacts():
    """The customer directory: everyone with a ticket the agent can see, searchable."""
    visible = visible_inbox_ids(current_user)
    q = request.args.get("q", "")[:200]
    page = paginate(contact_query(visible, q), request.args.get("page", 1, type=int),
                    current_app.config["PAGE_SIZE"])
    return render_template("agent/contacts.html", page=page, q=q,
                           stats=ticket_stats([c.id for c in page.items], visible))


@bp.get("/contacts/<int:contact_id>")
def contact(contact_id: int):
    """One customer: details, channel accounts, every ticket the agent can see, and merging
    in the duplicates (suggested, or found by a search)."""
    c = db.session.get(Contact, contact_id) or abort(404)
    if c.merged_into_id:  # an old link (an audit entry, a bookmark): the customer lives on there
        return redirect(url_for(".contact", contact_id=c.merged_into_id))
    visible = visible_inbox_ids(current_user)
    if not can_see_contact(c, visible):
        log.warning("agent %s denied contact %s", current_user.id, c.id)
        abort(403)
    tickets = db.session.scalars(
        select(Ticket).where(Ticket.contact_id == c.id, Ticket.inbox_id.in_(visible))
        .order_by(Ticket.last_message_at.desc(), Ticket.id.desc())).all()
    find = request.args.get("find", "")[:200]
    found = []
    if find.strip():
        found = db.session.scalars(contact_query(visible, find).where(Contact.id != c.id).limit(20)).all()
    duplicates = likely_duplicates(c, visible)
    partial = seen_only_in_part([c.id] + [o.id for o in [*found, *duplicates]], visible)
    return render_template(
        "agent/contact.html", contact=c, tickets=tickets, find=find, found=found, duplicates=duplicates,
        editable=c.id not in partial, partial=partial,
        contact_form=ContactForm(name=c.name, email=c.email, phone=c.phone,
                                 note=(c.attributes or {}).get("note", "")),
        merge_form=MergeForm())


@bp.get("/messages/<int:message_id>/quoted")
def quoted(message_id: int):
    msg = db.session.get(Message, message_id) or abort(404)
    _ticket_or_404(msg.ticket_id)
    return jsonify(id=msg.id, quoted=msg.quoted or "")


@bp.get("/attachments/<int:message_id>/<int:index>")
def attachment(message_id: int, index: int):
    msg = db.session.get(Message, message_id) or abort(404)
    _ticket_or_404(msg.ticket_id)
    atts = msg.attachments or []
    if index >= len(atts) or not atts[index].get("stored"):
        abort(404)
    # Served as a download, with its own type only for images and PDF: never rendered as HTML.
    return storage.download(atts[index]) or abort(404)


