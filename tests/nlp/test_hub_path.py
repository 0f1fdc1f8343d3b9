"""A hub-style Japanese BERT (fugashi + unidic-lite tokenizer) loads through the same path."""
from __future__ import annotations

import pytest

from nlp.sentiment import load_model

TEXTS = ["ありがとうございました、助かりました！", "注文番号を教えてください", "返事がない。いい加減にしてください"]


def _build_tiny_bert(path, id2label):
    """What a user gets from the hub, made locally: BertJapaneseTokenizer + random weights."""
    import fugashi
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertJapaneseTokenizer

    words = sorted({w.surface for t in TEXTS for w in fugashi.Tagger()(t)})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertJapaneseTokenizer(str(vocab_file), word_tokenizer_type="mecab",
                                mecab_kwargs={"mecab_dic": "unidic_lite"})
    tok.save_pretrained(str(path))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=37, max_position_embeddings=64, num_labels=len(id2label),
                     id2label=id2label, label2id={v: k for k, v in id2label.items()})
    BertForSequenceClassification(cfg).save_pretrained(str(path))


@pytest.mark.parametrize(
    "id2label",
    [{0: "NEGATIVE", 1: "NEUTRAL", 2: "POSITIVE"}, {0: "LABEL_0", 1: "LABEL_1"}],
    ids=["three-named", "two-bare"],
)
def test_tiny_japanese_bert_from_directory(tmp_path, monkeypatch, id2label):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _build_tiny_bert(tmp_path, id2label)
    model = load_model(str(tmp_path))
    assert type(model.tokenizer).__name__.startswith("BertJapanese")
    out = model.predict(TEXTS + ["", TEXTS[2] * 40])  # the last is over its 64 positions: read in windows
    assert len(out) == 5
    for p in out:
        assert p.label in ("negative", "neutral", "positive")
        assert sum(p.probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert p.model == f"{tmp_path.name}@{model.version}"
    if len(id2label) == 2:
        assert all(p.probs["neutral"] == 0.0 for p in out[:3])


def test_setting_picks_the_model(tmp_path, monkeypatch):
    from nlp.sentiment import default_model_path

    monkeypatch.setenv("HELPDESK_SENTIMENT_MODEL", str(tmp_path))
    assert default_model_path() == str(tmp_path)
