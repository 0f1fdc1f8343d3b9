"""The website chat widget over HTTP: the loader script, the chat frame, uploads.

The loader (``/widget.js``) runs on the customer's site and only draws an
iframe served from here, so the chat's look is isolated from the host page's
CSS and its storage, cookies and scripts belong to the desk's origin. The
conversation itself runs over the ``/widget`` socket (realtime/widget_ns.py).
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, jsonify, make_response, render_template, request, send_file
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy.exc import OperationalError

from channels.base import ChannelError
from channels.chat import ALLOWED_TYPES, MAX_ATTACHMENT_BYTES, MAX_TEXT, check_attachment, clean_origin

from ..config import ROOT
from ..extensions import csrf, db
from ..models import Inbox
from ..realtime.widget_ns import ERRORS, WidgetError, admit, chat_inbox, load_pass, receive, visible_message
from ..services import storage

bp = Blueprint("widget", __name__)
log = logging.getLogger(__name__)

LOADER = ROOT / "static" / "widget" / "loader.js"


def _max_upload() -> int:
    return int(current_app.config.get("WIDGET_MAX_UPLOAD_BYTES", MAX_ATTACHMENT_BYTES))


def _frame_ancestors(inbox: Inbox) -> str:
    """Only the sites the admin listed may embed the chat; none listed means any site. It fails
    closed: an entry that is no origin is dropped (the admin form refuses it, but settings
    written otherwise are read here too), and a list with no valid entry lets no site embed it."""
    listed = (inbox.settings or {}).get("allowed_origins")
    if listed is None or listed == [] or listed == "":
        return "*"
    entries = listed if isinstance(listed, list) else [listed]
    cleaned = [(entry, clean_origin(entry)) for entry in entries]
    origins = [origin for _, origin in cleaned if origin]
    if len(origins) < len(entries):
        log.warning("chat inbox %s: allowed_origins entries that are not origins ignored: %r", inbox.id,
                    [str(entry)[:80] for entry, origin in cleaned if origin is None][:10])
    return " ".join(dict.fromkeys(origins)) if origins else "'none'"


@bp.get("/widget.js")
def loader():
    resp = send_file(LOADER, mimetype="text/javascript", max_age=300)
    # Loaded by <script> from any site: let it be fetched cross-origin.
    resp.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


@bp.get("/widget/frame/<key>")
def frame(key: str):
    inbox = chat_inbox(key)
    if inbox is None:
        log.warning("widget frame for unknown inbox %r", key[:40])
        # A page the loader can hear, so a wrong key leaves no empty box on the customer's site.
        resp = make_response(render_template("widget/unavailable.html"), 404)
        resp.headers["Content-Security-Policy"] = ("default-src 'none'; script-src 'self'; base-uri 'none'; "
                                                   "frame-ancestors *")
        return resp
    langs = current_app.config["LANGUAGES"]
    locale = request.args.get("locale")
    locale = locale if locale in langs else current_app.config["BABEL_DEFAULT_LOCALE"]
    settings = inbox.settings or {}
    with force_locale(locale):
        html = render_template(
            "widget/frame.html",
            locale=locale,
            inbox=inbox,
            title=settings.get("title") or _("Chat with us"),
            greeting=settings.get("greeting") or _("Hello! How can we help you?"),
            config={
                "inbox": inbox.key,
                "locale": locale,
                "maxText": int(settings.get("max_text") or MAX_TEXT),
                "maxUpload": _max_upload(),
                "accept": ",".join(ALLOWED_TYPES),
                "uploadUrl": "/widget/api/upload",
                "attachmentUrl": "/widget/api/attachments/",
                "i18n": _frame_texts(),
            },
        )
    resp = current_app.response_class(html, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; object-src 'none'; "
        f"frame-ancestors {_frame_ancestors(inbox)}"
    )
    resp.headers["Cache-Control"] = "no-store"
    # The frame is embedded on other sites: no referrer details travel to them.
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


@bp.after_app_request
def _allow_framing(resp):
    """The app sends X-Frame-Options: DENY everywhere; the chat frame relies on its own
    frame-ancestors instead. Registered before the app's header hook, so it runs after it."""
    if request.endpoint == "widget.frame":  # also its 404 page for an unknown key
        resp.headers.pop("X-Frame-Options", None)
    return resp


