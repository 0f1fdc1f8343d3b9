"""Split a reply into what the customer wrote now and the quoted history + signature.

Agents read the new text; the rest is kept for "show quoted". Japanese mailers
write their own quote headers (〇〇さんは書きました:, Gmail's
"2026年11月1日(日) 10:00 山田 <a@b>:", iPhone's "…のメール:", Outlook's
差出人/送信日時/件名 block), and Japanese signatures are framed with ━━━ or ────.
"""

from __future__ import annotations

import re
import unicodedata

# "2026年11月1日(日) 10:00 山田 <a@b>:" (Gmail), "2026/11/01 10:05、山田 <a@b>のメール:" (iPhone)
_DATED_HEADER = re.compile(
    r"^\d{4}\s*[年/.\-]\s*\d{1,2}\s*[月/.\-]\s*\d{1,2}.{0,200}(wrote|書きました|のメール|のメッセージ|[>＞]|@.*)\s*[:：]\s*$",
    re.I)
_HEADER_LINES = [
    # "-----Original Message-----", "----- 元のメッセージ -----", also ruled with = ― ─ ー (matched after NFKC)
    re.compile(r"^[-=_―─—ー]{2,}\s*(original message|元のメッセージ|オリジナル ?メッセージ)\s*[-=_―─—ー]{2,}\s*$", re.I),
    # Yahoo! Mail: "--- Taro <taro@yahoo.co.jp> wrote:", "--- On Sun, 11/1/26, Taro <...> wrote:"
    re.compile(r"^-{2,}\s*\S.{0,240}\b(wrote|schrieb|a écrit|escribió)\s*[:：]\s*$", re.I),
    re.compile(r"^.{1,160}(は|が)書きました\s*[:：]?\s*$"),
    re.compile(r"^(on|am|le|el)\b.{0,200}\b(wrote|schrieb|a écrit|escribió)\s*[:：]\s*$", re.I),
    _DATED_HEADER,
    re.compile(r"^.{1,160}(のメール|のメッセージ|からのメール)\s*[:：]\s*$"),
]
_OUTLOOK_FROM = re.compile(r"^\s*\**\s*(差出人|送信者|from)\s*\**\s*[:：]", re.I)
_OUTLOOK_OTHER = re.compile(r"^\s*\**\s*(送信日時|送信日|日付|日時|sent|date|宛先|to|cc|件名|subject)\s*\**\s*[:：]", re.I)
_OUTLOOK_RULE = re.compile(r"^\s*(_{10,}|-{10,}|={10,})\s*$")
_QUOTE_LINE = re.compile(r"^\s*[>＞|]")
_SIGNATURE = re.compile(r"^(--\s?|[━]{3,}.*|[─]{3,}.*|[-‐]{2}\s*$|[＝=]{10,}|[*＊]{10,}|[-ー]{10,})$")
_MAX_SIGNATURE_LINES = 12


def _norm(line: str) -> str:
    return unicodedata.normalize("NFKC", line).strip()


def _is_header_at(lines: list[str], i: int) -> bool:
    line = _norm(lines[i])
    if not line:
        return False
    if any(p.match(line) for p in _HEADER_LINES):
        return True
    # Gmail wraps long headers over two lines: "On ... <address>\nwrote:", "2026年…山田 <\naddress>:".
    if i + 1 < len(lines) and len(line) > 10:
        joined = line + " " + _norm(lines[i + 1])
        if re.match(r"^(-{2,}\s*\S|on\b|\d{4}).{0,240}\b(wrote|書きました)\s*[:：]\s*$", joined, re.I) \
                or _DATED_HEADER.match(joined):
            return True
    if _OUTLOOK_FROM.match(line):
        keys = sum(1 for ln in lines[i + 1:i + 6] if _OUTLOOK_OTHER.match(_norm(ln)))
        return keys >= 2
    return False


def _find_header(lines: list[str]) -> int | None:
    for i in range(len(lines)):
        if _is_header_at(lines, i):
            # Outlook draws a rule above its header block; it belongs to the quote.
            while i > 0 and _OUTLOOK_RULE.match(lines[i - 1]):
                i -= 1
            return i
    return None


def _trailing_quote(lines: list[str]) -> int | None:
    """Index where a run of '>' lines that ends the message starts."""
    end = len(lines)
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    start = end
    while start > 0 and (_QUOTE_LINE.match(lines[start - 1]) or not lines[start - 1].strip()):
        start -= 1
    if start == end or not any(_QUOTE_LINE.match(ln) for ln in lines[start:end]):
        return None
    while start < end and not lines[start].strip():
        start += 1
    return start


