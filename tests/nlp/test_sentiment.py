"""The shipped model: loads with no network, gets the obvious cases right, keeps order."""
from __future__ import annotations

import pytest

from nlp.sentiment import LABELS, Prediction, load_model


@pytest.mark.parametrize(
    ("text", "label", "anger"),
    [
        ("ありがとうございました、助かりました！", "positive", False),
        ("何度も問い合わせているのに返事がない。いい加減にしてください", "negative", True),
        ("注文番号を教えてください", "neutral", False),
        ("対応が早くてとても満足しています", "positive", False),
        ("また壊れました。本当にがっかりです", "negative", None),
    ],
)
def test_obvious_cases(model, text, label, anger):
    (p,) = model.predict([text])
    assert p.label == label
    if anger is not None:
        assert p.anger is anger


@pytest.mark.parametrize("text", [
    "はい、それでお願いします",
    "はい。二人なのでダブルでお願いします。",
    "別にどちらでも構いません",
    "いいえ、夜遅くの到着なので、利用しません",
    "川が見えると嬉しいです",  # a polite wish, not delight
])
def test_plain_requests_and_acceptances_are_not_alarms(model, text):
    # The model shipped before the ASDC labels called all of these negative (or positive):
    # a false alarm for every supervisor watching negative messages.
    (p,) = model.predict([text])
    assert p.label == "neutral", (text, p.label, p.score)


def test_prediction_shape(model):
    (p,) = model.predict(["返金はいつになりますか"])
    assert isinstance(p, Prediction)
    assert set(p.probs) == set(LABELS)
    assert sum(p.probs.values()) == pytest.approx(1.0, abs=1e-4)
    assert p.score == pytest.approx(p.probs["positive"] - p.probs["negative"], abs=1e-5)
    assert -1.0 <= p.score <= 1.0 and 0.0 <= p.anger_prob <= 1.0
    assert p.model == f"{model.name}@{model.version}" and model.name and model.version


def test_order_is_kept_across_batches(model):
    texts = ["最悪です。二度と使いません。", "了解です", "とても丁寧に対応していただき感謝しています。" * 3,
             "パスワードを忘れました", "ありがとう！", "請求額が間違っています。至急確認してください。"]
    together = model.predict(texts, batch_size=2)
    alone = [model.predict([t])[0] for t in texts]
    assert [p.label for p in together] == [p.label for p in alone]
    for a, b in zip(together, alone):
        assert a.score == pytest.approx(b.score, abs=1e-3)


@pytest.mark.parametrize("blank", ["", "   ", "\n\t"])
def test_empty_text_is_neutral(model, blank):
    out = model.predict(["ありがとうございました！", blank, "ふざけるな！金返せ"])
    assert out[1].label == "neutral" and out[1].score == 0.0 and out[1].anger is False
    assert out[0].label == "positive" and out[2].label == "negative"


def test_no_texts(model):
    assert model.predict([]) == []


def test_cached_per_path(model):
    assert load_model() is model


def test_threads_share_one_model(model):
    from concurrent.futures import ThreadPoolExecutor

    texts = ["ありがとうございました！", "注文番号を教えてください", "最悪です。二度と使いません。"] * 4
    expected = [p.label for p in model.predict(texts)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: [p.label for p in model.predict(texts, batch_size=3)], range(4)))
    assert all(r == expected for r in results)
