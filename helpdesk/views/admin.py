"""Admin: inboxes and their credentials, agents, teams, canned replies, API tokens."""

from __future__ import annotations

import json
import logging
from functools import wraps

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms.fields.choices import SelectChoice
from wtforms import EmailField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Email, Length, Optional, ValidationError

from channels import kinds

from ..extensions import db
from ..models import Agent, ApiToken, CannedReply, Inbox, Role, Team
from ..services.tickets import audit

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


def _error_text(form: FlaskForm) -> str:
    """A form's errors as the person reads them: field labels and messages in the UI language
    (WTForms' own messages are translated through Flask-WTF's WTF_I18N_ENABLED)."""
    return " ".join(f"{form[name].label.text}: {msg}" if name in form else str(msg)
                    for name, msgs in form.errors.items() for msg in msgs)


class InboxForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    kind = SelectField(_l("Channel"), choices=[])
    team_id = SelectField(_l("Team"), choices=[], validate_choice=False, validators=[Optional()])
    settings = TextAreaField(_l("Settings (JSON)"), default="{}", validators=[_json_object])
    secrets = TextAreaField(_l("Secrets (JSON; leave empty to keep)"), default="", validators=[Optional(), _json_object])


class AgentForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    email = EmailField(_l("Email address"), validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(min=10, max=200)])
    role = SelectField(_l("Role"), choices=[SelectChoice(r.value) for r in Role])


class TeamForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])


class CannedForm(FlaskForm):
    shortcut = StringField(_l("Shortcut"), validators=[DataRequired(), Length(max=40)])
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=120)])
    body = TextAreaField(_l("Body"), validators=[DataRequired(), Length(max=5000)])


class TokenForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    inbox_id = SelectField(_l("Inbox"), choices=[], validate_choice=False)


@bp.route("/", methods=["GET"])
@admin_required
def index():
    inbox_form = InboxForm()
    inbox_form.kind.choices = [SelectChoice(k) for k in kinds()]
    teams = db.session.scalars(select(Team).order_by(Team.name)).all()
    inbox_form.team_id.choices = [SelectChoice("", "-")] + [SelectChoice(str(t.id), t.name) for t in teams]
    inboxes = db.session.scalars(select(Inbox).order_by(Inbox.id)).all()
    token_form = TokenForm()
    token_form.inbox_id.choices = [SelectChoice(str(i.id), i.name) for i in inboxes]
    return render_template(
        "admin/index.html",
        inboxes=inboxes,
        agents=db.session.scalars(select(Agent).order_by(Agent.name)).all(),
        teams=teams,
        canned=db.session.scalars(select(CannedReply).order_by(CannedReply.shortcut)).all(),
        tokens=db.session.scalars(select(ApiToken).order_by(ApiToken.id)).all(),
        inbox_form=inbox_form, agent_form=AgentForm(), team_form=TeamForm(), canned_form=CannedForm(),
        token_form=token_form,
    )


@bp.post("/inboxes")
@admin_required
def create_inbox():
    form = InboxForm()
    form.kind.choices = [SelectChoice(k) for k in kinds()]
    if not form.validate_on_submit():
        flash(_("Inbox not saved: %(errors)s", errors=_error_text(form)), "error")
        return redirect(url_for(".index"))
    inbox = Inbox(name=form.name.data, kind=form.kind.data, settings=json.loads(form.settings.data or "{}"),
                  secrets=json.loads(form.secrets.data or "{}"),
                  team_id=int(form.team_id.data) if (form.team_id.data or "").isdigit() else None)
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
        flash(_("Agent not saved: %(errors)s", errors=_error_text(form)), "error")
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
        flash(_("Team not saved: %(errors)s", errors=_error_text(form)), "error")
    elif db.session.scalar(select(Team).where(Team.name == form.name.data)):
        flash(_("A team with that name already exists."), "error")
    else:
        db.session.add(Team(name=form.name.data))
        db.session.commit()
        flash(_("Team created."), "ok")
    return redirect(url_for(".index"))


@bp.post("/canned")
@admin_required
def create_canned():
    form = CannedForm()
    if not form.validate_on_submit():
        flash(_("Canned reply not saved: %(errors)s", errors=_error_text(form)), "error")
        return redirect(url_for(".index"))
    if db.session.scalar(select(CannedReply).where(CannedReply.shortcut == form.shortcut.data)):
        flash(_("A canned reply with that shortcut already exists."), "error")
        return redirect(url_for(".index"))
    db.session.add(CannedReply(shortcut=form.shortcut.data, title=form.title.data, body=form.body.data))
    db.session.commit()
    flash(_("Canned reply saved."), "ok")
    return redirect(url_for(".index"))


@bp.post("/tokens")
@admin_required
def create_token():
    form = TokenForm()
    if not form.validate_on_submit():
        flash(_("Token not created: %(errors)s", errors=_error_text(form)), "error")
        return redirect(url_for(".index"))
    if not (form.inbox_id.data or "").isdigit() or db.session.get(Inbox, int(form.inbox_id.data)) is None:
        abort(400)  # not one of the offered choices: a hand-made request
    token, secret = ApiToken.issue(form.name.data, int(form.inbox_id.data))
    db.session.add(token)
    db.session.flush()
    audit(current_user, "token.create", "api_token", token.id, {"name": token.name})
    db.session.commit()
    # Shown once, never stored in clear.
    flash(_("New API token (copy it now, it is shown once): %(token)s", token=secret), "ok")
    return redirect(url_for(".index"))
