"""Login and logout for agents, and their own account (name, language, password)."""

from __future__ import annotations

import hmac
import logging

from flask import (Blueprint, current_app, flash, jsonify, make_response, redirect, render_template, request, session,
                   url_for)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from sqlalchemy import func, select
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional

from ..extensions import db, limiter, login_manager
from ..labels import language_name
from ..models import Agent, Availability
from ..models._types import utcnow
from ..realtime import events
from ..realtime.agent_ns import drop_agent_sockets
from ..services import assign
from ..services.access import visible_inbox_ids
from ..services.tickets import audit
from . import email_filter
from .errors import http_error

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)


@login_manager.user_loader
def load_agent(session_id: str) -> Agent | None:
    """The agent of a session (``Agent.get_id``: "<id>:<password key>"), or no one when the
    agent is deactivated (Flask-Login checks is_active only when logging in) or the
    password has changed since the session began."""
    agent_id, _, key = str(session_id).partition(":")
    try:
        agent = db.session.get(Agent, int(agent_id))
    except (TypeError, ValueError):
        return None
    if agent is None or not agent.active or not hmac.compare_digest(key, agent.session_key):
        return None
    return agent


class LoginForm(FlaskForm):
    email = EmailField(_l("Email address"), filters=[email_filter],
                       validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])
    remember = BooleanField(_l("Remember me"))


def safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect after login is a phishing tool. Control characters
    # and spaces are refused too: browsers drop tabs/newlines, so "/\t/evil.com" would become "//evil.com".
    if (target and target.startswith("/") and not target.startswith("//") and "\\" not in target
            and not any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in target)):
        return target
    return url_for("agent.inbox")


def _failed_login(response) -> bool:
    """What the login throttle counts: every answer to a POST but a successful login (a redirect).
    An office behind one address must not lock itself out by logging in."""
    return response.status_code != 302


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"], deduct_when=_failed_login,
               on_breach=lambda limit: _throttled(limit))
def login():
    if current_user.is_authenticated:
        return redirect(url_for("agent.inbox"))
    form = LoginForm()
    if form.validate_on_submit():
        agent = db.session.scalar(select(Agent).where(func.lower(Agent.email) == form.email.data.lower()))
        if agent is not None and agent.active and agent.check_password(form.password.data):
            login_user(agent, remember=form.remember.data)
            agent.last_seen_at = utcnow()
            db.session.commit()
            log.info("agent %s logged in", agent.id)
            return redirect(safe_next(request.args.get("next")))
        log.warning("failed login for %r from %s", form.email.data, request.remote_addr)
        flash(_("Wrong email or password."), "error")
        return render_template("auth/login.html", form=form), 401
    if request.method == "POST":
        return render_template("auth/login.html", form=form), 400
    return render_template("auth/login.html", form=form)


def _throttled(limit):
    """The 11th attempt in a minute: the login page again, saying why and for how long (429)."""
    import time

    wait = max(1, int(limit.reset_at - time.time()))
    log.warning("login throttled for %s (%s)", request.remote_addr, limit.limit)
    flash(_("Too many login attempts. Please wait %(seconds)s seconds and try again.", seconds=wait), "error")
    resp = make_response(render_template("auth/login.html", form=LoginForm()), 429)
    resp.headers["Retry-After"] = str(wait)
    return resp


@bp.errorhandler(CSRFError)
def csrf_refused(exc: CSRFError):
    """A form of these pages refused by the CSRF check. On the login page the person is told
    why and gets a fresh form (the generic 400 page only said to reload, which does not help
    when the page is opened over plain HTTP and the session cookie is Secure)."""
    plain_http = not request.is_secure and current_app.config.get("SESSION_COOKIE_SECURE")
    log.warning("%s %s refused by the CSRF check (%s) from %s%s", request.method, request.path, exc.description,
                request.remote_addr,
                "; the page was opened over plain HTTP and the session cookie is Secure (HTTPS only): "
                "open it at HELPDESK_PUBLIC_URL" if plain_http else "")
    if request.endpoint != "auth.login":
        return http_error(exc)
    if plain_http:
        url = str(current_app.config["PUBLIC_URL"]).rstrip("/") + url_for("auth.login")
        flash(_("This helpdesk can only be used over HTTPS, so logging in over plain HTTP does not work. "
                "Please open %(url)s", url=url), "error")
    elif "referrer" in exc.description.lower():
        flash(_("The login was refused because the browser did not confirm that the form came from this "
                "site. Please reload the page and try again."), "error")
    else:
        flash(_("The login form had expired. Please try again."), "error")
    return render_template("auth/login.html", form=LoginForm()), 400


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    return redirect(url_for("auth.login"))


class AccountForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    locale = SelectField(_l("Language"), choices=[])
    current_password = PasswordField(_l("Current password"), validators=[Optional(), Length(max=200)])
    new_password = PasswordField(_l("New password (leave empty to keep)"),
                                 validators=[Optional(), Length(min=10, max=200)])
    confirm = PasswordField(_l("New password again"),
                            validators=[EqualTo("new_password", message=_l("The two new passwords differ."))])


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    """An agent's own name, UI language and password (the current one is asked before a change)."""
    agent = current_user._get_current_object()  # the Agent itself: login_user keeps it
    form = AccountForm(obj=agent) if request.method == "GET" else AccountForm()
    form.locale.choices = [(lang, language_name(lang)) for lang in current_app.config["LANGUAGES"]]
    if request.method == "GET":
        return render_template("auth/account.html", form=form)
    if not form.validate_on_submit():
        return render_template("auth/account.html", form=form), 400
    if form.new_password.data and not agent.check_password(form.current_password.data or ""):
        log.warning("agent %s: password change refused (wrong current password) from %s", agent.id,
                    request.remote_addr)
        form.current_password.errors = [_("The current password is wrong.")]
        return render_template("auth/account.html", form=form), 400
    changes = {k: getattr(form, k).data for k in ("name", "locale") if getattr(agent, k) != getattr(form, k).data}
    agent.name, agent.locale = form.name.data, form.locale.data
    if form.new_password.data:
        agent.set_password(form.new_password.data)
        changes["password"] = "changed"
    if changes:
        audit(agent, "account.update", "agent", agent.id, changes)
    db.session.commit()
    if "password" in changes:
        login_user(agent)  # this session goes on under the new password; the others end
        drop_agent_sockets([agent.id])  # other tabs and devices reconnect, and are refused
    session["lang"] = agent.locale  # the page language follows at once
    flash(_("Your account is saved."), "ok")
    return redirect(url_for(".account"))


@bp.post("/account/availability")
@login_required
def availability():
    """The agent's own availability for automatic assignment: the top bar's switch. Busy, the
    agent gets no new tickets from it; available again, tickets waiting for room may come."""
    agent = current_user._get_current_object()
    wants_json = request.accept_mimetypes.best == "application/json"
    try:
        new = Availability(request.form.get("availability", ""))
    except ValueError:
        log.warning("agent %s: unknown availability %r refused", agent.id, request.form.get("availability"))
        if wants_json:
            return jsonify(error="availability must be one of: " + ", ".join(a.value for a in Availability)), 400
        flash(_("Unknown availability."), "error")
        return redirect(safe_next(request.form.get("next")))
    if new is not agent.availability:
        audit(agent, "account.update", "agent", agent.id, {"availability": [agent.availability.value, new.value]})
        agent.availability = new
        # the agent's other pages show it, the supervisors' dashboards count it
        for room in (events.agent_room(agent.id), events.SUPERVISORS):
            events.publish_to(room, events.AGENT_AVAILABILITY, {"agent_id": agent.id, "availability": new.value},
                              events.AGENT_NS)
        db.session.commit()
        log.info("agent %s is %s", agent.id, new.value)
        if new is Availability.available and not agent.sees_all_inboxes:
            assign.enqueue_waiting(visible_inbox_ids(agent))
    if wants_json:
        return jsonify(availability=agent.availability.value)
    return redirect(safe_next(request.form.get("next")))
