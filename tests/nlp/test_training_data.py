"""The training data: the team's ASDC labels join the shared text, held-out rows stay out."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nlp import training_data as td

REPO = Path(__file__).resolve().parents[2]
HEADER = "dialogue_id\tturn\tspeaker\ttext\tsource_file\n"


def _labels(path: Path, rows) -> None:
    path.write_text("dialogue_id\tturn\tlabel\tanger\n" + "".join("\t".join(r) + "\n" for r in rows),
                    encoding="utf-8")


def _shared(root: Path, utterances) -> Path:
    """A stand-in for ../shared/data with only what the loaders open."""
    (root / "asdc").mkdir(parents=True)
    (root / "asdc" / "asdc_utterances.tsv").write_text(
        HEADER + "".join(f"{d}\t{t}\t{s}\t{x}\tf.jsonl\n" for d, t, s, x in utterances), encoding="utf-8")
    (root / "chabsa").mkdir()
    (root / "chabsa" / "chabsa_sentences.tsv").write_text("doc_id\ttext\tlabel\n", encoding="utf-8")
    (root / "naist_persuasive_emotion").mkdir()
    (root / "naist_persuasive_emotion" / "persuasive_emotion_utterances.tsv").write_text(
        "domain\tdialogue\tline\tspeaker\ttext\tlabels\tmajority\tacceptance\n", encoding="utf-8")
    return root


def test_asdc_labels_join_the_shared_text(tmp_path):
    root = _shared(tmp_path / "data", [
        ("d1", "0", "agent", "ご希望はありますか?"),
        ("d1", "1", "user", "はい、それでお願いします"),
        ("d2", "1", "user", "さっきから何度も言ってますよね"),
        ("d3", "0", "user", "ありがとう、助かりました"),
    ])
    labels = tmp_path / "labels"
    labels.mkdir()
    _labels(labels / "train.tsv", [("d2", "1", "negative", "1"), ("d3", "0", "positive", "0"),
                                   ("gone", "9", "neutral", "0")])  # a row the corpus lacks is skipped
    _labels(labels / "test.tsv", [("d1", "1", "neutral", "0")])
    rows = {e.text: e for e in td.load_asdc(root, labels)}
    assert set(rows) == {"はい、それでお願いします", "さっきから何度も言ってますよね", "ありがとう、助かりました"}
    assert rows["はい、それでお願いします"].split == "test"
    assert rows["さっきから何度も言ってますよね"].label == "anger"  # negative + anger 1
    assert rows["ありがとう、助かりました"].label == "positive"
    assert {e.split for e in rows.values() if e.text != "はい、それでお願いします"} <= {"train", "dev"}
    assert all(e.source == "asdc" for e in rows.values())


def test_held_out_text_never_reaches_distillation(tmp_path):
    root = _shared(tmp_path / "data", [("d1", "1", "user", "はい、それでお願いします"),
                                       ("d2", "1", "user", "駅に近いホテルがいいです")])
    assert "はい、それでお願いします" in td.load_unlabelled(root, limit=10)
    kept = td.load_unlabelled(root, limit=10, exclude=frozenset({"はい、それでお願いします"}))
    assert "はい、それでお願いします" not in kept and "駅に近いホテルがいいです" in kept


def test_shipped_asdc_labels_are_well_formed():
    seen: dict[tuple[str, str], str] = {}
    dialogues: dict[str, set[str]] = {"train": set(), "test": set()}
    for name in ("train", "test"):
        with open(td.ASDC_LABELS_DIR / f"{name}.tsv", encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            assert reader.fieldnames == ["dialogue_id", "turn", "label", "anger"]
            for row in reader:
                key = (row["dialogue_id"], row["turn"])
                assert key not in seen, key
                seen[key] = name
                assert row["label"] in ("negative", "neutral", "positive")
                assert row["anger"] in ("0", "1") and (row["anger"] == "0" or row["label"] == "negative")
                dialogues[name].add(row["dialogue_id"])
    assert len([k for k, v in seen.items() if v == "test"]) >= 1000
    assert not dialogues["train"] & dialogues["test"]  # no dialogue straddles the split


def test_evaluate_a_held_out_split_by_name(tmp_path):
    with open(td.ASDC_LABELS_DIR / "test.tsv", encoding="utf-8") as f:
        first = [line.rstrip("\n").split("\t") for line in list(f)[1:4]]
    texts = ["はい、それでお願いします", "駅に近いホテルを探しています", "朝食は不要です"]
    root = _shared(tmp_path / "data", [(d, t, "user", x) for (d, t, _, _), x in zip(first, texts)])
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), HELPDESK_DATA_DIR=str(root))
    env.pop("HELPDESK_SENTIMENT_MODEL", None)
    run = lambda *a: subprocess.run([sys.executable, "-m", "nlp", "evaluate", *a], capture_output=True,  # noqa: E731
                                    text=True, cwd=REPO, env=env, timeout=120, check=False)
    res = run("--split", "asdc/test", "--json", "--no-baselines")
    assert res.returncode == 0, res.stderr
    (ours,) = json.loads(res.stdout).values()
    assert sum(map(sum, ours["confusion"]["matrix"])) == 3
    bad = run("--split", "asdc/train")
    assert bad.returncode != 0 and "not held out" in bad.stderr


@pytest.mark.parametrize("source", ["naist", "asdc"])
def test_source_weights(source):
    from nlp.train import TrainConfig, _weights

    cfg = TrainConfig(naist_weight=0.5, asdc_repeat=2.0, corpus_repeat=3)
    exs = [td.Example("a", "neutral", source, "train"), td.Example("b", "neutral", "chabsa", "train"),
           td.Example("c", "neutral", "corpus:a_x_chat", "train")]
    w = _weights(exs, cfg)
    assert w[1] == 1.0 and w[2] == 3.0
    assert w[0] == (0.5 if source == "naist" else 2.0)
