"""Search tokens and the shared tagger."""

from __future__ import annotations

import threading

from nlp.text import normalize, search_document, search_tokens


def test_search_tokens_split_japanese_and_drop_particles():
    assert search_tokens("返金してください") [:1] == ["返金"]
    assert "て" not in search_tokens("返金してください")


def test_normalize_full_width_and_half_width_kana():
    assert normalize("ＡＢＣ１２３ ｶﾀｶﾅ") == "abc123 カタカナ"


def test_search_document_is_padded_for_whole_token_match():
    doc = search_document("配送について")
    assert doc.startswith(" ") and doc.endswith(" ") and " 配送 " in doc


def test_many_threads_share_one_tagger_safely():
    results: list[list[str]] = []

    def work(i):
        results.append(search_tokens(f"注文番号{i}の返金をお願いします"))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 32 and all("返金" in r for r in results)


def test_emoji_are_search_tokens_without_their_skin_tones_and_joiners():
    assert search_tokens("最悪😡") == ["最悪", "😡"]
    assert search_tokens("いいね👍🏻") == ["いい", "👍"]
    assert search_tokens("🎉🎉") == ["🎉", "🎉"]
    assert search_tokens("家族👨\u200d👩\u200d👧で") == ["家族", "👨", "👩", "👧"]
    assert search_tokens("ありがとう❤️") == ["ありがとう", "❤"]
    assert search_tokens("届きません。。！？") == ["届き"]  # punctuation is still no token
