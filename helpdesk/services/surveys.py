"""Surveys on the customer's own channel.

When a ticket is resolved we ask one question (per inbox setting ``survey``: csat | nps | ces |
none; default csat) through the one outbound path, ``replies.post_reply``. The customer answers by
a signed, expiring link (``/survey/<token>``) or, on chat channels, by replying with a quick-reply
text such as 「満足度: 5」 (or a bare 「5」 while the survey's ticket still waits for it): ingest keeps such a
reply on the survey's ticket (``match_reply``) and records it after its commit (``record_reply``).
A later answer replaces the earlier one: the customer changed their mind, and the messages keep both.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import Status, Survey, SurveyAnswer, Ticket
from ..models._types import utcnow

log = logging.getLogger(__name__)

SURVEY_ANSWERED = "survey.answered"


@dataclass(frozen=True)
class Scale:
    kind: str
    low: int
    high: int
    prefix: str  # what a quick-reply answer starts with, e.g. 「満足度: 5」 (parse_reply reads it back)
    question: str  # the texts are lazily translated: the survey page shows them in the page's language
    low_label: str
    high_label: str
    neutral: tuple[int, int]  # the answers that say neither (NPS: its passives, 7-8); below negative, above positive


# Sent on the customer's channel in the desk's default language (see render); an inbox may
# override the question with settings["survey_question"].
SCALES = {
    "csat": Scale("csat", 1, 5, "満足度", _l("Were you satisfied with our support this time?"),
                  _l("Dissatisfied"), _l("Satisfied"), (3, 3)),
    "nps": Scale("nps", 0, 10, "おすすめ度", _l("How likely are you to recommend us to your family or friends?"),
                 _l("Would not recommend"), _l("Would definitely recommend"), (7, 8)),
    "ces": Scale("ces", 1, 7, "かんたんさ", _l("How easy was it to get your problem solved this time?"),
                 _l("Very difficult"), _l("Very easy"), (4, 4)),
}
_PREFIXES = {s.prefix: s.kind for s in SCALES.values()} | {k.upper(): k for k in SCALES}
_ANSWER_RE = re.compile(r"^\s*(" + "|".join(map(re.escape, _PREFIXES)) + r")\s*[:：]?\s*(\d{1,2})\s*$")
_BARE_RE = re.compile(r"^\s*(\d{1,2})\s*$")


class SurveyError(ValueError):
    """A survey link or answer we refuse; ``reason`` is invalid | expired | answered | bad_score."""

    def __init__(self, reason: str, survey: Survey | None = None):
        super().__init__(reason)
        self.reason = reason
        self.survey = survey


# Public channels (X, Instagram comments) would post the question in public: off unless asked for.
_DEFAULT_OFF = {"social"}


def kind_for(ticket: Ticket) -> str | None:
    default = "none" if ticket.channel in _DEFAULT_OFF else "csat"
    kind = str((ticket.inbox.settings or {}).get("survey", default)).lower()
    return kind if kind in SCALES else None


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="helpdesk.survey")


def max_age_s() -> int:
    return int(current_app.config.get("SURVEY_MAX_AGE_DAYS", 14)) * 86400


def token_for(survey: Survey) -> str:
    return _serializer().dumps({"s": survey.id})


def survey_url(survey: Survey, score: int | None = None) -> str:
    # Built by hand, not url_for: surveys are also sent from jobs with no request context.
    base = current_app.config["PUBLIC_URL"].rstrip("/")
    return f"{base}/survey/{token_for(survey)}" + (f"?score={score}" if score is not None else "")


def load_token(token: str) -> Survey:
    """The survey a link points at; raises SurveyError(invalid|expired|answered)."""
    try:
        data = _serializer().loads(token, max_age=max_age_s())
    except SignatureExpired:
        raise SurveyError("expired") from None
    except BadSignature:
        raise SurveyError("invalid") from None
    survey = db.session.get(Survey, data.get("s")) if isinstance(data, dict) else None
    if survey is None:
        raise SurveyError("invalid")
    if survey.answer is not None:
        raise SurveyError("answered", survey)
    return survey


def on_resolved(ticket: Ticket) -> Survey | None:
    """Called once a ticket becomes resolved: ask the inbox's question, at most once per ticket.
    A failure here must never undo the resolve, so it is logged and swallowed."""
    try:
        return _send(ticket)
    except Exception:
        db.session.rollback()
        log.exception("survey for ticket %s could not be sent", ticket.id)
        return None


def _send(ticket: Ticket) -> Survey | None:
    from .replies import post_reply

    kind = kind_for(ticket)
    if kind is None or not ticket.reply_to:
        return None
    if db.session.scalar(select(Survey.id).where(Survey.ticket_id == ticket.id, Survey.kind == kind)):
        return None
    survey = Survey(ticket_id=ticket.id, kind=kind, inbox_id=ticket.inbox_id, channel=ticket.channel,
                    contact_id=ticket.contact_id, agent_id=ticket.assignee_id, team_id=ticket.team_id)
    db.session.add(survey)
    try:
        db.session.flush()
    except IntegrityError:  # a concurrent resolve already asked
        db.session.rollback()
        return None
    text, meta = render(survey, ticket)
    msg = post_reply(ticket, None, text, meta=meta)  # commits survey and message together
    survey.message_id = msg.id
    db.session.commit()
    log.info("sent %s survey %s for ticket %s on %s", kind, survey.id, ticket.id, ticket.channel)
    return survey


def render(survey: Survey, ticket: Ticket) -> tuple[str, dict]:
    """The question as text for the channel plus meta for adapters that draw buttons.
    Customers have no UI language, so the text is in the desk's default one, whoever resolved."""
    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):
        return _render(survey, ticket)


