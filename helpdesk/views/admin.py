"""Admin: inboxes and their credentials, agents, teams, canned replies, API tokens."""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from functools import wraps
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms.fields.choices import SelectChoice
from wtforms import (BooleanField, EmailField, IntegerField, PasswordField, SelectField, SelectMultipleField,
                     StringField, TextAreaField)
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional, ValidationError

from channels import kinds
from channels.base import valid_email
from channels.chat import clean_origin

from ..extensions import db
from ..labels import (AUDIT_ACTION_LABELS, audit_action_label, audit_field_label, audit_object_label,
                      availability_label, channel_label, language_name, priority_label, role_label, status_label)
from ..models import Agent, ApiToken, AuditLog, CannedReply, Inbox, Role, Status, Team, Ticket
from ..models._types import ROW_ID_MAX
from ..realtime.agent_ns import drop_agent_sockets
from ..services import assign
from ..services.access import assignable_agents, visible_inbox_ids
from ..services.tickets import audit
from ..sqlite_writes import write_now
from . import email_filter, form_error_text

bp = Blueprint("admin", __name__, url_prefix="/admin")
log = logging.getLogger(__name__)


def admin_required(view):
    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if current_user.role is not Role.admin:
            log.warning("agent %s denied admin page %s", current_user.id, request.path)
            abort(403)
        return view(*args, **kwargs)
    return wrapped


def _json_object(form, field):
    try:
        value = json.loads(field.data or "{}")
    except ValueError:
        raise ValidationError(_("Must be a JSON object.")) from None
    if not isinstance(value, dict):
        raise ValidationError(_("Must be a JSON object."))


# Settings that name an address or a server: a typo here fails later, where nobody looks (a
# bounce that never comes, a callback that never arrives), so it is refused when it is saved.
_ADDRESS_SETTINGS = ("address", "from_address")
_URL_SETTINGS = ("callback_url", "api_base", "api_data_base", "graph_base")


def _setting_values(form, field):
    try:
        settings = json.loads(field.data or "{}")
    except ValueError:
        return  # _json_object says so
    if not isinstance(settings, dict):
        return
    for key in _ADDRESS_SETTINGS:
        value = settings.get(key)
        if value not in (None, "") and not (isinstance(value, str) and valid_email(value.strip())):
            raise ValidationError(_("%(key)s: not an email address.", key=key))
    for key in _URL_SETTINGS:
        value = settings.get(key)
        if value in (None, ""):
            continue
        url = urlsplit(value.strip()) if isinstance(value, str) else None
        if url is None or url.scheme not in ("http", "https") or not url.netloc:
            raise ValidationError(_("%(key)s: not an http(s) URL.", key=key))


def _allowed_origins(form, field):
    """A chat inbox's ``allowed_origins``: the sites that may embed its widget. An entry the
    widget could not use is refused here, where the admin sees why, rather than ignored later."""
    try:
        settings = json.loads(field.data or "{}")
    except ValueError:
        return  # _json_object says so
    listed = settings.get("allowed_origins") if isinstance(settings, dict) else None
    if listed is None or listed == []:
        return  # every site may embed it
    if not isinstance(listed, list):
        raise ValidationError(_("allowed_origins must be a list of sites, such as %(example)s.",
                                example='["https://shop.example.jp"]'))
    bad = [str(entry) for entry in listed if clean_origin(entry) is None]
    if bad:
        raise ValidationError(_("allowed_origins: not a site: %(entries)s. Write each site as http(s)://host or "
                                "http(s)://host:port, such as %(example)s, without a path. An empty list allows "
                                "every site.", entries=", ".join(bad)[:200], example="https://shop.example.jp"))


def _row_id(raw) -> int | None:
    """A posted id as a row id, or None. Only ASCII digits: ``str.isdigit`` also passes "²", which
    ``int`` refuses, and a 30-digit number fails in the database; either was a 500."""
    raw = raw if isinstance(raw, str) else ""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(ROW_ID_MAX)):
        return None
    return int(raw) if int(raw) <= ROW_ID_MAX else None


def _existing_team(form, field):
    """A team chosen by id: it may have been deleted since the form was opened."""
    row_id = _row_id(field.data)
    if field.data and (row_id is None or db.session.get(Team, row_id) is None):
        raise ValidationError(_("No such team."))


