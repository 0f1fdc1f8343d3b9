"""Channel adapters, one module per provider, registered by kind (see base.py)."""

from __future__ import annotations

import importlib
import pkgutil

from .base import (  # noqa: F401
    Adapter,
    Attachment,
    ChannelError,
    Inbound,
    Outbound,
    SendResult,
    StatusUpdate,
    TransientSendError,
    adapter_class,
    kinds,
    register,
)

_loaded = False


def load_all() -> None:
    """Import every adapter module once so each registers itself."""
    global _loaded
    if _loaded:
        return
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "base" and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    _loaded = True


def get_adapter(inbox) -> Adapter:
    """The adapter for an inbox row, carrying that inbox's settings and secrets."""
    return adapter_class(inbox.kind)(inbox.settings, inbox.secrets)
