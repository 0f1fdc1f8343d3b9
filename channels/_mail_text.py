"""Japanese-safe text for email: charsets, RFC 2047 headers, HTML to text, subjects.

Japanese mail arrives in ISO-2022-JP (often with NEC special characters such as
① ㈱ Ⅱ that Python's iso2022_jp codecs reject), Shift_JIS that is really cp932,
EUC-JP, UTF-8, or with no charset at all, and headers are often mis-declared.
Everything here decodes strictly first and only falls back to replacement
characters when no candidate decodes the bytes, so U+FFFD never appears where
the bytes were decodable.
"""

from __future__ import annotations

import base64
import html
import quopri
import re
import unicodedata
from html.parser import HTMLParser

# ---------------------------------------------------------------- charsets

_JIS_NAMES = {
    "iso-2022-jp", "iso2022jp", "iso2022_jp", "csiso2022jp", "iso-2022-jp-1", "iso-2022-jp-2",
    "iso-2022-jp-3", "iso-2022-jp-2004", "iso-2022-jp-ms", "iso-2022-jp-ext", "cp50220", "cp50221",
    "cp50222", "jis", "x-iso-2022-jp",
}
_SJIS_NAMES = {
    "shift_jis", "shift-jis", "sjis", "x-sjis", "s-jis", "ms_kanji", "csshiftjis", "windows-31j",
    "cp932", "ms932", "x-ms-cp932", "ibm-943", "shift_jis-2004", "shift_jisx0213", "x-mac-japanese",
}
_EUC_NAMES = {"euc-jp", "eucjp", "x-euc-jp", "euc_jp", "cseucpkdfmtjapanese", "eucjp-ms", "cp51932",
              "euc-jis-2004", "x-euc"}
_UTF8_NAMES = {"utf-8", "utf8", "x-utf8", "unicode-1-1-utf-8"}
# Labels that say nothing reliable about 8-bit bytes: guess instead.
_VAGUE_NAMES = {"", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "unknown", "default", "none",
                "x-user-defined", "8bit", "iso-8859-1", "latin1", "latin-1", "windows-1252", "cp1252"}

_ESC = 0x1B


def _jis_pair_to_sjis(j1: int, j2: int) -> bytes:
    """JIS X 0208 row/cell bytes -> Shift_JIS bytes (cp932 covers NEC rows 13 and 89-92)."""
    s1 = ((j1 + 1) >> 1) + 0x70
    if s1 >= 0xA0:
        s1 += 0x40
    if j1 & 1:
        s2 = j2 + 0x1F
        if s2 >= 0x7F:
            s2 += 1
    else:
        s2 = j2 + 0x7E
    return bytes((s1, s2))


