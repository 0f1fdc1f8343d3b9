"""python -m nlp predict / evaluate, as a person would run them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(args, stdin=""):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    env.pop("HELPDESK_SENTIMENT_MODEL", None)
    return subprocess.run([sys.executable, "-m", "nlp", *args], input=stdin, capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120, check=False)


def test_predict_one_json_line_per_input_line_in_order():
    lines = ["ありがとうございました、助かりました！", "",
             "何度も問い合わせているのに返事がない。いい加減にしてください", "注文番号を教えてください"]
    res = _run(["predict", "--chunk", "2"], "\n".join(lines) + "\n")
    assert res.returncode == 0, res.stderr
    out = [json.loads(x) for x in res.stdout.splitlines()]
    assert [o["label"] for o in out] == ["positive", "neutral", "negative", "neutral"]
    assert out[2]["anger"] is True
    assert set(out[0]) >= {"label", "score", "probs", "anger"}


def test_evaluate_reports_metrics(tmp_path):
    data = tmp_path / "eval.tsv"
    rows = [("ありがとうございました、助かりました！", "positive"), ("最悪です。二度と使いません。", "negative"),
            ("注文番号を教えてください", "neutral"), ("対応が早くてとても満足しています", "positive")]
    data.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows), encoding="utf-8")
    res = _run(["evaluate", "--data", str(data), "--json", "--no-baselines"])
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    (ours,) = report.values()
    assert ours["accuracy"] == 1.0 and ours["macro_f1"] == 1.0
    assert ours["confusion"]["matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 2]]
    assert set(ours["per_class"]) == {"negative", "neutral", "positive"}


def test_a_model_that_does_not_load_is_one_clear_line(tmp_path):
    res = _run(["predict", "--model", str(tmp_path / "missing")], "テスト\n")
    assert res.returncode == 2
    assert "no such directory" in res.stderr and "Traceback" not in res.stderr