def _render(survey: Survey, ticket: Ticket) -> tuple[str, dict]:
    scale = SCALES[survey.kind]
    question = str((ticket.inbox.settings or {}).get("survey_question") or scale.question)
    choices = list(range(scale.high, scale.low - 1, -1))
    # parse_reply knows the Japanese prefix and the code (CSAT, NPS, CES) whatever the language.
    prefix = scale.prefix if get_locale().language == "ja" else scale.kind.upper()
    quick = [{"label": f"{n}" + (f" {scale.high_label}" if n == scale.high else
                                  f" {scale.low_label}" if n == scale.low else ""),
              "text": f"{prefix}: {n}"} for n in choices]
    lines = [question, _("Please answer from %(low)s (%(low_label)s) to %(high)s (%(high_label)s).",
                         low=scale.low, low_label=scale.low_label, high=scale.high, high_label=scale.high_label)]
    if survey.channel == "email":
        lines.append("")
        lines += [f"{n}: {survey_url(survey, n)}" for n in choices]
    else:
        lines.append(_("Answer here: %(url)s", url=survey_url(survey)))
    meta = {"survey": {"id": survey.id, "kind": survey.kind, "url": survey_url(survey),
                       "scale": [scale.low, scale.high]},
            "quick_replies": quick}
    return "\n".join(lines), meta


def parse_score(scale: Scale, raw) -> int:
    try:
        score = int(str(raw).strip())
    except (TypeError, ValueError):
        raise SurveyError("bad_score") from None
    if not scale.low <= score <= scale.high:
        raise SurveyError("bad_score")
    return score


def record(survey: Survey, score: int, *, via: str, comment: str = "", message_id: int | None = None) -> SurveyAnswer:
    """Store the one answer; a second one (even a concurrent one) is refused by the unique key."""
    scale = SCALES[survey.kind]
    score = parse_score(scale, score)
    answer = SurveyAnswer(survey_id=survey.id, score=score, comment=(comment or "").strip()[:2000], via=via,
                          message_id=message_id, answered_at=utcnow())
    db.session.add(answer)
    try:
        db.session.flush()
        _publish(survey, answer)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        log.info("second answer to survey %s refused", survey.id)
        raise SurveyError("answered", survey) from None
    log.info("survey %s answered %s via %s", survey.id, score, via)
    return answer


def _publish(survey: Survey, answer: SurveyAnswer) -> None:
    from ..realtime import events

    events.publish(SURVEY_ANSWERED, {"survey_id": survey.id, "ticket_id": survey.ticket_id, "kind": survey.kind,
                                     "score": answer.score, "agent_id": survey.agent_id,
                                     "channel": survey.channel},
                   ticket_id=survey.ticket_id, supervisors_only=True)


def parse_reply(text: str) -> tuple[str, int] | None:
    """(kind, score) when a chat reply is a quick-reply survey answer, e.g. 「満足度：５」."""
    norm = unicodedata.normalize("NFKC", text or "").strip()
    m = _ANSWER_RE.match(norm)
    if not m:
        return None
    return _PREFIXES[m.group(1)], int(m.group(2))


def sentiment_of(text: str) -> tuple[str, float] | None:
    """(label, score from -1 to 1) of a quick-reply answer such as 「満足度：1」, read from its
    number: the customer said how they feel, where a model reads the text as neutral. None
    for any other text. The score is 0 across the scale's neutral answers and runs linearly
    to -1 at its lowest and 1 at its highest, so its sign always agrees with the label."""
    parsed = parse_reply(text)
    return None if parsed is None else rating_sentiment(*parsed)


