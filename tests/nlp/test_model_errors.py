"""A missing or broken model gives one clear error and a log line, not a retry per message."""
from __future__ import annotations

import logging

import pytest

from nlp import sentiment as nlp_sentiment
from nlp.sentiment import DEFAULT_MODEL_DIR, ModelLoadError, SentimentModel, load_model


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # read once at import, by then long done: without this the hub id below waits out the
    # network's timeouts (47 s on a machine whose DNS does not answer)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _message(path) -> str:
    with pytest.raises(ModelLoadError) as err:
        SentimentModel(str(path))
    return str(err.value)


def test_a_missing_directory_says_so(tmp_path):
    # It used to be taken for a hub id: "Repo id must be in the form 'repo_name' or ...".
    msg = _message(tmp_path / "no-such-model")
    assert "no such directory" in msg and "HELPDESK_SENTIMENT_MODEL" in msg


def test_a_file_is_not_a_model_directory():
    assert "a file, not a model directory" in _message(DEFAULT_MODEL_DIR / "config.json")


def test_an_empty_directory_says_it_holds_no_model(tmp_path):
    # It used to say "Couldn't instantiate the backend tokenizer ... install sentencepiece".
    assert "no config.json" in _message(tmp_path)


def test_broken_weights_name_the_directory(tmp_path):
    for f in DEFAULT_MODEL_DIR.iterdir():
        if f.name != "model.safetensors":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "model.safetensors").write_bytes(b"not a model")
    msg = _message(tmp_path)
    assert str(tmp_path) in msg and "does not load" in msg


def test_a_hub_id_still_goes_to_the_hub():
    """A user with network gives a hub id: it is not refused as a missing directory (offline
    here, so the hub's own error comes back, wrapped)."""
    msg = _message("example-org/bert-japanese-sentiment")
    assert "(hub id)" in msg and "no such directory" not in msg


def test_a_failed_load_is_not_retried_for_every_message(tmp_path, monkeypatch, caplog):
    calls = []
    real = nlp_sentiment.SentimentModel

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(nlp_sentiment, "SentimentModel", counting)
    missing = str(tmp_path / "gone")
    with caplog.at_level(logging.ERROR, logger="nlp.sentiment"):
        for _ in range(3):
            with pytest.raises(ModelLoadError):
                load_model(missing)
    assert len(calls) == 1
    assert caplog.text.count("no such directory") == 1
    monkeypatch.setattr(nlp_sentiment, "RETRY_LOAD_AFTER", 0.0)
    with pytest.raises(ModelLoadError):
        load_model(missing)
    assert len(calls) == 2
