"""The desk's labelling service around the model: backfill, and a model that does not load."""
from __future__ import annotations

import logging

from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import Message
from helpdesk.services import sentiment
from helpdesk.services.ingest import ingest
from tests import factories as f


def test_backfill_all_relabels_messages_of_the_current_model_too(app):
    """`flask backfill-sentiment --all` passes "": it used to mean "the current model", a no-op."""
    ingest(f.inbox(), f.inbound(text="最高の対応でした"))
    assert db.session.scalar(select(Message.sentiment_model)) == sentiment.model().tag
    assert sentiment.backfill() == 0
    assert sentiment.backfill("") == 1


def test_a_model_that_does_not_load_leaves_messages_pending_with_a_log_line(app, tmp_path, caplog):
    app.config["SENTIMENT_ENABLED"] = False
    msg = ingest(f.inbox(), f.inbound(text="注文番号を教えてください")).message
    app.config["SENTIMENT_ENABLED"] = True
    app.config["SENTIMENT_MODEL"] = str(tmp_path / "missing-model")
    with caplog.at_level(logging.DEBUG):
        assert sentiment.label_pending() == 0
        assert sentiment.label_pending() == 0  # the next message's run: no second attempt
    assert caplog.text.count("no such directory") >= 1
    assert [r.levelname for r in caplog.records if r.name == "nlp.sentiment"] == ["ERROR"]
    assert "Traceback" not in caplog.text
    db.session.refresh(msg)
    assert msg.sentiment_label is None  # pending, not lost
