"""Read the labelled and unlabelled Japanese text the sentiment model is trained on.

The public sets stay where they are (``../shared/data`` beside the repo, or
``HELPDESK_DATA_DIR``); nothing from them is copied into the project. Splits are
made by hashing a group key (document, dialogue), so a sentence never sits in
train while its neighbours sit in test, and every run gets the same split.
"""
from __future__ import annotations

import csv
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

# Training classes: anger is a kind of negative, kept apart so the model learns it.
CLASSES = ("negative", "neutral", "positive", "anger")
REPO = Path(__file__).resolve().parent.parent
CORPUS_DIR = Path(__file__).resolve().parent / "data" / "corpus"
ASDC_LABELS_DIR = Path(__file__).resolve().parent / "data" / "asdc"

NAIST_MAP = {"怒り": "anger", "悲しみ": "negative", "喜び": "positive", "安心": "positive", "平静": "neutral"}


@dataclass(frozen=True)
class Example:
    text: str
    label: str  # one of CLASSES
    source: str
    split: str  # train / dev / test


def data_root() -> Path:
    """Where the shared public data lives."""
    env = os.environ.get("HELPDESK_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


def hash_split(key: str, dev: int = 10, test: int = 10) -> str:
    bucket = int(hashlib.md5(key.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "test" if bucket < test else "dev" if bucket < test + dev else "train"


def _read_tsv(path: Path):
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)


def load_chabsa(root: Path | None = None, none_as_neutral: int = 900) -> list[Example]:
    """Financial report sentences. 'none' (no opinion) is a formal neutral: only a
    sample is used, so the model does not learn that neutral means 'about money'."""
    path = (root or data_root()) / "chabsa" / "chabsa_sentences.tsv"
    out, nones = [], []
    for row in _read_tsv(path):
        lab, text = row["label"], (row["text"] or "").strip()
        if not text:
            continue
        split = hash_split("chabsa:" + row["doc_id"])
        if lab in ("positive", "negative", "neutral"):
            out.append(Example(text, lab, "chabsa", split))
        elif lab == "none":
            nones.append(Example(text, "neutral", "chabsa", split))
    nones.sort(key=lambda e: hashlib.md5(e.text.encode()).hexdigest())
    return out + nones[:none_as_neutral]


def load_naist(root: Path | None = None) -> list[Example]:
    """Spoken-style persuasion dialogues; strict-majority emotion only."""
    path = (root or data_root()) / "naist_persuasive_emotion" / "persuasive_emotion_utterances.tsv"
    out = []
    for row in _read_tsv(path):
        lab = NAIST_MAP.get(row["majority"])
        text = (row["text"] or "").strip()
        if lab and text:
            split = hash_split(f"naist:{row['domain']}:{row['dialogue']}")
            out.append(Example(text, lab, "naist", split))
    return out


# The corpus is split by industry, never by row: every file is one industry x channel
# written by one person, so a test industry is a topic and vocabulary the model never
# trained on (README of the corpus). The held-out industries cover all five channels
# and both writers.
CORPUS_TEST_INDUSTRIES = frozenset({"travel", "utilities", "clinic", "streaming"})
CORPUS_DEV_INDUSTRIES = frozenset({"education", "railway", "cosmetics"})


def corpus_split_of(file_stem: str) -> str:
    """train / dev / test for a corpus file named ``<writer>_<industry>_<channel>``."""
    parts = file_stem.split("_")
    industry = parts[1] if len(parts) >= 3 else file_stem
    if industry in CORPUS_TEST_INDUSTRIES:
        return "test"
    if industry in CORPUS_DEV_INDUSTRIES:
        return "dev"
    return "train"


def _gold_label(row: dict) -> str | None:
    """A team label row (``label``, ``anger``) as a training class; None when unlabelled."""
    lab = (row.get("label") or "").strip().lower()
    if lab not in ("negative", "neutral", "positive"):
        return None
    if lab == "negative" and str(row.get("anger") or "0").strip() in ("1", "true", "True"):
        return "anger"
    return lab


def load_corpus(corpus_dir: Path = CORPUS_DIR) -> list[Example]:
    """The team's own helpdesk messages (nlp/data/corpus), split by industry."""
    out = []
    if not corpus_dir.is_dir():
        return out
    for path in sorted(corpus_dir.glob("*.tsv")):
        file_split = corpus_split_of(path.stem)
        try:
            rows = list(_read_tsv(path))
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        for row in rows:
            text = (row.get("text") or "").strip()
            lab = _gold_label(row)
            if not text or lab is None:
                continue
            split = file_split
            out.append(Example(text, lab, "corpus:" + path.stem, split))
    return out


def load_asdc(root: Path | None = None, labels_dir: Path = ASDC_LABELS_DIR) -> list[Example]:
    """Customer turns of the accommodation chats, labelled by the team.

    The repo keeps only (dialogue_id, turn, label, anger) in ``nlp/data/asdc/``; the
    text is read from the shared copy of the corpus. ``test.tsv`` is a random sample of
    customer turns kept out of distillation too (real requests, mostly neutral: it
    measures false alarms); ``train.tsv`` mixes random turns with turns an earlier model
    got wrong, and 15% of its dialogues (by hash) are the dev split.
    """
    wanted: dict[tuple[str, str], tuple[str, str]] = {}
    for name in ("train", "test"):
        f = labels_dir / f"{name}.tsv"
        if f.exists():
            for row in _read_tsv(f):
                lab = _gold_label(row)
                if lab is not None:
                    wanted[(row["dialogue_id"], row["turn"])] = (lab, name)
    path = (root or data_root()) / "asdc" / "asdc_utterances.tsv"
    if not wanted or not path.exists():
        return []
    out = []
    for row in _read_tsv(path):
        hit = wanted.get((row["dialogue_id"], row["turn"]))
        text = (row.get("text") or "").strip()
        if hit is None or not text:
            continue
        lab, name = hit
        split = "test" if name == "test" else hash_split("asdc:" + row["dialogue_id"], dev=15, test=0)
        out.append(Example(text, lab, "asdc", split))
    return out


def group_of(ex: Example) -> str:
    """``SOURCE/SPLIT`` of a row, the team corpus's files counted as one source: the keys of
    the training report and of ``python -m nlp evaluate --split``."""
    return f"{'corpus' if ex.source.startswith('corpus:') else ex.source}/{ex.split}"


def load_labelled(root: Path | None = None, corpus_dir: Path = CORPUS_DIR,
                  asdc_dir: Path = ASDC_LABELS_DIR) -> list[Example]:
    return load_chabsa(root) + load_naist(root) + load_corpus(corpus_dir) + load_asdc(root, asdc_dir)


def load_unlabelled(root: Path | None = None, limit: int = 60000, exclude: frozenset[str] = frozenset()) -> list[str]:
    """Chat and review text for distillation: the teacher labels it, the student copies.

    Customer turns of the accommodation chats come first (closest to support
    messages), then agent turns, hotel reviews and everyday sentences. ``exclude``:
    texts held out for evaluation, which the student must not see even unlabelled.
    """
    root = root or data_root()
    users, agents = [], []
    for row in _read_tsv(root / "asdc" / "asdc_utterances.tsv"):
        text = (row.get("text") or "").strip()
        if 2 <= len(text) <= 300 and text not in exclude:
            (users if row.get("speaker") == "user" else agents).append(text)
    reviews = []
    for f in sorted((root / "quasi_reviews" / "data" / "text").rglob("*.txt")):
        reviews.extend(s.strip() for s in f.read_text(encoding="utf-8").splitlines() if s.strip())
    tanaka = []
    tf = root / "tanaka" / "train.ja"
    if tf.exists():
        tanaka = [line.replace(" ", "").strip() for line in tf.read_text(encoding="utf-8").splitlines()]

    def pick(items, n):
        items = sorted(set(items), key=lambda t: hashlib.md5(t.encode()).hexdigest())
        return items[:n]

    n_user = int(limit * 0.6)
    n_agent = int(limit * 0.15)
    n_rev = min(len(reviews), int(limit * 0.1))
    chosen = pick(users, n_user) + pick(agents, n_agent) + pick(reviews, n_rev)
    chosen += pick(tanaka, limit - len(chosen))
    return chosen


def vocabulary_texts(root: Path | None = None, corpus_dir: Path = CORPUS_DIR):
    """Every Japanese text we have, for choosing the pruned vocabulary."""
    root = root or data_root()
    for ex in load_labelled(root, corpus_dir):
        yield ex.text
    for row in _read_tsv(root / "asdc" / "asdc_utterances.tsv"):
        yield row.get("text") or ""
    for row in _read_tsv(root / "naist_persuasive_emotion" / "persuasive_emotion_utterances.tsv"):
        yield row.get("text") or ""
    for row in _read_tsv(root / "chabsa" / "chabsa_sentences.tsv"):
        yield row.get("text") or ""
    for f in sorted((root / "quasi_reviews" / "data" / "text").rglob("*.txt")):
        yield from f.read_text(encoding="utf-8").splitlines()
    for name in ("train.ja", "dev.ja", "test.ja"):
        tf = root / "tanaka" / name
        if tf.exists():
            for line in tf.read_text(encoding="utf-8").splitlines():
                yield line.replace(" ", "")