def decode_iso2022jp(data: bytes) -> str:
    """ISO-2022-JP decoded the way Windows (cp50220) does, so ① ㈱ Ⅱ survive.

    Each JIS X 0208 pair is rewritten as its cp932 pair; JIS X 0212 (ISO-2022-JP-1/2)
    goes through euc_jp. Raises UnicodeDecodeError on bytes that are not ISO-2022-JP.
    """
    out: list[str] = []
    buf = bytearray()  # cp932 bytes waiting to be decoded

    def flush() -> None:
        if buf:
            out.append(buf.decode("cp932"))
            buf.clear()

    state = "ascii"
    before_so = "ascii"
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == _ESC:
            seq = data[i + 1:i + 4]
            if seq[:2] in (b"(B", b"(J", b"(H"):
                state, i = "ascii", i + 3
            elif seq[:2] == b"(I":
                state, i = "kana", i + 3
            elif seq[:2] in (b"$@", b"$B"):
                state, i = "jis0208", i + 3
            elif seq == b"$(D":
                state, i = "jis0212", i + 4
            elif seq == b"$(Q" or seq == b"$(O":  # JIS X 0213 plane 1: the 0208 part maps the same
                state, i = "jis0208", i + 4
            elif data[i + 1:i + 6] == b"&@\x1b$B":
                state, i = "jis0208", i + 6
            else:
                raise UnicodeDecodeError("iso-2022-jp", data, i, i + 1, "unsupported escape sequence")
            continue
        if b >= 0x80:
            raise UnicodeDecodeError("iso-2022-jp", data, i, i + 1, "8-bit byte in 7-bit encoding")
        if b == 0x0E:  # SO: cp50221 half-width katakana shift
            before_so, state, i = state, "kana", i + 1
            continue
        if b == 0x0F:
            state, i = before_so, i + 1
            continue
        if b in (0x0A, 0x0D):
            # RFC 1468 ends every line in ASCII; broken senders forget, so lines restart in ASCII.
            buf.append(b)
            state, i = "ascii", i + 1
            continue
        if state == "ascii":
            buf.append(b)
            i += 1
        elif state == "kana":
            if 0x21 <= b <= 0x5F:
                buf.append(b + 0x80)
            else:
                buf.append(b)
            i += 1
        else:
            if i + 1 >= n or not (0x21 <= b <= 0x7E and 0x21 <= data[i + 1] <= 0x7E):
                if b in (0x20, 0x09):  # stray space inside a double-byte run
                    buf.append(b)
                    i += 1
                    continue
                raise UnicodeDecodeError("iso-2022-jp", data, i, i + 1, "truncated double-byte character")
            if state == "jis0208":
                buf += _jis_pair_to_sjis(b, data[i + 1])
            else:
                flush()
                out.append(bytes((0x8F, b | 0x80, data[i + 1] | 0x80)).decode("euc_jp"))
            i += 2
    flush()
    return "".join(out)


def _decode_jis_any(data: bytes) -> str:
    """Our cp50220-style decoder, then Python's codecs for the rarer ISO-2022-JP
    variants (ISO-2022-JP-2's Chinese/Korean/Latin sets, JIS X 0213)."""
    try:
        return decode_iso2022jp(data)
    except UnicodeDecodeError as first:
        for codec in ("iso2022_jp_2", "iso2022_jp_ext", "iso2022_jp_2004"):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                continue
        raise first


def decode_eucjp(data: bytes) -> str:
    """EUC-JP including NEC special characters (eucJP-ms), via the same cp932 mapping."""
    out: list[str] = []
    buf = bytearray()
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            buf.append(b)
            i += 1
        elif b == 0x8E and i + 1 < n and 0xA1 <= data[i + 1] <= 0xDF:
            buf.append(data[i + 1])
            i += 2
        elif b == 0x8F and i + 2 < n:
            if buf:
                out.append(buf.decode("cp932"))
                buf.clear()
            out.append(data[i:i + 3].decode("euc_jp"))
            i += 3
        elif 0xA1 <= b <= 0xFE and i + 1 < n and 0xA1 <= data[i + 1] <= 0xFE:
            buf += _jis_pair_to_sjis(b & 0x7F, data[i + 1] & 0x7F)
            i += 2
        else:
            raise UnicodeDecodeError("euc-jp", data, i, i + 1, "invalid EUC-JP byte")
    if buf:
        out.append(buf.decode("cp932"))
    return "".join(out)


def _decode_sjis(data: bytes) -> str:
    try:
        return data.decode("cp932")
    except UnicodeDecodeError:
        return data.decode("shift_jis_2004")  # JIS X 0213 characters from newer phones


def _decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # Only a character cut off at the very end (truncated base64, a size cap) is
        # forgiven: everything before it is good UTF-8.
        if exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
            return data[:exc.start].decode("utf-8-sig") + "\ufffd"
        raise


def _label(charset: str | None) -> str:
    """A charset label as the tables below spell it: unquoted, trimmed, lower case."""
    return (charset or "").strip().strip('"').lower()