def _api_inbox(form, field):
    """Tokens authenticate /api/v1 only, which only an inbox of the API channel accepts."""
    row_id = _row_id(field.data)
    inbox = db.session.get(Inbox, row_id) if row_id is not None else None
    if inbox is None or inbox.kind != "api":
        raise ValidationError(_("Choose an inbox of the API channel."))


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _shortcut(value):
    """Shortcuts are shown and typed as /sorry but stored as sorry; a Japanese IME types the
    slash full-width (／おわび), which is the same shortcut."""
    return value.strip().lstrip("/／").strip() if isinstance(value, str) else value


# What desk.js fills in when an agent picks a canned reply.
PLACEHOLDERS = ("customer", "agent", "ticket")
_BRACED = re.compile(r"[{｛]([^{}｛｝\n]{1,24})[}｝]")


def _placeholders(value):
    """｛customer｝ or {ｃｕｓｔｏｍｅｒ}, typed with the IME on, is the placeholder {customer}: the
    desk replaces only the ASCII spelling, and the customer got the braces as written."""
    def ascii_name(match):
        name = unicodedata.normalize("NFKC", match[1]).strip().lower()
        return "{" + name + "}" if name in PLACEHOLDERS else match[0]
    return _BRACED.sub(ascii_name, value) if isinstance(value, str) else value


def _same_name(model, name: str, but: int | None = None):
    """A team (or inbox) whose name reads the same: サポート and ｻﾎﾟｰﾄ (half-width kana), or ＣＳ and
    CS, are one name to the people choosing between them."""
    key = unicodedata.normalize("NFKC", name).casefold()
    return next((row for row in db.session.scalars(select(model)) if row.id != but
                 and unicodedata.normalize("NFKC", row.name).casefold() == key), None)


def _text_secrets(form, field):
    """Each secret is text (a token, a password), or null to remove a saved one."""
    if any(v is not None and not isinstance(v, str) for v in json.loads(field.data or "{}").values()):
        raise ValidationError(_("Each secret must be text (or null to remove it)."))


def _secret_values(text: str | None) -> dict:
    """Secrets as given, without the spaces or newline a paste from a provider's console brings
    along: a LINE channel secret with a trailing newline made every webhook signature fail."""
    given = json.loads(text or "{}")
    return {k: v.strip() if isinstance(v, str) else v for k, v in given.items()}


# WTForms' own message for this is not in its Japanese catalogue.
NOT_A_CHOICE = _l("Not one of the choices: '%(value)s'")


class InboxForm(FlaskForm):
    name = StringField(_l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=120)])
    kind = SelectField(_l("Channel"), choices=[])
    team_id = SelectField(_l("Team"), choices=[], validate_choice=False, validators=[_existing_team])
    settings = TextAreaField(_l("Settings (JSON)"), default="{}",
                             validators=[_json_object, _allowed_origins, _setting_values])
    secrets = TextAreaField(_l("Secrets (JSON; leave empty to keep)"), default="",
                            validators=[Optional(), _json_object, _text_secrets])
    editing: int | None = None  # the inbox being edited, whose own name is no duplicate

    def validate_name(self, field):
        if field.data and _same_name(Inbox, field.data, but=self.editing):
            raise ValidationError(_("An inbox with that name already exists."))


class InboxEditForm(InboxForm):
    kind = None  # an inbox keeps its channel
    active = BooleanField(_l("Active (accepts new messages)"))
    # Agents who see the inbox beside its team's members (and admins and supervisors, who see all).
    members = SelectMultipleField(_l("Members"), coerce=int, choices=[], invalid_choice_message=NOT_A_CHOICE)
    # Email inboxes: kept in settings["signature"], edited here rather than as a JSON string.
    signature = TextAreaField(_l("Email signature"), validators=[Optional(), Length(max=2000)])
    # Kept in settings["auto_assign"], settings["auto_assign_limit"] (services/assign.py) and
    # settings["away_message"] (services/away.py).
    auto_assign = BooleanField(_l("Assign each new ticket to the least busy of the inbox's agents online"))
    auto_assign_limit = IntegerField(_l("Tickets to work per agent, at most (empty: no limit)"),
                                     validators=[Optional(), NumberRange(min=1, max=999)])
    away_message = TextAreaField(_l("Away message (outside business hours)"), validators=[Optional(), Length(max=1000)])


