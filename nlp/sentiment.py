"""Japanese sentiment for the desk: one loading path for the shipped model and hub models.

Every model goes through transformers' ``AutoTokenizer`` +
``AutoModelForSequenceClassification``, so pointing ``HELPDESK_SENTIMENT_MODEL`` at
another directory or hub id changes nothing else. Whatever labels a model has are
folded into negative/neutral/positive (+ anger) through ``config.id2label``.
"""
from __future__ import annotations

import gc
import hashlib
import inspect
import json
import logging
import multiprocessing
import os
import re
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

LABELS = ("negative", "neutral", "positive")
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "ja-sentiment"
ENV_MODEL = "HELPDESK_SENTIMENT_MODEL"
ENV_THREADS = "HELPDESK_SENTIMENT_THREADS"
# Without an anger class, anger_prob climbs from 0 at p_neg = 0.5 to 1 at p_neg = 1.
DERIVED_ANGER_FROM = 0.5
# A text longer than the model takes is read in overlapping windows, at most this many.
MAX_WINDOWS = 8
# Characters of a text's start and of its end that are tokenised: far more than any model's
# tokens, so the cut is made on tokens, without tokenising a whole 100,000-character email.
MAX_INPUT_CHARS = 8_000

# After a model fails to load, callers get the same error without a new attempt for this long:
# every incoming message queues labelling, and each attempt costs seconds (and a process).
RETRY_LOAD_AFTER = 60.0

log = logging.getLogger(__name__)
_cache: dict[str, "SentimentModel"] = {}
_failed: dict[tuple[str, bool], tuple[float, "ModelLoadError"]] = {}
_cache_lock = threading.Lock()
_processes: dict[str, "ModelProcess"] = {}
_in_model_process = False  # set in ModelProcess's child


class ModelLoadError(OSError):
    """The configured model does not load: a missing or broken directory, an unknown hub id."""


def _looks_like_path(name: str) -> bool:
    """A hub id is ``name`` or ``owner/name``; anything else is meant as a directory."""
    return (os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name or name.count("/") > 1
            or Path(name).exists() or not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name))


@dataclass(frozen=True)
class Prediction:
    """One labelled message, as stored next to the message (with ``model``)."""

    label: str
    probs: dict
    score: float
    anger: bool
    anger_prob: float
    model: str

    def as_dict(self) -> dict:
        """The JSON shape used by the CLI and the API."""
        return {"label": self.label, "score": self.score, "probs": dict(self.probs),
                "anger": self.anger, "anger_prob": self.anger_prob, "model": self.model}


@dataclass(frozen=True)
class LabelMap:
    """How each class index of a model contributes to our three labels and to anger."""

    sentiment: tuple[str, ...]  # per class index: negative / neutral / positive
    anger: tuple[bool, ...]  # per class index: is this an anger class
    has_neutral: bool = field(init=False)
    has_anger: bool = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "has_neutral", "neutral" in self.sentiment)
        object.__setattr__(self, "has_anger", any(self.anger))


_NEG = ("neg", "ネガ", "悲", "sad", "fear", "disgust", "bad", "否定", "負")
_POS = ("pos", "ポジ", "喜", "joy", "happ", "good", "安心", "relief", "love", "肯定", "正")
_NEU = ("neu", "平静", "中立", "none", "other", "calm", "surprise", "mixed")
_ANGER = ("anger", "angry", "怒")


def label_map_from_config(id2label: dict, num_labels: int | None = None) -> LabelMap:
    """Fold a model's own label names into ours.

    Understands names in any case (``positive``, ``NEGATIVE``, ``Neutral``),
    emotion sets (anger/sadness/joy/...), star ratings (``1 star`` .. ``5 stars``)
    and bare ``LABEL_n`` (2 classes = negative/positive, 3 = negative/neutral/positive,
    5 = star ratings), which is what a model trained without names reports.
    """
    n = num_labels or len(id2label)
    names = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(n)]
    sentiment: list[str | None] = []
    anger: list[bool] = []
    for name in names:
        low = name.lower().strip()
        stars = re.fullmatch(r"(\d)\s*(stars?|つ星|点)?", low)
        if any(k in low for k in _ANGER):
            sentiment.append("negative")
            anger.append(True)
            continue
        anger.append(False)
        if stars and n == 5 and stars.group(2):
            s = int(stars.group(1))
            sentiment.append("negative" if s <= 2 else "neutral" if s == 3 else "positive")
        elif any(k in low for k in _NEU):
            sentiment.append("neutral")
        elif any(k in low for k in _NEG):
            sentiment.append("negative")
        elif any(k in low for k in _POS):
            sentiment.append("positive")
        else:
            sentiment.append(None)
    if None in sentiment:
        by_count = {2: ("negative", "positive"), 3: ("negative", "neutral", "positive"),
                    5: ("negative", "negative", "neutral", "positive", "positive")}
        if not all(re.fullmatch(r"(label_)?\d+", x.lower()) or x.lower().startswith(("1", "2", "3", "4", "5"))
                   for x in names) or n not in by_count:
            raise ValueError(f"cannot map labels {names} to negative/neutral/positive")
        sentiment = list(by_count[n])
    return LabelMap(tuple(sentiment), tuple(anger))