def _family(label: str) -> str:
    if label in _JIS_NAMES or label.startswith("iso-2022-jp"):
        return "jis"
    if label in _SJIS_NAMES:
        return "sjis"
    if label in _EUC_NAMES:
        return "euc"
    if label in _UTF8_NAMES:
        return "utf8"
    if label in _VAGUE_NAMES:
        return "vague"
    return "other"


_DECODERS = {"jis": _decode_jis_any, "sjis": _decode_sjis, "euc": decode_eucjp, "utf8": _decode_utf8}


def _plausibility(text: str) -> float:
    """How much a decoding looks like real (Japanese) text; higher is better.

    Wrong guesses between cp932 and EUC-JP produce half-width katakana, box drawing
    and rare kanji soup; right ones produce hiragana, which every sentence has.
    """
    text = text[:20_000]  # a sample decides; scoring megabytes char by char is slow
    score = 0.0
    for ch in text:
        o = ord(ch)
        if o < 0x80:
            score += 0.5 if (ch.isprintable() or ch in "\r\n\t") else -3
        elif 0x3040 <= o <= 0x30FF:  # hiragana, katakana
            score += 2
        elif 0x3000 <= o <= 0x303F or 0xFF01 <= o <= 0xFF5E:  # punctuation, full-width ASCII
            score += 1
        elif 0x4E00 <= o <= 0x9FFF:
            score += 1
        elif 0xFF61 <= o <= 0xFF9F:  # half-width katakana: rare in real mail, common in mojibake
            score -= 1
        elif unicodedata.category(ch).startswith("C"):
            score -= 3
    return score / max(1, len(text))


def guess_decode(data: bytes) -> str:
    """Bytes with no (trustworthy) charset label.

    ISO-2022-JP first (7-bit with escapes), then UTF-8: it comes before cp932 because
    cp932 accepts most UTF-8 byte strings and garbles them, while strict UTF-8 rejects
    Shift_JIS. Between cp932 and EUC-JP the more plausible decoding wins.
    """
    if not data:
        return ""
    high = any(b >= 0x80 for b in data)
    if not high:
        if b"\x1b$" in data or b"\x1b(" in data or b"\x1b." in data:
            try:
                return _decode_jis_any(data)
            except UnicodeDecodeError:
                pass
        return data.decode("ascii")
    try:
        return _decode_utf8(data)
    except UnicodeDecodeError:
        pass
    candidates = []
    for fn in (_decode_sjis, decode_eucjp):
        try:
            candidates.append(fn(data))
        except UnicodeDecodeError:
            continue
    if candidates:
        return max(candidates, key=_plausibility)
    return data.decode("cp932", errors="replace")


def _utf8_over_sjis(data: bytes, sjis_text: str) -> str:
    """UTF-8 labelled Shift_JIS (misconfigured PHP forms): cp932 garbles it without an error.
    Multibyte data that is strict UTF-8 is almost never real Shift_JIS, whose hiragana and
    punctuation lead bytes (0x81-0x9F) cannot start a UTF-8 character; the rare short word
    that is both (羞恥) keeps its Shift_JIS reading because that one reads better."""
    if data.isascii():
        return sjis_text
    try:
        utf8_text = _decode_utf8(data)
    except UnicodeDecodeError:
        return sjis_text
    return utf8_text if _plausibility(utf8_text) >= _plausibility(sjis_text) else sjis_text


def _euc_over_sjis(data: bytes, sjis_text: str) -> str:
    """EUC-JP labelled Shift_JIS (old Unix servers, mail gateways): cp932 reads EUC-JP bytes
    without an error, as half-width katakana soup. Bytes that are valid EUC-JP hold no Shift_JIS
    hiragana (lead byte 0x82), so the EUC-JP reading wins where it has kana and reads better."""
    try:
        euc_text = decode_eucjp(data)
    except UnicodeDecodeError:
        return sjis_text
    if _KANA.search(euc_text) and _plausibility(euc_text) > _plausibility(sjis_text):
        return euc_text
    return sjis_text