class AgentForm(FlaskForm):
    name = StringField(_l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=120)])
    email = EmailField(_l("Email address"), filters=[email_filter],
                       validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(min=10, max=200)])
    role = SelectField(_l("Role"), choices=[SelectChoice(r.value) for r in Role])


class AgentEditForm(FlaskForm):
    name = StringField(_l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=120)])
    email = EmailField(_l("Email address"), filters=[email_filter],
                       validators=[DataRequired(), Email(), Length(max=254)])
    role = SelectField(_l("Role"), choices=[SelectChoice(r.value) for r in Role])
    active = BooleanField(_l("Active (may log in)"))
    teams = SelectMultipleField(_l("Teams"), coerce=int, choices=[], invalid_choice_message=NOT_A_CHOICE)
    password = PasswordField(_l("New password (leave empty to keep)"), validators=[Optional(), Length(min=10, max=200)])


class TeamForm(FlaskForm):
    name = StringField(_l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=120)])


class TeamEditForm(TeamForm):
    members = SelectMultipleField(_l("Members"), coerce=int, choices=[], invalid_choice_message=NOT_A_CHOICE)


class CannedForm(FlaskForm):
    shortcut = StringField(_l("Shortcut"), filters=[_shortcut], validators=[DataRequired(), Length(max=40)])
    title = StringField(_l("Title"), filters=[_strip], validators=[DataRequired(), Length(max=120)])
    body = TextAreaField(_l("Body"), filters=[_placeholders], validators=[DataRequired(), Length(max=5000)])

    def validate_shortcut(self, field):
        if field.data and any(ch.isspace() for ch in field.data):  # typed as /おわび, which ends at a space
            raise ValidationError(_("A shortcut has no spaces."))


class TokenForm(FlaskForm):
    name = StringField(_l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=120)])
    inbox_id = SelectField(_l("Inbox"), choices=[], validate_choice=False, validators=[_api_inbox])


@bp.route("/", methods=["GET"])
@admin_required
def index():
    inbox_form = InboxForm()
    inbox_form.kind.choices = [SelectChoice(k) for k in kinds()]
    teams = db.session.scalars(select(Team).order_by(Team.name)).all()
    inbox_form.team_id.choices = [SelectChoice("", "-")] + [SelectChoice(str(t.id), t.name) for t in teams]
    inboxes = db.session.scalars(select(Inbox).order_by(Inbox.id)).all()
    token_form = TokenForm()
    token_form.inbox_id.choices = [SelectChoice(str(i.id), i.name) for i in inboxes if i.kind == "api"]
    return render_template(
        "admin/index.html",
        inboxes=inboxes,
        agents=db.session.scalars(select(Agent).order_by(Agent.name)).all(),
        teams=teams,
        canned=db.session.scalars(select(CannedReply).order_by(CannedReply.shortcut)).all(),
        tokens=db.session.scalars(select(ApiToken).order_by(ApiToken.id)).all(),
        inbox_names={i.id: i.name for i in inboxes},
        inbox_form=inbox_form, agent_form=AgentForm(), team_form=TeamForm(), canned_form=CannedForm(),
        token_form=token_form,
    )


@bp.post("/inboxes")
@admin_required
def create_inbox():
    form = InboxForm()
    form.kind.choices = [SelectChoice(k) for k in kinds()]
    if not form.validate_on_submit():
        flash(_("Inbox not saved: %(errors)s", errors=form_error_text(form)), "error")
        return redirect(url_for(".index"))
    inbox = Inbox(name=form.name.data, kind=form.kind.data, settings=json.loads(form.settings.data or "{}"),
                  secrets={k: v for k, v in _secret_values(form.secrets.data).items() if v not in (None, "")},
                  team_id=_row_id(form.team_id.data))
    db.session.add(inbox)
    db.session.flush()
    audit(current_user, "inbox.create", "inbox", inbox.id, {"kind": inbox.kind, "name": inbox.name})
    db.session.commit()
    flash(_("Inbox created."), "ok")
    return redirect(url_for(".index"))


