"""Background jobs. Each takes ids (never ORM objects) and is safe to run twice."""

from __future__ import annotations

from .jobs import job


@job
def label_sentiment() -> int:
    from .services.sentiment import label_pending

    return label_pending()


@job
def send_message(message_id: int) -> None:
    from .services.replies import deliver

    deliver(message_id)