# "-- " (RFC 3676), also with its trailing space lost: always a signature delimiter. Any other
# rule is one only where what follows it reads as a signature (_signature_like).
_STANDARD_DELIMITER = re.compile(r"^--\s?$")
_PROSE = re.compile(r"[。．！？!?]|です|ます|ください|下さい|お願い")
_SIGNATURE_MARK = re.compile(
    r"(?i)(?:\b(?:tel|fax)\b|\b(?:phone|mobile|e-?mail|mail|url|web)\s*:|電話|携帯|内線|住所|〒|https?://|www\.|@"
    r"|株式会社|有限会社|合同会社|[㈱㈲]|\([株有]\)|\b(?:inc|co|ltd|corp|llc)\b\.?"
    r"|(?<![\d-])(?:\+\d{1,3}[-\s(]*|0)\d{1,4}[-)\s]\d{1,4}-\d{3,4}(?![\d-]))")  # 03-1234-5678, +81-3-...
_HIRAGANA = re.compile(r"[\u3041-\u309f]")


def _signature_start(lines: list[str]) -> int | None:
    """First separator line after which only a short block (the signature) remains.

    Customers rule off their own text too ("──────\n注文番号: 12345\n──────\n届いていません。"):
    a ruled block with more text after its closing rule is part of the message, and so are
    the rules framing it. A signature's closing rule has nothing but blank or quoted lines after it.
    Nor is a lone rule above the customer's text ("ご担当者様\n----------\n届いていません。") one:
    a rule other than "-- " starts a signature only where names, a company, a phone number or
    an address follow it.
    """
    rules = [i for i, line in enumerate(lines) if i > 0 and _SIGNATURE.match(line.rstrip("\r"))]
    n = 0
    while n < len(rules):
        i = rules[n]
        standard = _is_standard_delimiter(lines[i])
        # a ruled block of the customer's own; "-- " neither opens nor closes one
        if not standard and n + 1 < len(rules) and not _is_standard_delimiter(lines[rules[n + 1]]) \
                and _has_text(lines[rules[n + 1] + 1:]):
            n += 2
            continue
        rest = [ln for ln in lines[i + 1:] if ln.strip()]
        if len(rest) <= _MAX_SIGNATURE_LINES and any(ln.strip() for ln in lines[:i]) \
                and (standard or _signature_like(rest)):
            return i
        n += 1
    return None


def _is_standard_delimiter(line: str) -> bool:
    return bool(_STANDARD_DELIMITER.match(line.rstrip("\r")))


def _signature_like(lines: list[str]) -> bool:
    """Whether the lines under a rule read as a signature: names, a company, contact details,
    perhaps a closing rule, and no sentences (a corporate notice or two beside plenty of
    contact details aside)."""
    marked = named = prose = 0
    for raw in lines:
        line = _norm(raw)
        if _SIGNATURE.match(raw.rstrip("\r")) or _QUOTE_LINE.match(raw):
            continue
        if _PROSE.search(line):
            prose += 1
        elif _SIGNATURE_MARK.search(line):
            marked += 1
        elif _name_like(line):
            named += 1
        else:
            return False
    if prose:
        return marked >= 3 and prose <= 2
    return marked >= 1 or 1 <= named <= 3


def _name_like(line: str) -> bool:
    """A short line such as a name, department or title: no digits, (almost) no hiragana,
    and capitalised words where it is written in Latin letters."""
    if len(line) > 30 or re.search(r"\d", line) or len(_HIRAGANA.findall(line)) > 2:
        return False
    return all(w[:1].isupper() or not w[:1].isascii() or not w[:1].isalpha() for w in line.split())


def _has_text(lines: list[str]) -> bool:
    return any(ln.strip() and not _QUOTE_LINE.match(ln) for ln in lines)


def split_reply(text: str, *, forward: bool = False) -> tuple[str, str | None]:
    """(new text, quoted history and signature or None).

    A forwarded mail keeps the forwarded message in the body: that is what the
    customer wants the desk to read. If stripping would leave nothing, nothing is stripped.
    """
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    if forward:
        return text.strip(), None
    lines = text.split("\n")
    cut = _find_header(lines)
    if cut is None:
        cut = _trailing_quote(lines)
    body, quoted = (lines, []) if cut is None else (lines[:cut], lines[cut:])
    sig = _signature_start(body)
    quoted_text = "\n".join(quoted).strip()
    if sig is not None:
        signature = "\n".join(body[sig:]).strip()
        body = body[:sig]
        quoted_text = signature + ("\n\n" + quoted_text if quoted_text else "")
    new_text = "\n".join(body).strip()
    if not new_text:
        return text.strip(), None
    return new_text, quoted_text or None
