"""Dictionary/SVM baselines to compare against (never shipped, never required).

asari is a positive/negative TF-IDF + SVM classifier: it has no neutral class.
oseti scores polarity with a dictionary per sentence: 0 means neutral.
Both are optional; each is used only when it imports and runs here.
"""
from __future__ import annotations

from collections.abc import Callable

_why_not: dict[str, str] = {}


def _asari() -> Callable[[list[str]], list[str]] | None:
    try:
        from asari.api import Sonar

        sonar = Sonar()
        sonar.ping("テスト")
    except Exception as exc:  # ImportError, missing locale, incompatible scikit-learn ...
        _why_not["asari"] = f"{type(exc).__name__}: {exc}"[:200]
        return None

    def predict(texts: list[str]) -> list[str]:
        return [sonar.ping(t or " ")["top_class"] for t in texts]

    return predict


def _oseti() -> Callable[[list[str]], list[str]] | None:
    try:
        import oseti

        analyzer = oseti.Analyzer()
        analyzer.analyze("テスト")
    except Exception as exc:
        _why_not["oseti"] = f"{type(exc).__name__}: {exc}"[:200]
        return None

    def predict(texts: list[str]) -> list[str]:
        out = []
        for t in texts:
            scores = analyzer.analyze(t) if t and t.strip() else []
            s = sum(scores) / len(scores) if scores else 0.0
            out.append("positive" if s > 0 else "negative" if s < 0 else "neutral")
        return out

    return predict


def available() -> dict[str, Callable[[list[str]], list[str]]]:
    """Baselines that load here, by name."""
    found = {}
    for name, make in (("asari", _asari), ("oseti", _oseti)):
        fn = make()
        if fn is not None:
            found[name] = fn
    return found


def unavailable() -> dict[str, str]:
    """Why each missing baseline was skipped (after available() ran)."""
    return dict(_why_not)