@bp.post("/agents")
@admin_required
def create_agent():
    form = AgentForm()
    if not form.validate_on_submit():
        flash(_("Agent not saved: %(errors)s", errors=form_error_text(form)), "error")
        return redirect(url_for(".index"))
    if db.session.scalar(select(Agent).where(func.lower(Agent.email) == form.email.data.lower())):
        flash(_("An agent with that email exists."), "error")
        return redirect(url_for(".index"))
    agent = Agent(name=form.name.data, email=form.email.data.lower(), role=Role(form.role.data))
    agent.set_password(form.password.data)
    db.session.add(agent)
    db.session.flush()
    audit(current_user, "agent.create", "agent", agent.id, {"role": agent.role.value})
    db.session.commit()
    flash(_("Agent created."), "ok")
    return redirect(url_for(".index"))


@bp.post("/teams")
@admin_required
def create_team():
    form = TeamForm()
    if not form.validate_on_submit():
        flash(_("Team not saved: %(errors)s", errors=form_error_text(form)), "error")
    elif _same_name(Team, form.name.data):
        flash(_("A team with that name already exists."), "error")
    else:
        team = Team(name=form.name.data)
        db.session.add(team)
        db.session.flush()
        audit(current_user, "team.create", "team", team.id, {"name": team.name})
        db.session.commit()
        flash(_("Team created."), "ok")
    return redirect(url_for(".index"))


@bp.post("/canned")
@admin_required
def create_canned():
    form = CannedForm()
    if not form.validate_on_submit():
        flash(_("Canned reply not saved: %(errors)s", errors=form_error_text(form)), "error")
        return redirect(url_for(".index"))
    if db.session.scalar(select(CannedReply).where(CannedReply.shortcut == form.shortcut.data)):
        flash(_("A canned reply with that shortcut already exists."), "error")
        return redirect(url_for(".index"))
    canned = CannedReply(shortcut=form.shortcut.data, title=form.title.data, body=form.body.data)
    db.session.add(canned)
    db.session.flush()
    audit(current_user, "canned.create", "canned_reply", canned.id, {"shortcut": canned.shortcut})
    db.session.commit()
    flash(_("Canned reply saved."), "ok")
    return redirect(url_for(".index"))


@bp.post("/tokens")
@admin_required
def create_token():
    form = TokenForm()
    if not form.validate_on_submit():
        flash(_("Token not created: %(errors)s", errors=form_error_text(form)), "error")
        return redirect(url_for(".index"))
    token, secret = ApiToken.issue(form.name.data, int(form.inbox_id.data))
    db.session.add(token)
    db.session.flush()
    audit(current_user, "token.create", "api_token", token.id, {"name": token.name})
    db.session.commit()
    # Shown once, never stored in clear.
    flash(_("New API token (copy it now, it is shown once): %(token)s", token=secret), "ok")
    return redirect(url_for(".index"))


# ---- changing what exists ------------------------------------------------------------
# Each change is audited (secrets by name only) and, where it changes what an agent may
# see, drops that agent's open pages so they reconnect into the rooms they may now join.

def _connect_hint(inbox: Inbox) -> str | None:
    """Where the provider (or the website) sends this inbox's messages."""
    base = current_app.config["PUBLIC_URL"].rstrip("/")
    if inbox.kind in ("line", "messenger", "social"):
        return f"{base}/webhooks/{inbox.kind}/{inbox.key}"
    if inbox.kind == "chat":
        return f'<script src="{base}/widget.js" data-inbox="{inbox.key}" async></script>'
    if inbox.kind == "api":
        return f"POST {base}/api/v1/messages"
    return None


# Inbox settings the inbox page edits as fields of their own, not in its JSON (with an email
# inbox's signature).
_FIELD_SETTINGS = ("auto_assign", "auto_assign_limit", "away_message")


