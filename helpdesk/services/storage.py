"""Attachment files: stored under UPLOAD_DIR by content hash, served to agents as downloads,
and to customers through signed, expiring links (``/files/<token>/<name>``) for the
channels that cannot carry the file itself (chat, LINE, Messenger, social, API)."""

from __future__ import annotations

import hashlib
import mimetypes
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Response, current_app, send_file
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from channels.base import Attachment

_SAFE = re.compile(r"[^\w.\-]+", re.UNICODE)
# The only types a browser gets with their own Content-Type: they cannot run script. Everything
# else (HTML, SVG, XML, text...) is served as application/octet-stream, always as a download.
INLINE_SAFE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"})
# Long enough for a customer to open a LINE image or an emailed chat link days later.
FILE_LINK_MAX_AGE_DAYS = 7


def upload_dir() -> Path:
    path = Path(current_app.config["UPLOAD_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_attachment(att: Attachment) -> dict[str, Any]:
    """Keep the bytes (if the adapter fetched them) and return the row's JSON entry."""
    entry: dict[str, Any] = {
        "filename": att.filename[:200],
        "content_type": att.content_type or mimetypes.guess_type(att.filename)[0] or "application/octet-stream",
        "size": att.size or (len(att.data) if att.data else 0),
        "url": att.url,
    }
    if att.data is not None:
        digest = hashlib.sha256(att.data).hexdigest()
        ext = Path(_SAFE.sub("_", att.filename)).suffix[:10]
        name = f"{digest}{ext}"
        target = upload_dir() / name
        if not target.exists():
            target.write_bytes(att.data)
        entry["stored"] = name
        entry["url"] = None
    return entry


def stored_path(name: str) -> Path | None:
    """The file for a stored name, refusing anything that is not a plain stored name."""
    if not re.fullmatch(r"[0-9a-f]{64}(\.[\w\-]{1,9})?", name):
        return None
    path = upload_dir() / name
    return path if path.is_file() else None


def served_type(content_type: str | None) -> str:
    """The Content-Type a stored file is served with: its own for images and PDF only."""
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    return ctype if ctype in INLINE_SAFE_TYPES else "application/octet-stream"


def download(entry: dict[str, Any]) -> Response | None:
    """A stored attachment as a download (never rendered inline), or None if it is gone."""
    path = stored_path(str(entry.get("stored") or ""))
    if path is None:
        return None
    resp = send_file(path, mimetype=served_type(entry.get("content_type")), as_attachment=True,
                     download_name=entry.get("filename") or path.name)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


# ---- signed links for customers ------------------------------------------------------------

class LinkError(ValueError):
    """A file link that is forged, tampered with (``invalid``) or too old (``expired``)."""


def _link_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="helpdesk.files")


def link_max_age_s() -> int:
    return int(current_app.config.get("FILE_LINK_MAX_AGE_DAYS", FILE_LINK_MAX_AGE_DAYS) * 86400)


def link_token(message_id: int, index: int) -> str:
    return _link_serializer().dumps({"m": message_id, "i": index})


def load_link_token(token: str) -> tuple[int, int]:
    """(message id, attachment index) of a link; raises LinkError(invalid|expired)."""
    if not isinstance(token, str) or len(token) > 500:
        raise LinkError("invalid")
    try:
        data = _link_serializer().loads(token, max_age=link_max_age_s())
    except SignatureExpired:
        raise LinkError("expired") from None
    except BadSignature:
        raise LinkError("invalid") from None
    if not (isinstance(data, dict) and isinstance(data.get("m"), int) and isinstance(data.get("i"), int)):
        raise LinkError("invalid")
    return data["m"], data["i"]


def file_url(message_id: int, index: int, filename: str) -> str:
    """The public link to one attachment of a sent message, under HELPDESK_PUBLIC_URL.

    Built by hand, not url_for: sends run in jobs with no request. The file name after the
    token is for people and providers (Messenger names the file after the URL's last segment);
    the view ignores it."""
    base = str(current_app.config["PUBLIC_URL"]).rstrip("/")
    url = f"{base}/files/{link_token(message_id, index)}"
    name = quote(filename or "file", safe="")
    return f"{url}/{name}" if len(url) + len(name) < 1000 else url
