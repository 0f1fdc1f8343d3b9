"""Hub models name their classes in many ways; all must fold into ours."""
from __future__ import annotations

import pytest

from nlp.sentiment import label_map_from_config


@pytest.mark.parametrize(
    ("id2label", "sentiment", "anger"),
    [
        ({0: "negative", 1: "neutral", 2: "positive"}, ("negative", "neutral", "positive"), False),
        ({0: "POSITIVE", 1: "NEGATIVE", 2: "NEUTRAL"}, ("positive", "negative", "neutral"), False),
        ({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, ("negative", "neutral", "positive"), False),
        ({0: "LABEL_0", 1: "LABEL_1"}, ("negative", "positive"), False),
        ({0: "1 star", 1: "2 stars", 2: "3 stars", 3: "4 stars", 4: "5 stars"},
         ("negative", "negative", "neutral", "positive", "positive"), False),
        ({0: "negative", 1: "neutral", 2: "positive", 3: "anger"},
         ("negative", "neutral", "positive", "negative"), True),
        ({0: "joy", 1: "sadness", 2: "anger", 3: "neutral"}, ("positive", "negative", "negative", "neutral"), True),
    ],
)
def test_label_sets(id2label, sentiment, anger):
    m = label_map_from_config(id2label)
    assert m.sentiment == sentiment
    assert m.has_anger is anger


def test_string_keys_from_json_config():
    assert label_map_from_config({"0": "neg", "1": "pos"}).sentiment == ("negative", "positive")


def test_unknown_labels_are_refused():
    with pytest.raises(ValueError):
        label_map_from_config({0: "spam", 1: "ham", 2: "eggs"})