def _inbox_edit_form(inbox: Inbox, agents: list[Agent]) -> InboxEditForm:
    form = InboxEditForm(obj=inbox) if request.method == "GET" else InboxEditForm()
    form.editing = inbox.id
    teams = db.session.scalars(select(Team).order_by(Team.name)).all()
    form.team_id.choices = [SelectChoice("", "-")] + [SelectChoice(str(t.id), t.name) for t in teams]
    # Admins and supervisors see every inbox: membership means something for agents only.
    form.members.choices = [(a.id, a.name) for a in agents if not a.sees_all_inboxes]
    if request.method == "GET":
        form.team_id.data = str(inbox.team_id or "")
        settings = dict(inbox.settings or {})
        if inbox.kind == "email":
            form.signature.data = settings.pop("signature", "")
        form.away_message.data = settings.get("away_message", "")
        form.auto_assign.data = assign.wanted(inbox)
        form.auto_assign_limit.data = assign.limit(inbox)
        for key in _FIELD_SETTINGS:
            settings.pop(key, None)
        form.settings.data = json.dumps(settings, ensure_ascii=False, indent=2)
        form.secrets.data = ""
        form.members.data = [a.id for a in inbox.members]
    return form


@bp.route("/inboxes/<int:inbox_id>", methods=["GET", "POST"])
@admin_required
def edit_inbox(inbox_id: int):
    inbox = db.get_or_404(Inbox, inbox_id)
    agents = db.session.scalars(select(Agent).order_by(Agent.name)).all()
    form = _inbox_edit_form(inbox, agents)
    if request.method == "POST":
        if not form.validate_on_submit():
            flash(_("Inbox not saved: %(errors)s", errors=form_error_text(form)), "error")
            form.secrets.data = ""  # never echo secrets into a page
            return render_template("admin/inbox.html", inbox=inbox, form=form, hint=_connect_hint(inbox),
                                   ticket_count=_ticket_count(inbox)), 400

        def state() -> dict:
            return {"name": inbox.name, "team_id": inbox.team_id, "settings": inbox.settings, "active": inbox.active,
                    "members": sorted(a.id for a in inbox.members)}

        # Who sees it, before and after: their open pages need new rooms (a deactivated
        # agent has none to change: they are refused on reconnect).
        saw, before = {a.id for a in assignable_agents(inbox)}, state()
        inbox.name = form.name.data
        inbox.team_id = _row_id(form.team_id.data)
        settings = json.loads(form.settings.data or "{}")
        if inbox.kind == "email":
            settings.pop("signature", None)
            signature = (form.signature.data or "").replace("\r\n", "\n").strip("\n")
            if signature.strip():
                settings["signature"] = signature
        fields = {"auto_assign": form.auto_assign.data, "auto_assign_limit": form.auto_assign_limit.data,
                  "away_message": (form.away_message.data or "").replace("\r\n", "\n").strip()}
        settings = {k: v for k, v in settings.items() if k not in _FIELD_SETTINGS}
        settings.update({k: v for k, v in fields.items() if v})  # an empty field: the key is left out
        inbox.settings = settings
        inbox.active = form.active.data
        offered = {value for value, _label in form.members.choices}
        chosen = set(form.members.data or []) | {a.id for a in inbox.members if a.id not in offered}
        inbox.members = [a for a in agents if a.id in chosen]
        changes = {k: v for k, v in state().items() if before[k] != v}
        if form.secrets.data:
            given = _secret_values(form.secrets.data)
            changes["secrets"] = sorted(given)  # which ones, never their values
            merged = {**(inbox.secrets or {}), **given}
            inbox.secrets = {k: v for k, v in merged.items() if v not in (None, "")}
        db.session.flush()
        sees = {a.id for a in assignable_agents(inbox)}
        if changes:
            audit(current_user, "inbox.update", "inbox", inbox.id, changes)
        db.session.commit()
        drop_agent_sockets(saw ^ sees)
        if "settings" in changes:
            assign.enqueue_waiting([inbox.id])  # a cap set or raised: tickets waiting may go now
        log.info("inbox %s updated by agent %s: %s", inbox.id, current_user.id, sorted(changes))
        flash(_("Inbox saved."), "ok")
        return redirect(url_for(".edit_inbox", inbox_id=inbox.id))
    return render_template("admin/inbox.html", inbox=inbox, form=form, hint=_connect_hint(inbox),
                           ticket_count=_ticket_count(inbox))


def _ticket_count(inbox: Inbox) -> int:
    return db.session.scalar(select(func.count()).select_from(Ticket).where(Ticket.inbox_id == inbox.id))


