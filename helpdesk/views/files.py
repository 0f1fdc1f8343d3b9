"""Files agents sent to customers, behind signed, expiring links (``/files/<token>/<name>``).

Chat visitors, LINE, Messenger and the other text channels get a link instead of the file.
The token (services/storage.link_token) is the only credential: it names one attachment of
one sent message, cannot be guessed or altered, and expires. The file is always a download,
with its own type only for images and PDF (storage.served_type), never a page.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, request

from ..extensions import db
from ..models import Direction, Message
from ..services import storage

bp = Blueprint("files", __name__)
log = logging.getLogger(__name__)


@bp.get("/files/<token>")
@bp.get("/files/<token>/<name>")
def download(token: str, name: str = ""):
    try:
        message_id, index = storage.load_link_token(token)
    except storage.LinkError as exc:
        log.warning("file link refused (%s) from %s", exc, request.remote_addr)
        abort(410 if str(exc) == "expired" else 404)  # an old link says so; a forged one learns nothing
    msg = db.session.get(Message, message_id)
    # Notes never leave the desk, so no link to their files is ever valid.
    atts = (msg.attachments or []) if msg is not None and msg.direction is Direction.outbound else []
    resp = storage.download(atts[index]) if 0 <= index < len(atts) else None
    if resp is None:
        log.warning("file link to message %s attachment %s: no such file", message_id, index)
        abort(404)
    resp.headers["Cache-Control"] = "private, max-age=300"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Robots-Tag"] = "noindex"
    return resp
