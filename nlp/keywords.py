"""Keywords for the voice-of-customer reports: what customers talk about, not how they say it.

fugashi + unidic-lite split the text; we keep content words as dictionary forms
(「壊れた」→「壊れる」) and glue runs of nouns back into the compound a person
would search for (「返金」「対応」→「返金対応」). Function words and the
politeness that fills support messages (「お願い」「いたす」「いただく」) are dropped.
"""
from __future__ import annotations

import re
import unicodedata

from .text import normalize, strip_quoted, tagger

STOPWORDS = frozenset(
    """
    こと もの もん ため よう ところ とき 時 方 ほう 件 等 など 中 内 上 下 前 後 間 場合 感じ 点 的 様 さま さん 様子
    それ これ あれ どれ そこ ここ あそこ どこ 何 なに なん 私 わたし 僕 自分 あなた 皆様 皆さん 御社 貴社 弊社 当方
    お願い 願い 今回 今日 本日 先日 昨日 明日 すみません 申し訳 ありがとう 失礼 お世話 世話 よろしく 宜しく
    する 為る 出来る できる ある 有る いる 居る なる 成る 思う 言う いう 云う くる 来る いく 行く おる 居る
    いただく 頂く 下さる くださる 申す 致す いたす 存ずる れる られる せる させる ござる もらう 貰う くれる
    やる 見る 見える 分かる わかる しまう おく 置く 欲しい ほしい ない 無い いい 良い よい
    願う 御座る ござる 過ぎる すぎる 致す 頂く 為さる なさる 参る 伺う 御願い
    やつ 奴 捲る まくる
    加減
    """.split()
    # English function words in mixed messages (「The app crashes」) and net laughter and despair
    # (「w」「草」「(笑)」「orz」): not topics.
    + """
    a an the and or but if so of to in on at by for from with about into as than then there here
    is are was were be been being am do does did done have has had not no yes can could will would should
    may might must shall it its it's this that these those i me my we us our you your he she him her they them
    their what when where which who whom how why all any each every some just very too also again please
    thanks thank hi hello dear regards get got
    orz w ww www wwww 笑 草
    """.split()
)
# Addresses are not topics: links, email addresses and @mentions (whose parts would
# otherwise come out as "https", "com", "example" and glue onto the next noun).
_ADDRESSES = re.compile(r"https?://\S+|www\.\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|@\w+")
# What the channels write in place of an attachment (channels/line.py, messenger.py): every
# photo would otherwise make 「画像」 a top topic of the voice-of-customer report.
_PLACEHOLDERS = re.compile(
    r"\[(?:画像|動画|音声|ファイル|スタンプ|位置情報|共有|ストーリーズのメンション|リール|リンク|テンプレート"
    r"|image|video|audio|file|sticker|location|attachment|photo)\]")
# Order numbers, ids, tokens and codes (「A-10234」, 「user_12345abc」, a UUID, a JWT): once
# cut up by the tagger, their pieces came out as 「abc」, 「def」 or glued to a word (「エラーコードe」).
_ASCII_RUN = re.compile(r"(?<![0-9a-z_-])[0-9a-z][0-9a-z_-]*(?![0-9a-z_-])")

_NOUN_POS2 = {"普通名詞", "固有名詞"}
_HONORIFIC = {"お", "ご", "御"}
# Longer "terms" are ids, long URL parts and run-on noun strings, not topics. The bound also
# keeps a message's keyword list (at most 20 terms, services/sentiment.MAX_KEYWORDS) inside
# PostgreSQL's B-tree row limit (~2.7 kB) for the report index that carries it: even at
# 4 bytes a character, 20 x 24 characters is under 2 kB.
MAX_KEYWORD_CHARS = 24


def _lemma(word) -> str:
    lemma = getattr(word.feature, "lemma", None) or word.surface
    # UniDic writes loanwords as 「メール-mail」: keep the Japanese side.
    return lemma.split("-", 1)[0] if "-" in lemma and not lemma.startswith("-") else lemma


def _drop_ids(match: re.Match) -> str:
    """An ASCII word with digits in it that is an id or a code, not a name (「iphone15」 stays)."""
    word = match.group()
    digits = sum(c.isdigit() for c in word)
    if digits and (digits >= 3 or "_" in word or len(word) >= 12):
        return " "
    return word


def _keep(term: str) -> bool:
    if not term or term in STOPWORDS or len(term) > MAX_KEYWORD_CHARS:
        return False
    if term.strip("w") == "":
        return False  # 「wwwww」: laughter
    if len(term) == 1 and not _is_kanji(term):
        return False  # stray kana and symbols carry no topic
    return not all(unicodedata.category(c)[0] in "NPSZ" for c in term)


def _is_katakana(word: str) -> bool:
    return all("\u30a1" <= ch <= "\u30fa" or ch == "ー" for ch in word)  # a loanword, never a time


def _is_kanji(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def extract_keywords(text: str) -> list[str]:
    """Content words of `text` in order of appearance, duplicates removed."""
    if not text or not text.strip():
        return []
    plain = _PLACEHOLDERS.sub(" ", normalize(strip_quoted(text)))
    words = tagger()(_ASCII_RUN.sub(_drop_ids, _ADDRESSES.sub(" ", plain)))
    out: list[str] = []
    compound: list[str] = []
    compound_kinds: list[str] = []  # each part's UniDic pos3

    def close():
        if compound and len(compound) == 1 and _is_prefix(compound[0]):
            compound.clear()
        # a leading time or amount noun: 「朝」 alone, 「先週」注文, 「最近」ログイン, 「今月」キャンペーン:
        # when, not what. Before another kanji noun it may be half of a topic: 「年末年始」 stays.
        if compound and compound_kinds[0] == "副詞可能" and (
                len(compound) == 1 or compound_kinds[1] == "サ変可能" or _is_katakana(compound[1])):
            del compound[0]
        compound_kinds.clear()
        if compound:
            term = "".join(compound)
            if _keep(term):
                out.append(term)
            compound.clear()

    after_number = False
    for w in words:
        if w.white_space:
            close()  # 「注文番号 A-10234」: a space ends a compound
        f = w.feature
        pos1, pos2 = getattr(f, "pos1", ""), getattr(f, "pos2", "")
        counter = after_number and not compound and getattr(f, "pos3", "") == "助数詞可能"
        after_number = pos2 == "数詞"
        if counter:
            continue  # a number's counter: 「二度」と, 「3回」目, 「2個」: how much, not what
        if pos1 == "名詞" and pos2 in _NOUN_POS2:
            compound.append(w.surface)
            compound_kinds.append(getattr(f, "pos3", ""))
            continue
        if pos1 == "接頭辞" and not compound:
            if w.surface not in _HONORIFIC:  # 「ご」返信 is just politeness
                compound.append(w.surface)  # 「再」発行, 「未」着: part of the compound
                compound_kinds.append("接頭辞")
            continue
        if pos1 == "接尾辞" and pos2.startswith("名詞") and compound:
            compound.append(w.surface)  # 手数「料」, 対応「中」
            compound_kinds.append("接尾辞")
            continue
        close()
        if pos1 in ("動詞", "形容詞") or (pos1 == "名詞" and pos2 == "形状詞可能"):
            term = _lemma(w)
            if _keep(term):
                out.append(term)
        elif pos1 == "形状詞":
            term = w.surface
            if _keep(term):
                out.append(term)
    close()
    seen: set[str] = set()
    return [t for t in out if not (t in seen or seen.add(t))]


def _is_prefix(surface: str) -> bool:
    return surface in {"再", "未", "非", "不", "無", "各", "全", "新", "旧"}