@bp.post("/inboxes/<int:inbox_id>/delete")
@admin_required
def delete_inbox(inbox_id: int):
    """Only an inbox no customer has written to yet (made by mistake, or to try a channel):
    tickets go with their inbox, and a desk's conversations are its history, so one with
    tickets is switched off instead (edit_inbox, "active")."""
    write_now(db.session)  # no message may arrive between the count and the delete
    inbox = db.session.scalar(select(Inbox).where(Inbox.id == inbox_id).with_for_update())
    if inbox is None:
        abort(404)
    tickets = _ticket_count(inbox)
    if tickets:
        db.session.rollback()
        flash(_("The inbox %(name)s has %(n)s tickets, so it cannot be deleted; untick Active to stop it "
                "taking messages.", name=inbox.name, n=tickets), "error")
        return redirect(url_for(".edit_inbox", inbox_id=inbox_id))
    name, saw = inbox.name, {a.id for a in assignable_agents(inbox)}
    audit(current_user, "inbox.delete", "inbox", inbox.id, {"name": name, "kind": inbox.kind})
    db.session.delete(inbox)  # its members, API tokens and surveys go with it (ON DELETE CASCADE)
    db.session.commit()
    drop_agent_sockets(saw)  # their open pages leave its room
    log.info("inbox %s (%s) deleted by agent %s", inbox_id, name, current_user.id)
    flash(_("Inbox deleted: %(name)s", name=name), "ok")
    return redirect(url_for(".index"))


def _active_admins() -> int:
    return db.session.scalar(select(func.count(Agent.id)).where(Agent.role == Role.admin, Agent.active.is_(True)))


@bp.route("/agents/<int:agent_id>", methods=["GET", "POST"])
@admin_required
def edit_agent(agent_id: int):
    agent = db.get_or_404(Agent, agent_id)
    form = AgentEditForm(obj=agent) if request.method == "GET" else AgentEditForm()
    teams = db.session.scalars(select(Team).order_by(Team.name)).all()
    form.teams.choices = [(t.id, t.name) for t in teams]
    if request.method == "GET":
        form.role.data = agent.role.value
        form.teams.data = [t.id for t in agent.teams]
        return render_template("admin/agent.html", agent=agent, form=form)
    error = None
    if not form.validate_on_submit():
        error = form_error_text(form)
    elif form.email.data.lower() != agent.email and db.session.scalar(
            select(Agent).where(func.lower(Agent.email) == form.email.data.lower())):
        error = _("An agent with that email exists.")
    elif agent.role is Role.admin and agent.active and (form.role.data != Role.admin.value or not form.active.data) \
            and _active_admins() <= 1:
        error = _("The last active admin cannot be demoted or deactivated.")
    if error:
        flash(_("Agent not saved: %(errors)s", errors=error), "error")
        return render_template("admin/agent.html", agent=agent, form=form), 400

    def state() -> dict:
        return {"name": agent.name, "email": agent.email, "role": agent.role.value, "active": agent.active,
                "teams": sorted(t.id for t in agent.teams)}

    before = state()
    agent.name, agent.email = form.name.data, form.email.data.lower()
    agent.role, agent.active = Role(form.role.data), form.active.data
    chosen = set(form.teams.data or [])
    agent.teams = [t for t in teams if t.id in chosen]
    changes = {k: v for k, v in state().items() if before[k] != v}
    if form.password.data:
        agent.set_password(form.password.data)
        changes["password"] = "changed"
    if changes:
        audit(current_user, "agent.update", "agent", agent.id, changes)
    db.session.commit()
    if {"role", "active", "teams", "password"} & changes.keys():  # a new password ends their sessions
        drop_agent_sockets([agent.id])
    log.info("agent %s updated by agent %s: %s", agent.id, current_user.id, sorted(changes))
    flash(_("Agent saved."), "ok")
    return redirect(url_for(".edit_agent", agent_id=agent.id))


def _team_usage(team: Team) -> dict:
    """What a team is attached to, for the page (and the warning before deleting it)."""
    return {
        "inboxes": db.session.scalars(select(Inbox).where(Inbox.team_id == team.id).order_by(Inbox.name)).all(),
        "open_tickets": db.session.scalar(select(func.count(Ticket.id)).where(
            Ticket.team_id == team.id, Ticket.status.in_(Status.active()))),
    }


def _sight(agents) -> dict[int, set[int]]:
    return {a.id: visible_inbox_ids(a) for a in agents}