_KANA = re.compile(r"[\u3041-\u30ff]")
_GB_NAMES = {"gb2312", "csgb2312", "euc-cn", "euccn", "x-euc-cn", "gbk", "x-gbk", "cp936", "ms936", "gb18030",
             "chinese", "iso-ir-58"}
# Kanji that fill everyday and business Japanese. EUC-JP read as GB2312 keeps its kana and
# punctuation (both code them at the same bytes) but turns every kanji into another, mostly
# uncommon, hanzi; real GB2312 text (also Japanese written by a Chinese-locale mailer) keeps
# its common characters. Only the share of these tells the two readings apart.
_COMMON_KANJI = frozenset(
    "日一国会人年大十二本中長出三同時政事自行社見月分議後前民生連五発間対上部東者地合市業内相方四定今回新場"
    "金員九入選立開手力学問高代明実円関決子動京全目表経通外最言氏現理調体化田当八六約主題下意法不来作性的要"
    "用制度務強気小七成期公持野協取都和以機平総加山思家話世受区多県続進正安設保改数記院女初北午指心界支第"
    "産結百点教報済書活原先共得解名交資予川向際査面委告文反元重近千考判認画海参売利組知案道信策集在件団別"
    "物側任引使求所次水半品昨論計官増係感特情投示変打男基私各始島直両朝価式確村提運終果西減台広容必応電住"
    "談能無再位置企真流格有口過局少放税検町常校料状工建語営空職証土与急止送援供可役構木割聞身費付施切由説"
    "転食比難防補車何南万毎白天母火右読友左休父雨様御願申届注承拝啓敬具担返購商客頼依絡伺致頂誠恐縮迷惑訳"
    "添請領収納配達到着番号登録更契払振込換良故障修理詳細早至宜存失礼宛殿株課携帯曜祝週末先日程内容確認返信"
    "送付商品注文配送問合対応担当連絡返品交換届遅延欠損傷汚破損不具合操作画面表示入力登録方法手続完了予定"
)


def _common_kanji(text: str) -> int:
    return sum(1 for ch in text if ch in _COMMON_KANJI)


def _euc_over_gb(data: bytes, gb_text: str) -> str:
    """EUC-JP labelled GB2312 (Chinese-locale servers and gateways): both are two bytes of
    0xA1-0xFE, so GB2312 reads EUC-JP without an error, kana intact and kanji as the wrong hanzi.
    The EUC-JP reading wins where it has kana and clearly more common kanji; text without kana
    (Chinese) and Japanese that a Chinese mailer really wrote in GB2312 keep their reading."""
    if not _KANA.search(gb_text):
        return gb_text
    try:
        euc_text = decode_eucjp(data)
    except UnicodeDecodeError:
        return gb_text
    euc_hits, gb_hits = _common_kanji(euc_text), _common_kanji(gb_text)
    return euc_text if euc_hits >= 3 and euc_hits >= 2 * gb_hits + 1 else gb_text
# ISO-2022-JP's escape sequences (JIS X 0208/0212/0213, JIS-Roman, half-width kana).
_JIS_ESCAPE = re.compile(rb"\x1b(?:\$[@B]|\$\([DOQ]|\([BJI])")


