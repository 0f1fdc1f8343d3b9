"""Attachment files: stored under UPLOAD_DIR by content hash, served to agents."""

from __future__ import annotations

import hashlib
import mimetypes
import re
from pathlib import Path
from typing import Any

from flask import current_app

from channels.base import Attachment

_SAFE = re.compile(r"[^\w.\-]+", re.UNICODE)


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
