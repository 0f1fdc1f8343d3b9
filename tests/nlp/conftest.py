"""The shipped model, loaded once for the tests that predict with it, with no network."""
from __future__ import annotations

import pytest

from nlp.sentiment import load_model


@pytest.fixture(scope="session")
def model():
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.delenv("HELPDESK_SENTIMENT_MODEL", raising=False)
    try:
        yield load_model()
    finally:
        mp.undo()