def _frame_texts() -> dict:
    errors = {
        "unknown_inbox": _("This chat is not available."),
        "invalid_identity": _("We could not confirm your login. Please reload the page."),
        "rate_limited": _("You are sending messages too fast. Please wait a moment."),
        "too_long": _("The message is too long."),
        "empty": _("Please write a message."),
        "bad_payload": _("The message could not be sent."),
        "bad_client_id": _("The message could not be sent."),
        "bad_visitor": _("The message could not be sent."),
        "bad_email": _("Please enter a valid email address."),
        "bad_name": _("Please enter your name."),
        "email_required": _("Please leave your email address so we can answer you."),
        "prechat_required": _("Please enter your name and email first."),
        "not_connected": _("Not connected. Please try again."),
        "empty_file": _("The file is empty."),
        "file_too_large": _("The file is too large (max. %(mb)s MB).", mb=_max_upload() // (1024 * 1024)),
        "file_type_not_allowed": _("Only images (PNG, JPEG, GIF, WebP) and PDF files can be sent."),
        "file_type_mismatch": _("The file name does not match its contents."),
        "no_file": _("Choose a file to send."),
        "unavailable": _("The chat is temporarily unavailable."),
        "unauthorized": _("Your chat session expired. Please reload the page."),
    }
    return {
        "open": _("Open chat"),
        "close": _("Close chat"),
        "send": _("Send"),
        "placeholder": _("Type a message…"),
        "attach": _("Attach a file"),
        "you": _("You"),
        "agent": _("Support"),
        "typing": _("%(name)s is typing…"),
        "with_agent": _("You are chatting with %(name)s"),
        "offline": _("Nobody is online right now. Leave your email and we will answer by email."),
        "online": _("We are online."),
        "name": _("Your name"),
        "start": _("Start chat"),
        "prechat_intro": _("Please tell us who you are before we start."),
        "connecting": _("Connecting…"),
        "download": _("Download"),
        "uploading": _("Sending file…"),
        "survey_link": _("Answer on the survey page"),
        "errors": errors,
    }


# ---- JSON API used by the frame (authenticated by the signed visitor pass) -----------

def _visitor_or_401():
    visitor = load_pass(request.headers.get("X-Widget-Pass"))
    if visitor is None:
        log.warning("widget API call without a valid pass from %s", request.remote_addr)
        abort(make_response(jsonify(ok=False, error="unauthorized", message="missing or invalid widget pass"), 401))
    return visitor


@bp.post("/widget/api/upload")
@csrf.exempt  # no cookie auth here: the signed pass in a header is the credential
def upload():
    visitor = _visitor_or_401()
    inbox = db.session.get(Inbox, visitor.inbox_id)
    if inbox is None or not inbox.active or inbox.kind != "chat":
        return jsonify(ok=False, error="unknown_inbox", message=ERRORS["unknown_inbox"]), 404
    limit = _max_upload()
    if (request.content_length or 0) > limit + 64 * 1024:
        log.warning("widget upload of %s bytes refused on inbox %s", request.content_length, inbox.id)
        return jsonify(ok=False, error="file_too_large", message=ERRORS["file_too_large"]), 413
    file = request.files.get("file")
    if file is None or not file.filename:
        return jsonify(ok=False, error="no_file", message="no file in the request"), 400
    data = file.stream.read(limit + 1)
    try:
        attachment = check_attachment(file.filename, data, limit)
    except ChannelError as exc:
        code = str(exc)
        log.warning("widget upload %r refused on inbox %s: %s", file.filename[:80], inbox.id, code)
        status = 413 if code == "file_too_large" else 415 if code.startswith("file_type") else 400
        return jsonify(ok=False, error=code, message=ERRORS.get(code, code)), status
    data = {"text": request.form.get("text", ""), "client_id": request.form.get("client_id"),
            "email": request.form.get("email")}
    try:
        # the same checks as a line of text: a file is no way around the pre-chat form or the email
        online = admit(inbox, visitor, data)
        message = receive(inbox, visitor, {**data, "offline": not online}, (attachment,))
    except WidgetError as exc:
        return jsonify(exc.as_dict()), 429 if exc.code == "rate_limited" else 400
    except OperationalError:
        db.session.rollback()
        log.error("database unavailable; widget upload on inbox %s answered 503", inbox.id)
        return jsonify(ok=False, error="unavailable", message=ERRORS["unavailable"]), 503
    return jsonify(ok=True, message=message), 201


@bp.get("/widget/api/attachments/<int:message_id>/<int:index>")
def attachment(message_id: int, index: int):
    visitor = _visitor_or_401()
    msg = visible_message(visitor, message_id)
    atts = (msg.attachments or []) if msg else []
    if msg is None or index >= len(atts) or not atts[index].get("stored"):
        return jsonify(ok=False, error="not_found"), 404
    path = storage.stored_path(atts[index]["stored"])
    if path is None:
        return jsonify(ok=False, error="not_found"), 404
    return send_file(path, mimetype=atts[index].get("content_type") or "application/octet-stream",
                     as_attachment=True, download_name=atts[index].get("filename") or path.name)