def _cap_threads() -> None:
    """Keep inference from taking every core: the web app and workers share the box.

    By default one core is left to the rest of the process (on 2 cores, the embedded desk
    served 50 instead of 34 msgs/s with labelling on, p99 439 instead of 598 ms)."""
    import torch

    want = int(os.environ.get(ENV_THREADS, "0") or 0) or max(1, min(4, (os.cpu_count() or 1) - 1))
    if torch.get_num_threads() > want:
        torch.set_num_threads(want)


def _version_of(path: Path | None, config) -> str:
    """A stable version string: ours is in config.json; otherwise a hash of what was loaded."""
    explicit = getattr(config, "helpdesk_version", None)
    if explicit:
        return str(explicit)
    commit = getattr(config, "_commit_hash", None)
    if commit:
        return str(commit)[:12]
    h = hashlib.sha256()
    if path is not None and path.is_dir():
        for f in sorted(path.iterdir()):
            if f.is_file():
                h.update(f.name.encode())
                h.update(str(f.stat().st_size).encode())
        cfg = path / "config.json"
        if cfg.exists():
            h.update(cfg.read_bytes())
    else:
        h.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


class SentimentModel:
    """A loaded classifier plus everything needed to turn its logits into Predictions."""

    def __init__(self, name_or_path: str):
        import torch
        import transformers
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        _cap_threads()
        local = Path(name_or_path).expanduser()
        is_local = local.is_dir()
        hint = f"{ENV_MODEL} takes a model directory or a Hugging Face hub id"
        if not is_local and _looks_like_path(name_or_path):
            what = "a file, not a model directory" if local.exists() else "no such directory"
            raise ModelLoadError(f"sentiment model {name_or_path!r}: {what} ({hint})")
        if is_local and not (local / "config.json").is_file():
            raise ModelLoadError(f"sentiment model {name_or_path!r}: no config.json in the directory, "
                                 f"so it holds no model ({hint})")
        # A local directory must never trigger a download; a hub id obeys HF_HUB_OFFLINE.
        kwargs = {"local_files_only": True} if is_local else {}
        if is_local:  # a progress bar in the desk's log for reading a local file (a download keeps the hub's)
            transformers.utils.logging.disable_progress_bar()
        where = "directory" if is_local else "hub id"
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(local) if is_local else name_or_path, **kwargs)
            # fp32 whatever the checkpoint holds: half precision is slow on CPUs.
            # (transformers 5 calls the argument dtype, 4.x torch_dtype.)
            dtype_arg = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
            self.model = AutoModelForSequenceClassification.from_pretrained(
                str(local) if is_local else name_or_path, **{dtype_arg: torch.float32}, **kwargs
            ).eval()
            cfg = self.model.config
            self.labels = label_map_from_config(cfg.id2label, cfg.num_labels)
        except Exception as exc:
            detail = " ".join(str(exc).split())[:500]
            raise ModelLoadError(f"sentiment model {name_or_path!r} ({where}) does not load: "
                                 f"{type(exc).__name__}: {detail}") from exc
        self.name = str(getattr(cfg, "helpdesk_name", None) or (local.name if is_local else name_or_path))
        self.version = _version_of(local if is_local else None, cfg)
        limit = min(getattr(self.tokenizer, "model_max_length", 512) or 512,
                    getattr(cfg, "max_position_embeddings", 512) or 512, 512)
        self.max_length = int(getattr(cfg, "helpdesk_max_length", None) or limit)
        self._lock = threading.Lock()
        idx = {lab: [i for i, s in enumerate(self.labels.sentiment) if s == lab] for lab in LABELS}
        self._index = idx
        self._anger_idx = [i for i, a in enumerate(self.labels.anger) if a]
        # Some tokenizers emit inputs (token_type_ids) that some architectures do not take.
        self._accepts = set(inspect.signature(self.model.forward).parameters)

    @property
    def tag(self) -> str:
        """``name@version``: what is stored next to each label."""
        return f"{self.name}@{self.version}"

    def predict(self, texts: list[str], batch_size: int = 32) -> list[Prediction]:
        """Label many texts at once; batches are built from similar lengths to cut padding."""
        import torch

        texts = list(texts)
        out: list[Prediction | None] = [None] * len(texts)
        todo = []
        for i, t in enumerate(texts):
            if t is None or not str(t).strip():
                out[i] = self._empty()
            else:
                todo.append(i)
        todo.sort(key=lambda i: len(texts[i]))
        batch_size = max(1, int(batch_size))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            # Fast tokenizers keep padding/truncation settings as state: tokenise under the lock too.
            with self._lock, torch.inference_mode():
                windows = self._windows([model_input(texts[i], self.max_length) for i in chunk])
                inputs = self._pad([w for text_windows in windows for w in text_windows])
                logits = self.model(**inputs).logits.float()
            probs = torch.softmax(logits, dim=-1).tolist()
            at = 0
            for i, text_windows in zip(chunk, windows):
                mine = [self._to_prediction(p) for p in probs[at : at + len(text_windows)]]
                at += len(text_windows)
                # A long text is judged by its most opinionated part: one angry paragraph in a
                # long, factual email is what the desk must see.
                out[i] = max(mine, key=lambda pr: 1.0 - pr.probs["neutral"]) if len(mine) > 1 else mine[0]
        return out  # type: ignore[return-value]

    def _windows(self, texts: list[str]) -> list[list[list[int]]]:
        """Token ids of each text: one window, or for a text over ``max_length`` several
        overlapping windows (at most ``MAX_WINDOWS``: the first and the last ones).

        Plain truncation kept only the opening of a long email, mostly greeting and order
        details, and dropped its closing 「もう二度と利用しません。最悪です。」.
        """
        enc = self.tokenizer(texts, truncation=False, return_special_tokens_mask=True, verbose=False)
        out = []
        for ids, special in zip(enc["input_ids"], enc["special_tokens_mask"]):
            if len(ids) <= self.max_length:
                out.append([ids])
                continue
            lead = next((n for n, s in enumerate(special) if not s), 0)
            trail = next((n for n, s in enumerate(reversed(special)) if not s), 0)
            room = max(1, self.max_length - lead - trail)
            body = ids[lead : len(ids) - trail]
            step = max(1, room // 2)
            starts = list(range(0, max(1, len(body) - room + step), step))
            starts[-1] = min(starts[-1], max(0, len(body) - room))  # the last window ends at the end
            if len(starts) > MAX_WINDOWS:
                starts = starts[: MAX_WINDOWS // 2] + starts[-(MAX_WINDOWS - MAX_WINDOWS // 2):]
            out.append([ids[:lead] + body[s : s + room] + ids[len(ids) - trail :] for s in starts])
        return out

    def _pad(self, rows: list[list[int]]) -> dict:
        import torch

        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        batch = {"input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
                 "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])}
        if "token_type_ids" in self._accepts:
            batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
        return {k: v for k, v in batch.items() if k in self._accepts}

    def _empty(self) -> Prediction:
        # Nothing to judge: neutral, so an empty message never raises an alert.
        return Prediction("neutral", {"negative": 0.0, "neutral": 1.0, "positive": 0.0}, 0.0, False, 0.0, self.tag)

    def _to_prediction(self, p: list[float]) -> Prediction:
        probs = {lab: float(sum(p[i] for i in self._index[lab])) for lab in LABELS}
        score = max(-1.0, min(1.0, probs["positive"] - probs["negative"]))
        if self.labels.has_neutral:
            label = max(LABELS, key=lambda k: probs[k])
        else:
            # Two-class models have no neutral: call it neutral when they are unsure.
            label = "neutral" if abs(score) < 0.2 else ("positive" if score > 0 else "negative")
        if self._anger_idx:
            anger_prob = float(sum(p[i] for i in self._anger_idx))
            plain_neg = probs["negative"] - anger_prob
            # Angry when negative wins and the angry kind of negative outweighs the plain kind.
            anger = label == "negative" and anger_prob >= plain_neg
        else:
            anger_prob = max(0.0, (probs["negative"] - DERIVED_ANGER_FROM) / (1 - DERIVED_ANGER_FROM))
            anger = label == "negative" and anger_prob >= 0.5
        return Prediction(label, {k: round(v, 6) for k, v in probs.items()}, round(score, 6),
                          bool(anger), round(anger_prob, 6), self.tag)


def model_input(text: str, max_tokens: int = 512) -> str:
    """What the model reads of a message: its own lines, not the ones it quotes; half-width
    katakana folded (``nlp.text``); of a huge text only its start and end."""
    from .text import fold_halfwidth_kana, strip_quoted

    text = strip_quoted(str(text))
    keep = max(MAX_INPUT_CHARS, max_tokens * 8) // 2
    if len(text) > 2 * keep:
        text = f"{text[:keep]}\n{text[-keep:]}"
    return fold_halfwidth_kana(text)


def default_model_path() -> str:
    """The setting if given, else the model shipped in the package."""
    return os.environ.get(ENV_MODEL) or str(DEFAULT_MODEL_DIR)


def load_model(name_or_path: str | None = None, *, child_process: bool = False) -> SentimentModel | ModelProcess:
    """Load once per path and share: the model is read-only and guarded by its own lock.

    ``child_process``: run it in a child process instead (``ModelProcess``), one per path.
    """
    key = name_or_path or default_model_path()
    cache = _processes if child_process else _cache
    model = cache.get(key)
    if model is not None:
        return model
    with _cache_lock:
        model = cache.get(key)
        if model is None:
            failed = _failed.get((key, child_process))
            if failed and time.monotonic() - failed[0] < RETRY_LOAD_AFTER:
                raise ModelLoadError(str(failed[1]))  # a fresh one: no traceback piling up on a shared object
            try:
                model = ModelProcess(key) if child_process else SentimentModel(key)
            except ModelLoadError as exc:
                _failed[(key, child_process)] = (time.monotonic(), exc)
                if not _in_model_process:  # the parent that asked logs it, once
                    log.error("%s; not tried again for %d s", exc, RETRY_LOAD_AFTER)
                raise
            _failed.pop((key, child_process), None)
            cache[key] = model
            if not child_process:
                # The model lives as long as the process: its objects (and the libraries loaded
                # with it) leave the cyclic collector's reach, whose full passes over them held
                # the GIL for 250 ms and more in a serving process (docs/performance.md).
                gc.freeze()
    return model


class ModelProcessClosed(RuntimeError):
    """The model's process cannot take work: this process is exiting."""


class ModelProcess:
    """The model in a child process, for a process that serves requests beside its labelling.

    The model's Python side (tokeniser, modules, the step between tensor ops) holds the GIL,
    about 5 ms a message, and every request thread of the process waits on it; in a process
    of its own it costs the requests only CPU (docs/performance.md). ``predict``, ``name``,
    ``version`` and ``tag`` are SentimentModel's. The child runs ``niceness`` nicer (Linux):
    labelling can wait while the requests need the cores. If it dies (killed, out of
    memory), the next call starts another; a parent that dies takes its child with it.
    """

    def __init__(self, name_or_path: str, niceness: int = 10):
        self.path = name_or_path
        self.niceness = niceness
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # Loading happens here, so a path that does not load fails in the caller, with the child's error.
        try:
            self.name, self.version = self._call(_child_load, name_or_path)
        except BaseException:
            self.close()
            raise

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"

    def predict(self, texts: list[str], batch_size: int = 32) -> list[Prediction]:
        return self._call(_child_predict, self.path, list(texts), batch_size)

    def pid(self) -> int:
        """The child's process id (starting one if none is running)."""
        return self._call(os.getpid)

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _call(self, fn, *args):
        pool = self._running_pool()
        try:
            return _submit(pool, fn, *args).result()
        except BrokenProcessPool:
            log.warning("the sentiment model's process ended unexpectedly; starting another")
            with self._pool_lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=True)
            return _submit(self._running_pool(), fn, *args).result()  # the new child loads the model first

    def _running_pool(self) -> ProcessPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_child_start, initargs=(self.niceness,))
            return self._pool


def _submit(pool: ProcessPoolExecutor, fn, *args):
    try:
        return pool.submit(fn, *args)
    except RuntimeError as exc:  # concurrent.futures refuses new work once the interpreter is exiting
        raise ModelProcessClosed(f"the sentiment model's process is shut down: {exc}") from None


def _child_start(niceness: int) -> None:
    global _in_model_process
    _in_model_process = True
    if niceness and hasattr(os, "setpriority"):
        # Only ever nicer: it may have inherited a nice thread's priority already.
        os.setpriority(os.PRIO_PROCESS, 0, min(19, max(os.getpriority(os.PRIO_PROCESS, 0), niceness)))
    # The pool's queues do not end when the parent is killed (the child holds both ends of
    # their pipes), but the parent's sentinel does: go with it.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_after, args=(parent,), name="parent-watch", daemon=True).start()


def _exit_after(parent) -> None:
    parent.join()
    os._exit(0)


def _child_load(name_or_path: str) -> tuple[str, str]:
    model = load_model(name_or_path)
    return model.name, model.version


def _child_predict(name_or_path: str, texts: list[str], batch_size: int) -> list[Prediction]:
    return load_model(name_or_path).predict(texts, batch_size)