def rating_sentiment(kind: str, n: int) -> tuple[str, float] | None:
    """``sentiment_of`` for an answer known by its survey's kind and its number (a bare 「5」)."""
    scale = SCALES[kind]
    if not scale.low <= n <= scale.high:
        return None
    if n < scale.neutral[0]:
        return "negative", round(-(scale.neutral[0] - n) / (scale.neutral[0] - scale.low), 4)
    if n > scale.neutral[1]:
        return "positive", round((n - scale.neutral[1]) / (scale.high - scale.neutral[1]), 4)
    return "neutral", 0.0


def _newest(inbox_id: int, contact_id: int):
    """A query for the newest of this contact's unexpired surveys on an inbox (callers narrow it)."""
    since = utcnow() - timedelta(seconds=max_age_s())
    return (select(Survey)
            .where(Survey.inbox_id == inbox_id, Survey.contact_id == contact_id, Survey.created_at >= since)
            .order_by(Survey.id.desc())
            .limit(1))


def awaiting(inbox_id: int, contact_id: int) -> Survey | None:
    """The survey a bare number from this contact answers: their newest unexpired one, while its
    ticket is still resolved (or closed) and no newer conversation began. Anything else the customer
    said would have reopened that ticket, so a number now can only be about the question."""
    survey = db.session.scalar(_newest(inbox_id, contact_id))
    if survey is None or survey.ticket.status in Status.active():
        return None
    newer = db.session.scalar(select(Ticket.id).where(Ticket.inbox_id == inbox_id, Ticket.contact_id == contact_id,
                                                      Ticket.id > survey.ticket_id).limit(1))
    return None if newer else survey


@dataclass(frozen=True)
class Reply:
    """A customer message that answers a survey, found before the message is stored."""

    survey: Survey
    score: int


def may_answer(text: str) -> bool:
    """Whether a text has the shape of a survey answer (a quick reply or a bare number), asked
    without a query, before looking for the survey it would answer."""
    norm = unicodedata.normalize("NFKC", text or "")
    return bool(_ANSWER_RE.match(norm) or _BARE_RE.match(norm))


def match_reply(inbox_id: int, contact_id: int, text: str, meta=None) -> Reply | None:
    """Before a reply is stored: the survey it answers, so ingest keeps it on that ticket instead
    of reopening it or opening a new one. A quick-reply answer (「満足度: 5」, or the payload of a
    Messenger button, whose text is only its label) answers the newest survey of its kind, answered
    or not (the buttons belong to the newest question); a bare number (「5」, 「５」) only the survey
    still waiting for it (``awaiting``)."""
    payload = (meta or {}).get("quick_reply_payload")
    parsed = parse_reply(payload) if isinstance(payload, str) else None
    parsed = parsed or parse_reply(text)
    if parsed is not None:
        kind, score = parsed
        survey = db.session.scalar(_newest(inbox_id, contact_id).where(Survey.kind == kind))
        return Reply(survey, score) if survey is not None else None
    bare = _BARE_RE.match(unicodedata.normalize("NFKC", text or ""))
    if bare is None:
        return None
    score = int(bare.group(1))
    survey = awaiting(inbox_id, contact_id)
    if survey is None or not SCALES[survey.kind].low <= score <= SCALES[survey.kind].high:
        return None  # 「0」 to a 1-5 question is not an answer: the customer means something else
    return Reply(survey, score)


def record_reply(reply: Reply, message_id: int) -> SurveyAnswer | None:
    """After ingest committed the customer's answer: record it, or let it replace their earlier
    one. Never raises: the message itself is already safely stored."""
    try:
        survey_id = reply.survey.id
        survey = db.session.get(Survey, survey_id)
        if survey.answer is None:
            try:
                return record(survey, reply.score, via="reply", message_id=message_id)
            except SurveyError as exc:
                if exc.reason != "answered":  # else a concurrent first answer won: ours replaces it
                    raise
                survey = db.session.get(Survey, survey_id)
        return _change(survey, reply.score, message_id)
    except SurveyError as exc:
        log.info("survey reply on message %s not recorded: %s", message_id, exc.reason)
        return None
    except Exception:
        db.session.rollback()
        log.exception("survey reply on message %s could not be recorded", message_id)
        return None


def _change(survey: Survey, score: int, message_id: int) -> SurveyAnswer:
    """A second answer by reply: the latest is what the customer thinks now. The reports and the
    live dashboards follow (``survey.answered`` again); the earlier answer stays in the messages."""
    score = parse_score(SCALES[survey.kind], score)
    answer = survey.answer
    before = answer.score
    answer.score, answer.via, answer.message_id, answer.answered_at = score, "reply", message_id, utcnow()
    db.session.flush()
    _publish(survey, answer)
    db.session.commit()
    log.info("survey %s answered again via reply: %s -> %s", survey.id, before, score)
    return answer
