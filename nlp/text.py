"""Japanese text helpers shared by search and keywords."""

from __future__ import annotations

import functools
import re
import threading
import unicodedata

import fugashi

_tagger: fugashi.Tagger | None = None
_tagger_lock = threading.Lock()

# Parts of speech that carry no search meaning on their own.
_SKIP_POS = {"助詞", "助動詞", "補助記号", "空白"}


def normalize(text: str) -> str:
    """NFKC + lower case: full-width ＡＢＣ１２３ and half-width ｶﾀｶﾅ match their usual forms."""
    return unicodedata.normalize("NFKC", text or "").lower()


# Half-width katakana (and its voicing marks ﾞ ﾟ as separate characters): U+FF61..U+FF9F.
_HALFWIDTH_KANA = re.compile("[\uff61-\uff9f]+")


def fold_halfwidth_kana(text: str) -> str:
    """Half-width ｶﾀｶﾅ to the usual katakana, voicing marks joined (ﾀﾞﾒ -> ダメ); nothing else changes.

    The shipped model's tokeniser does not compose ﾀﾞ into ダ: it saw 「タ」「゙」「メ」 and called
    「ﾀﾞﾒですね」 neutral where 「ダメですね」 is negative. Unlike full NFKC this leaves ～, emoji
    and full-width forms to the model's own normaliser.
    """
    if not text:
        return text or ""
    return _HALFWIDTH_KANA.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)


# Not a kaomoji's eye: 「>_<」, 「＞＜」, 「>.<」.
_QUOTED_LINE = re.compile(r"^[ \t\u3000]*[>＞](?![_<＜.。ω])(?!\S*[<＜]).*$\n?", re.MULTILINE)


def strip_quoted(text: str) -> str:
    """The text without its quoted lines (「> ...」, 「＞ ...」): what the customer wrote now.

    A reply that quotes the desk's 「大変満足いただけて嬉しいです」 under 「最悪です。」 was
    labelled positive. A text that is nothing but quotes is kept whole.
    """
    if not text or ">" not in text and "＞" not in text:
        return text or ""
    own = _QUOTED_LINE.sub("", text)
    return own if own.strip() else text


def tagger():
    """The process's one MeCab tagger, called under a lock.

    The C object is not thread-safe, and one per thread leaked ~7 MB per request
    thread under a thread-per-request server; parsing a message takes microseconds,
    so sharing one behind a lock costs nothing measurable.
    """
    return _parse


def _parse(text: str) -> list:
    global _tagger
    with _tagger_lock:
        if _tagger is None:
            _tagger = fugashi.Tagger()
        # The node list is materialised Python objects, safe to use after the lock.
        return _tagger(text)


def _pictographs(surface: str) -> list[str]:
    """The emoji of a word (😡, 🙏, ♪), each a token of its own, without skin tones, joiners
    and variation selectors, so that 👍🏻 and 🎉🎉 find 👍 and 🎉; none for a word that is not
    emoji. MeCab tags them as punctuation, but a customer's 😡 is something an agent looks for."""
    kept = [c for c in surface if unicodedata.category(c) == "So"]
    return kept if kept and all(unicodedata.category(c) in _EMOJI_PARTS for c in surface) else []


_EMOJI_PARTS = {"So", "Sk", "Cf", "Mn"}  # pictographs, skin tones, zero-width joiners, selectors
_SYMBOLS = {"補助記号", "記号"}  # what UniDic calls an emoji


@functools.lru_cache(maxsize=4096)
def _tokens(text: str) -> tuple[str, ...]:
    out: list[str] = []
    for word in tagger()(text):
        # The part of speech from the raw feature string: fugashi's parsed ``feature`` builds a
        # tuple of all ~30 UniDic fields per word, several times the cost of the parse.
        pos = word.feature_raw.split(",", 1)[0]
        if pos in _SYMBOLS:
            emoji = _pictographs(word.surface)
            if emoji:
                out += emoji
                continue
        if pos in _SKIP_POS:
            continue
        surface = word.surface.strip()
        if surface and not all(unicodedata.category(c) in _EMOJI_PARTS for c in surface):  # a lone joiner
            out.append(surface)
    return tuple(out)


def search_tokens(text: str) -> list[str]:
    """Words of a text for full-text search, so 「返金」 finds 「返金してください」."""
    return list(_tokens(normalize(text)[:20_000]))


def search_document(text: str) -> str:
    """The stored search column: tokens joined with spaces, padded for whole-token LIKE."""
    tokens = search_tokens(text)
    return f" {' '.join(tokens)} " if tokens else ""
