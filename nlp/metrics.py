"""Classification metrics without a scikit-learn dependency (the desk does not need it)."""
from __future__ import annotations

LABELS = ("negative", "neutral", "positive")


def classification_report(gold: list[str], pred: list[str], labels=LABELS) -> dict:
    """Accuracy, macro-F1 over `labels`, per-class P/R/F1 and a confusion matrix (rows = gold)."""
    if len(gold) != len(pred):
        raise ValueError("gold and pred differ in length")
    index = {lab: i for i, lab in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred):
        if g in index and p in index:
            matrix[index[g]][index[p]] += 1
    per = {}
    for lab, i in index.items():
        tp = matrix[i][i]
        fp = sum(matrix[r][i] for r in range(len(labels))) - tp
        fn = sum(matrix[i]) - tp
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[lab] = {"precision": round(prec, 4), "recall": round(rec, 4), "f1": round(f1, 4), "support": tp + fn}
    present = [lab for lab in labels if per[lab]["support"] > 0] or list(labels)
    macro = sum(per[lab]["f1"] for lab in present) / len(present)
    acc = sum(1 for g, p in zip(gold, pred) if g == p) / len(gold) if gold else 0.0
    return {"accuracy": round(acc, 4), "macro_f1": round(macro, 4), "per_class": per,
            "confusion": {"labels": list(labels), "matrix": matrix}, "n": len(gold)}


def binary_f1(gold: list[bool], pred: list[bool]) -> float:
    tp = sum(1 for g, p in zip(gold, pred) if g and p)
    fp = sum(1 for g, p in zip(gold, pred) if p and not g)
    fn = sum(1 for g, p in zip(gold, pred) if g and not p)
    return round(2 * tp / (2 * tp + fp + fn), 4) if tp else 0.0


def format_report(name: str, r: dict) -> str:
    """A plain-text block for the terminal."""
    labs = r["confusion"]["labels"]
    lines = [f"== {name}: n={r['n']} accuracy={r['accuracy']:.4f} macro-F1={r['macro_f1']:.4f}"]
    for lab in labs:
        c = r["per_class"][lab]
        lines.append(f"   {lab:<9} P={c['precision']:.3f} R={c['recall']:.3f} F1={c['f1']:.3f} n={c['support']}")
    lines.append("   confusion (rows gold, cols predicted): " + " ".join(f"{x[:3]:>5}" for x in labs))
    for lab, row in zip(labs, r["confusion"]["matrix"]):
        lines.append(f"   {lab:<9} " + " ".join(f"{v:>5}" for v in row))
    return "\n".join(lines)
