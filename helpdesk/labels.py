"""What a person reads for the channel codes the desk stores: one table for templates,
the desk's JavaScript (through agent/_live.html) and the supervisor reports."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

CHANNEL_LABELS = {
    "email": _l("Email"), "chat": _l("Chat"), "line": "LINE", "messenger": "Messenger",
    "social": _l("Social"), "api": "API", "test": _l("Test"),
}


# Each language named in itself, so a reader finds their own whatever the page's language is.
LANGUAGE_NAMES = {"ja": "日本語", "en": "English"}


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def channel_label(kind: str) -> str:
    """The label of a channel kind; an unknown kind (a plug-in channel) shows its code."""
    return str(CHANNEL_LABELS.get(kind, kind))


def channel_labels() -> dict[str, str]:
    return {kind: str(label) for kind, label in CHANNEL_LABELS.items()}