@bp.route("/teams/<int:team_id>", methods=["GET", "POST"])
@admin_required
def edit_team(team_id: int):
    team = db.get_or_404(Team, team_id)
    agents = db.session.scalars(select(Agent).order_by(Agent.name)).all()
    form = TeamEditForm(obj=team) if request.method == "GET" else TeamEditForm()
    form.members.choices = [(a.id, a.name) for a in agents]
    if request.method == "GET":
        form.members.data = [a.id for a in team.members]
        return render_template("admin/team.html", team=team, form=form, **_team_usage(team))
    error = None
    if not form.validate_on_submit():
        error = form_error_text(form)
    elif _same_name(Team, form.name.data, but=team.id):
        error = _("A team with that name already exists.")
    if error:
        flash(_("Team not saved: %(errors)s", errors=error), "error")
        return render_template("admin/team.html", team=team, form=form, **_team_usage(team)), 400

    def state() -> dict:
        return {"name": team.name, "members": sorted(a.id for a in team.members)}

    before, chosen = state(), set(form.members.data or [])
    touched = [a for a in agents if (a in team.members) != (a.id in chosen)]
    saw = _sight(touched)
    team.name = form.name.data
    team.members = [a for a in agents if a.id in chosen]
    db.session.flush()
    changes = {k: v for k, v in state().items() if before[k] != v}
    if changes:
        audit(current_user, "team.update", "team", team.id, changes)
    sees = _sight(touched)
    db.session.commit()
    drop_agent_sockets([a for a in saw if saw[a] != sees[a]])  # their pages rejoin the rooms they may now see
    log.info("team %s updated by agent %s: %s", team.id, current_user.id, sorted(changes))
    flash(_("Team saved."), "ok")
    return redirect(url_for(".edit_team", team_id=team.id))


@bp.post("/teams/<int:team_id>/delete")
@admin_required
def delete_team(team_id: int):
    """Its inboxes and tickets stay, without a team; its members stay agents."""
    team = db.get_or_404(Team, team_id)
    name, members = team.name, list(team.members)
    saw = _sight(members)
    usage = _team_usage(team)
    audit(current_user, "team.delete", "team", team.id, {
        "name": name, "members": sorted(a.id for a in members),
        "inboxes": [i.id for i in usage["inboxes"]], "open_tickets": usage["open_tickets"]})
    db.session.delete(team)  # the database sets the inboxes' and tickets' team to none
    db.session.flush()
    sees = _sight(members)
    db.session.commit()
    drop_agent_sockets([a for a in saw if saw[a] != sees[a]])
    log.info("team %s (%s) deleted by agent %s", team_id, name, current_user.id)
    flash(_("Team deleted: %(name)s", name=name), "ok")
    return redirect(url_for(".index"))


@bp.route("/canned/<int:canned_id>", methods=["GET", "POST"])
@admin_required
def edit_canned(canned_id: int):
    canned = db.get_or_404(CannedReply, canned_id)
    form = CannedForm(obj=canned) if request.method == "GET" else CannedForm()
    if request.method == "GET":
        return render_template("admin/canned.html", canned=canned, form=form)
    error = None
    if not form.validate_on_submit():
        error = form_error_text(form)
    elif form.shortcut.data != canned.shortcut and db.session.scalar(
            select(CannedReply).where(CannedReply.shortcut == form.shortcut.data)):
        error = _("A canned reply with that shortcut already exists.")
    if error:
        flash(_("Canned reply not saved: %(errors)s", errors=error), "error")
        return render_template("admin/canned.html", canned=canned, form=form), 400
    canned.shortcut, canned.title, canned.body = form.shortcut.data, form.title.data, form.body.data
    audit(current_user, "canned.update", "canned_reply", canned.id, {"shortcut": canned.shortcut})
    db.session.commit()
    flash(_("Canned reply saved."), "ok")
    return redirect(url_for(".index"))


@bp.post("/canned/<int:canned_id>/delete")
@admin_required
def delete_canned(canned_id: int):
    canned = db.get_or_404(CannedReply, canned_id)
    audit(current_user, "canned.delete", "canned_reply", canned.id, {"shortcut": canned.shortcut})
    db.session.delete(canned)
    db.session.commit()
    flash(_("Canned reply deleted."), "ok")
    return redirect(url_for(".index"))