def _jis_mislabelled(data: bytes, label: str) -> str | None:
    """7-bit ISO-2022-JP under another label (a gateway converted Shift_JIS to JIS and kept
    "charset=Shift_JIS"; UTF-8 declared by a misconfigured server): every other codec reads
    it without an error, escape sequences and all. None where the bytes are no such text."""
    if label.startswith("iso-2022") or label.startswith("iso2022") or not data.isascii() \
            or not _JIS_ESCAPE.search(data):
        return None
    try:
        return _decode_jis_any(data)
    except UnicodeDecodeError:
        return None


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset when it fits the bytes, else guess; never garble decodable bytes."""
    label = _label(charset)
    family = _family(label)
    if family != "jis":
        jis = _jis_mislabelled(data, label)
        if jis is not None:
            return jis
    if family in _DECODERS:
        try:
            text = _DECODERS[family](data)
        except UnicodeDecodeError:
            return guess_decode(data)  # mis-declared (SJIS labelled ISO-2022-JP, UTF-8 labelled SJIS...)
        return _euc_over_sjis(data, _utf8_over_sjis(data, text)) if family == "sjis" else text
    if family == "other":
        try:
            text = data.decode(label)
        except (LookupError, ValueError, TypeError):  # unknown, binary-only ("hex") or broken codecs
            return guess_decode(data)
        return _euc_over_gb(data, text) if label in _GB_NAMES else text
    # vague or missing label
    if label not in ("iso-8859-1", "latin1", "latin-1", "windows-1252", "cp1252") or all(b < 0x80 for b in data):
        return guess_decode(data)
    # Declared Latin-1/Windows-1252 always "decodes": valid UTF-8 or plausible Japanese wins over it.
    try:
        return _decode_utf8(data)
    except UnicodeDecodeError:
        pass
    guess = guess_decode(data)
    latin = data.decode("cp1252", errors="replace")
    return guess if _plausibility(guess) > _plausibility(latin) else latin


# ---------------------------------------------------------------- headers

# The closing ?= may be missing on the last word of a broken header.
_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)(?:\?=|$)")
_FOLD = re.compile(rb"\r?\n[ \t]")


def b64decode_lenient(data: str | bytes) -> bytes:
    """Base64 as damaged mail carries it: characters outside the alphabet (stray padding,
    line noise) are skipped, and every whole byte is kept; a lone last character, which
    holds no whole byte, is dropped (the stdlib raises on both)."""
    chars = re.sub(rb"[^A-Za-z0-9+/]", b"", data.encode("ascii", "ignore") if isinstance(data, str) else data)
    rem = len(chars) % 4
    chars = chars[:-1] if rem == 1 else chars + b"=" * ((4 - rem) % 4)
    return base64.b64decode(chars)


def _ew_payload(enc: bytes, text: bytes) -> bytes:
    if enc in (b"b", b"B"):
        return b64decode_lenient(text)
    return quopri.decodestring(text.replace(b"_", b" "), header=True)


def decode_header_value(raw: str | bytes | None) -> str:
    """An RFC 2047 header (subject, display name) to text.

    Adjacent encoded words in one charset are joined before decoding, because
    senders split multi-byte characters across words and lines; raw 8-bit headers
    (old carriers) are guessed like bodies.
    """
    if raw is None:
        return ""
    if isinstance(raw, str):
        raw = raw.encode("ascii", "surrogateescape") if _is_ascii_or_escaped(raw) else raw.encode("utf-8")
    raw = _FOLD.sub(b" ", raw).replace(b"\r", b"").replace(b"\n", b"")
    chunks: list[tuple[str | None, bytes]] = []  # (charset or None for plain bytes, bytes)
    pos = 0
    last_was_word = False
    for m in _ENCODED_WORD.finditer(raw):
        between = raw[pos:m.start()]
        if not (last_was_word and between.strip() == b""):
            if between:
                chunks.append((None, between))
        charset = m.group(1).decode("ascii", "replace").split("*", 1)[0]  # RFC 2231 language suffix
        payload = _ew_payload(m.group(2), m.group(3))
        if chunks and chunks[-1][0] is not None and chunks[-1][0].lower() == charset.lower():
            chunks[-1] = (chunks[-1][0], chunks[-1][1] + payload)
        else:
            chunks.append((charset, payload))
        pos = m.end()
        last_was_word = True
    if raw[pos:]:
        chunks.append((None, raw[pos:]))
    parts = []
    for charset, data in chunks:
        parts.append(guess_decode(data) if charset is None else decode_bytes(data, charset))
    return clean_header_text("".join(parts))


def _is_ascii_or_escaped(s: str) -> bool:
    return all(ord(c) < 0x80 or 0xDC80 <= ord(c) <= 0xDCFF for c in s)


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u2028\u2029]")


def clean_header_text(text: str) -> str:
    """One line, no control characters: what a subject or name may contain."""
    return re.sub(r"\s+", " ", _CONTROL.sub(" ", text)).strip()


# ---------------------------------------------------------------- subjects

# Matched after NFKC, so full-width ＲＥ： and 返信： read like their ASCII forms.
_PREFIX = re.compile(
    r"^\s*(?:(?:re|fw|fwd|aw|sv|antw|返信|転送|回覧)(?:\s*\[\d+\]|\s*\(\d+\)|\^\d+)?\s*:)\s*",
    re.IGNORECASE,
)
_FORWARD = re.compile(r"^\s*(?:fw|fwd|転送)\s*:", re.IGNORECASE)
_REPLY = re.compile(r"^\s*(?:re|返信)(?:\s*\[\d+\]|\s*\(\d+\)|\^\d+)?\s*:", re.IGNORECASE)
# [#1234] in ASCII or full-width (［＃１２３４］); \d matches full-width digits too.
TICKET_TOKEN = re.compile(r"[\[［]\s*[#＃]\s*(\d{1,12})\s*[\]］]")


def _strip_prefix(s: str, pattern: re.Pattern) -> str | None:
    """``s`` without a leading prefix that ``pattern`` finds in its NFKC form, else None.

    The rest of the subject keeps its original characters (① stays ①)."""
    m = pattern.match(unicodedata.normalize("NFKC", s))
    if not m:
        return None
    target = m.group(0)
    for k in range(1, len(s) + 1):
        if unicodedata.normalize("NFKC", s[:k]).startswith(target.rstrip()) and \
                len(unicodedata.normalize("NFKC", s[:k])) >= len(target.rstrip()):
            return s[k:].lstrip()
    return ""


def normalize_subject(subject: str) -> str:
    """The topic of a subject: prefixes (Re:, FW:, 返信:, ＲＥ：...) and our [#id] token removed."""
    s = re.sub(r"\s+", " ", TICKET_TOKEN.sub(" ", subject or "")).strip()
    while True:
        stripped = _strip_prefix(s, _PREFIX)
        if stripped is None:
            break
        s = stripped
    return s.strip()


def subject_is_reply(subject: str) -> bool:
    return _strip_prefix((subject or "").strip(), _REPLY) is not None


def subject_is_forward(subject: str) -> bool:
    s = TICKET_TOKEN.sub(" ", subject or "").strip()
    while True:
        if _strip_prefix(s, _FORWARD) is not None:
            return True
        rest = _strip_prefix(s, _REPLY)
        if rest is None:
            return False
        s = rest


# Out-of-office and auto-acknowledgement subjects of responders that send no Auto-Submitted
# header (many Japanese groupware products, Outlook's "自動応答:", Lotus Notes' "Auto:").
# Matched after NFKC (＜：［（ read as ASCII), only at the very start: "Re: 自動返信について" and
# "自動返信メールが届きません" are customers writing about one, and a marker must be closed by
# a colon or a bracket, or be the whole subject (with at most a date range after it).
_AUTO_WORDS = (r"自動返信|自動応答|不在通知|不在のお知らせ|不在連絡|out of (?:the )?office(?: auto-?reply)?"
               r"|automatic reply|auto[- ]?reply|auto[- ]?response|autoresponse")
_AUTO_REPLY_SUBJECT = re.compile(
    rf"^\s*(?:[\[【〔<(]\s*(?:{_AUTO_WORDS})(?:メール)?\s*[\]】〕>)]"
    rf"|(?:(?:{_AUTO_WORDS})(?:メール)?|auto)\s*:"
    rf"|(?:{_AUTO_WORDS})\s*(?:\(\s*[\d\s/.\-~〜月日]+\))?\s*$)",
    re.IGNORECASE,
)
# Non-delivery reports that come as plain mail (no multipart/report): Postfix, sendmail, qmail,
# Exim, Exchange ("配信不能:"), Japanese ISPs. Only read on mail from a mail system (see email.py).
_BOUNCE_SUBJECT = re.compile(
    r"^\s*[\[【]?\s*(?:undeliver(?:ed|able)|returned mail|mail delivery (?:failed|failure)|failure notice"
    r"|delivery (?:status notification \(failure\)|failure|failed|has failed|notification: delivery has failed)"
    r"|non-?deliver(?:y|able)|message (?:not delivered|delivery failure)|mail system error)(?!\w)"
    # the Japanese ones closed as a report's subject is ("配信エラーについて" is a person's question)
    r"|^\s*[\[【]?\s*(?:配信不能|(?:メール)?配信(?:エラー|失敗)|(?:メール)?不達|(?:メール)?未達)"
    r"(?:のお知らせ|通知|メール)?\s*(?:$|[:\]】]|\s)",
    re.IGNORECASE,
)
_DELAY_SUBJECT = re.compile(
    r"^\s*[\[【]?\s*(?:delivery status notification \(delay\)|delayed mail|delivery delayed|message delayed"
    r"|warning: could not send message|(?:メール)?配信遅延)",
    re.IGNORECASE,
)


def subject_is_auto_reply(subject: str) -> bool:
    """Whether the subject alone says the mail is an automatic reply (out of office, receipt)."""
    return bool(_AUTO_REPLY_SUBJECT.match(unicodedata.normalize("NFKC", subject or "")))


def subject_is_bounce(subject: str) -> str | None:
    """"failed" or "delayed" where the subject reads as a delivery report's, else None."""
    s = unicodedata.normalize("NFKC", subject or "")
    if _DELAY_SUBJECT.match(s):
        return "delayed"
    return "failed" if _BOUNCE_SUBJECT.match(s) else None


def ticket_token(subject: str) -> int | None:
    m = TICKET_TOKEN.search(subject or "")
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- HTML

# Elements that start and end a line of their own (a browser's display:block).
_BLOCK = {"p", "div", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
          "pre", "hr", "section", "article", "header", "footer", "dt", "dd", "dl", "address", "center",
          "main", "nav", "aside", "figure", "figcaption", "form", "fieldset", "details", "summary", "caption",
          "thead", "tbody", "tfoot"}
# Blocks a browser draws with a blank line's margin above and below.
_SPACED = {"h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "pre", "blockquote", "table"}
_SKIP = {"script", "style", "head", "title", "template", "noscript", "svg", "object", "iframe"}
# A paragraph that holds nothing visible: the writer's mailer makes one <p> per line and writes
# a blank line as <p>&nbsp;</p> (Outlook, web editors), so its paragraphs have no margins.
_EMPTY_P = re.compile(r"<p\b[^>]*>(?:\s|&nbsp;|&#0*160;|&#x0*a0;|\xa0|<br\s*/?>|</?o:p>|</?span\b[^>]*>|"
                      r"</?font\b[^>]*>)*</p\s*>", re.I)
# Outlook's paragraph classes (MsoNormal, MsoPlainText, MsoListParagraph...) and explicit zero
# margins: a line each, not a spaced paragraph.
_MSO_CLASS = re.compile(r"(?:^|\s)mso", re.I)
_NO_MARGIN = re.compile(r"(?:^|;)\s*margin\s*:\s*0(?:\.0+)?[a-z%]*\s*(?:;|$)", re.I)


class _TextExtractor(HTMLParser):
    """Lines as a browser lays the mail out: each block on its own line, <br> a line break
    (so <div><br></div> and <p>&nbsp;</p> are the writer's blank lines), and a blank line
    only where a block has a margin (spaced paragraphs, headings, lists)."""

    def __init__(self, lined_paragraphs: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.cur: list[str] = []
        self.skip = 0
        self.pre = 0
        self.pre_lines: set[int] = set()  # lines of a <pre>: their indentation is the writer's
        self.pre_opened = False  # just after <pre>, whose first newline a browser drops
        self.lined = lined_paragraphs
        self.p_spaced = not lined_paragraphs

    def _has_content(self) -> bool:
        return any(part.strip(" \t\n") for part in self.cur)

    def _break(self) -> None:
        """End the current line, if it holds anything visible (a block boundary)."""
        if self._has_content():
            self._line("".join(self.cur))
        self.cur = []

    def _newline(self) -> None:
        """A hard line break (<br>, a newline in <pre>): an empty line stays a blank line."""
        self._line("".join(self.cur) if self._has_content() else "")
        self.cur = []

    def _line(self, line: str) -> None:
        if self.pre:
            self.pre_lines.add(len(self.lines))
        self.lines.append(line)

    def _blank(self) -> None:
        """A margin: at least one blank line here (margins between blocks do not add up)."""
        self._break()
        if self.lines and self.lines[-1].strip(" \t\xa0"):
            self.lines.append("")

    def _spaced(self, tag: str, attrs) -> bool:
        if tag != "p":
            return tag in _SPACED
        if self.lined:
            return False
        a = dict(attrs)
        return not (_MSO_CLASS.search(a.get("class") or "") or _NO_MARGIN.search(a.get("style") or ""))

    def handle_starttag(self, tag, attrs):
        self.pre_opened = False
        if tag in _SKIP:
            self.skip += 1
        elif self.skip:
            return
        elif tag == "br":
            self._newline()
        elif tag in ("td", "th"):
            self.cur.append("\t")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.cur.append(f"[{alt}]")
        elif tag in _BLOCK:
            spaced = self._spaced(tag, attrs)
            self._blank() if spaced else self._break()
            if tag == "p":
                self.p_spaced = spaced  # an end tag has no attributes; <p> does not nest
            elif tag == "pre":
                self.pre += 1
                self.pre_opened = True
            elif tag == "li":
                self.cur.append("・")

    def handle_startendtag(self, tag, attrs):
        if tag in _SKIP:
            return
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif self.skip:
            return
        elif tag in _BLOCK:
            if tag == "pre":
                self._break()  # its last line, still preformatted
                self.pre = max(0, self.pre - 1)
            self._blank() if (tag in _SPACED or (tag == "p" and self.p_spaced)) else self._break()

    def handle_data(self, data):
        if self.skip:
            return
        if self.pre:
            data = data.replace("\r\n", "\n").replace("\r", "\n")
            if self.pre_opened and data.startswith("\n"):
                data = data[1:]
            self.pre_opened = False
            parts = data.split("\n")
            for k, part in enumerate(parts):
                if k:
                    self._newline()
                self.cur.append(part)
            return
        self.cur.append(re.sub(r"[ \t\r\n\f]+", " ", data))

    def text(self) -> str:
        self._break()
        lines = (line.replace("\xa0", " ") for line in self.lines)
        return "\n".join(line.rstrip(" \t") if n in self.pre_lines else line.strip(" \t")
                         for n, line in enumerate(lines))


def html_to_text(markup: str) -> str:
    """Readable plain text from an HTML mail: no tags, scripts or styles; entities decoded;
    the writer's lines and blank lines where they left them.

    The result is text, not markup: the agent view escapes it like any other body.
    """
    parser = _TextExtractor(lined_paragraphs=bool(_EMPTY_P.search(markup)))
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # html.parser is lenient; this is a last resort for pathological input
        return html.unescape(re.sub(r"<[^>]*>", " ", markup))
    return parser.text().strip("\n")  # a <pre>'s first line keeps its indentation
