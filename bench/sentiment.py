"""Sentiment speed on this machine: the shipped model beside a BERT-base-size model and asari.

Run: ``python bench/sentiment.py [--threads 2] [--messages 512]``

A benchmark, not a test: it prints numbers. All contenders go through the same
``SentimentModel.predict`` path (tokenisation included) on the same messages in
the same run, so their ratios hold even when the machine is busy.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MESSAGES = [
    "注文した商品がまだ届きません。",
    "ありがとうございました、助かりました！",
    "パスワードを忘れてしまいました",
    "返金はいつ頃になりますか？",
    "何度も問い合わせているのに返事がない。いい加減にしてください",
    "領収書の発行をお願いします",
    "アプリが起動しなくなりました。再インストールしても同じです。",
    "とても丁寧に対応していただき感謝しています",
    "配送先の住所を変更したいのですが",
    "請求額が間違っていると思います。確認してください。",
    "了解です",
    "担当の方の説明がわかりやすかったです",
    "ログインするとエラーが出ます",
    "解約の手続きを教えてください",
    "二重に引き落とされています。すぐに返金してください！",
    "お世話になっております。先日お願いした件、その後いかがでしょうか。",
]
SINGLE = "注文番号を教えてください"


def _time_batched(predict, texts, batch_size: int) -> float:
    predict(texts[: batch_size * 2], batch_size)  # warm-up
    t0 = time.perf_counter()
    predict(texts, batch_size)
    return len(texts) / (time.perf_counter() - t0)


def _time_single(predict, repeat: int) -> float:
    for _ in range(5):
        predict([SINGLE], 1)
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        predict([SINGLE], 1)
        runs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(runs)


def _bert_base_dir(tmp: str, tokenizer_dir: Path) -> str:
    """A BertConfig-default (12 x 768) classifier with random weights and our tokenizer."""
    import shutil

    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(num_labels=3, id2label={0: "negative", 1: "neutral", 2: "positive"},
                     label2id={"negative": 0, "neutral": 1, "positive": 2})
    cfg.helpdesk_max_length = 128
    BertForSequenceClassification(cfg).save_pretrained(tmp)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, Path(tmp) / name)
    return tmp


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--messages", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--model", default=None, help="model to measure (default: the shipped one)")
    ap.add_argument("--no-reference", action="store_true", help="skip the BERT-base-size reference")
    args = ap.parse_args()

    os.environ["HELPDESK_SENTIMENT_THREADS"] = str(args.threads)
    import torch
    from transformers.utils import logging as hf_logging

    from nlp import baselines
    from nlp.sentiment import DEFAULT_MODEL_DIR, load_model

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    texts = (MESSAGES * (args.messages // len(MESSAGES) + 1))[: args.messages]
    avg_chars = sum(map(len, MESSAGES)) / len(MESSAGES)
    print(f"threads={torch.get_num_threads()} messages={len(texts)} avg {avg_chars:.0f} chars, "
          f"batch={args.batch_size}, single='{SINGLE}'")

    rows = []
    shipped = load_model(args.model)
    rows.append((shipped.tag, _time_batched(shipped.predict, texts, args.batch_size),
                 _time_single(shipped.predict, args.repeat)))
    if not args.no_reference:
        with tempfile.TemporaryDirectory() as tmp:
            ref = load_model(_bert_base_dir(tmp, Path(args.model or DEFAULT_MODEL_DIR)))
            rows.append(("bert-base-size (random, 12x768)", _time_batched(ref.predict, texts, args.batch_size),
                         _time_single(ref.predict, args.repeat)))
    for name, fn in baselines.available().items():
        if name != "asari":
            continue

        def predict(batch, _bs, fn=fn):
            return fn(batch)

        rows.append(("asari", _time_batched(predict, texts, args.batch_size), _time_single(predict, args.repeat)))
    for name, why in baselines.unavailable().items():
        if name == "asari":
            print(f"(asari skipped: {why})")

    base_rate, base_ms = rows[0][1], rows[0][2]
    print(f"{'model':<40} {'msgs/s batched':>15} {'ms single':>10} {'speed ratio':>12} {'latency ratio':>14}")
    for name, rate, ms in rows:
        print(f"{name:<40} {rate:>15.1f} {ms:>10.1f} {base_rate / rate:>12.2f} {ms / base_ms:>14.2f}")
    print("ratios > 1: the shipped model is that many times faster (speed: its msgs/s / this row's;"
          " latency: this row's ms / its ms)")
    ok = base_rate >= 100 and base_ms <= 20
    print(f"speed bar (>= 100 msgs/s, <= 20 ms single): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