@bp.post("/tokens/<int:token_id>/revoke")
@admin_required
def revoke_token(token_id: int):
    token = db.get_or_404(ApiToken, token_id)
    if not token.revoked:
        token.revoked = True
        audit(current_user, "token.revoke", "api_token", token.id, {"name": token.name})
        db.session.commit()
        log.info("API token %s (%s…) revoked by agent %s", token.id, token.prefix, current_user.id)
    flash(_("API token revoked: %(name)s", name=token.name), "ok")
    return redirect(url_for(".index"))


AUDIT_PAGE_SIZE = 50

# Entries whose changes hold [before, after] pairs; the others hold the new value (or what a
# creation, merge or deletion was about).
_BEFORE_AFTER_ACTIONS = {"ticket.update"}



def _audit_value(key: str, value, names: dict[int, str], teams: dict[int, str]) -> str:
    """One value of an audit entry as a reader takes it: ids named, codes in words, the rest
    as written (Japanese stays Japanese); the template escapes it like any text."""
    if value is None or value == []:
        return _("None")
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, list):
        return ", ".join(_audit_value(key, v, names, teams) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, int) and key in ("assignee_id", "members"):
        return f"{names[value]} (#{value})" if value in names else f"#{value}"
    if isinstance(value, int) and key in ("team_id", "teams"):
        return f"{teams[value]} (#{value})" if value in teams else f"#{value}"
    if isinstance(value, int) and key in ("merged", "merged_into"):
        return f"#{value}"
    if key == "status":
        return status_label(str(value))
    if key == "priority":
        return priority_label(str(value))
    if key == "availability":
        return availability_label(str(value))
    if key == "role" and value in {r.value for r in Role}:
        return role_label(value)
    if key == "locale":
        return language_name(str(value))
    if key == "kind":
        return channel_label(str(value))
    return str(value) if value != "" else '""'


def _audit_details(entry: AuditLog, names: dict[int, str], teams: dict[int, str]) -> list[dict]:
    """The changes of an entry, one row per field: its label, and what it was before where the
    entry recorded that."""
    rows = []
    changes = entry.changes if isinstance(entry.changes, dict) else {"": entry.changes}
    pairs = entry.action in _BEFORE_AFTER_ACTIONS
    for key, value in changes.items():
        row = {"key": key, "label": audit_field_label(key, entry.object_type) if key else ""}
        if pairs and isinstance(value, list) and len(value) == 2:
            row["old"], row["new"] = (_audit_value(key, v, names, teams) for v in value)
        else:
            row["new"] = _audit_value(key, value, names, teams)
        rows.append(row)
    return rows


@bp.get("/audit")
@admin_required
def audit_log():
    """Who changed what, newest first, narrowed to one agent or one kind of change."""
    agent_id = _row_id(request.args.get("agent", ""))
    action = (request.args.get("action") or "").strip()[:60]
    stmt = select(AuditLog).order_by(AuditLog.id.desc())
    if agent_id is not None:
        stmt = stmt.where(AuditLog.agent_id == agent_id)
    if action:
        stmt = stmt.where(AuditLog.action == action)
    page = max(1, min(request.args.get("page", 1, type=int), 100_000))
    entries = db.paginate(stmt, page=page, per_page=AUDIT_PAGE_SIZE, error_out=False)
    agents = db.session.scalars(select(Agent).order_by(Agent.name)).all()
    names = {a.id: a.name for a in agents}
    teams = dict(db.session.execute(select(Team.id, Team.name)).all())
    codes = set(db.session.scalars(select(AuditLog.action).distinct()).all())
    # every action the desk writes, in the reader's words, then any older code as it was stored
    actions = [(code, audit_action_label(code)) for code in AUDIT_ACTION_LABELS]
    actions += sorted((code, code) for code in codes - AUDIT_ACTION_LABELS.keys())
    return render_template(
        "admin/audit.html", entries=entries, agents=agents, names=names,
        details={e.id: _audit_details(e, names, teams) for e in entries.items},
        actions=actions, action_label=audit_action_label, object_label=audit_object_label,
        chosen_agent=agent_id, chosen_action=action,
        args={k: v for k, v in (("agent", agent_id), ("action", action)) if v})
