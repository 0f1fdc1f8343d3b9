"""Supervisor reports: the numbers behind every dashboard chart.

Every report returns plain data plus a ``table`` ({columns, rows}) so the same numbers can be
shown as a chart, as an accessible table and as a CSV file.

Time: rows are stored in UTC and bucketed in the dashboard's zone (Asia/Tokyo by default).
SQL groups by UTC hour (or quarter hour for zones with half-hour offsets) with the same
expression shape on SQLite and PostgreSQL; Python folds those slots into local hours, days or
weeks with ``zoneinfo``. So a message at 23:30 UTC counts for the next day in Tokyo on both
backends, and daylight-saving zones are handled by the zone database rather than by SQL.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import String, and_, case, column, func, literal_column, or_, select, true

from ..extensions import db
from ..labels import channel_label, status_label
from ..models import Agent, Alert, Contact, Direction, Inbox, Message, Status, Tag, Team, Ticket
from ..models.survey import Survey, SurveyAnswer
from ..models.ticket import ticket_tags
from ..models._types import ROW_ID_MAX
from . import sla

LABELS = ("negative", "neutral", "positive")
BUCKETS = ("hour", "day", "week")
MAX_DAYS = 400
MAX_HOUR_DAYS = 31
# Far enough from the calendar's ends that a range, its previous period and the look-backs of the
# reports stay valid dates (year 1 or 9999 made datetime overflow).
EARLIEST_DAY = date(1970, 1, 1)
LATEST_DAY = date(9998, 12, 31)


class ReportError(ValueError):
    """Bad report parameters (dates, bucket, ids): a 400 with this message."""


def _filter_name(param: str) -> str:
    """A filter as the form labels it: the error names it in the reader's language, not as
    the query string spells it (「inbox の値が…」 in a Japanese page)."""
    return {"inbox": _("Inbox"), "team": _("Team"), "agent": _("Agent"), "tag": _("Tag"),
            "channel": _("Channel")}.get(param, param)


@dataclass
class Filters:
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    tz: ZoneInfo
    bucket: str = "day"
    channel: str | None = None
    inbox_id: int | None = None
    team_id: int | None = None
    agent_id: int | None = None
    tag: str | None = None
    first_day: date | None = None
    last_day: date | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args, tzname: str | None = None, today: date | None = None) -> Filters:
        """Parse ?from=YYYY-MM-DD&to=YYYY-MM-DD (local dates, inclusive), bucket, and filters."""
        try:
            tz = ZoneInfo(tzname or current_app.config["BABEL_DEFAULT_TIMEZONE"])
        except (ZoneInfoNotFoundError, ValueError):
            raise ReportError(_("Unknown time zone.")) from None
        today = today or datetime.now(tz).date()
        try:
            last = date.fromisoformat(args["to"]) if args.get("to") else today
            first = date.fromisoformat(args["from"]) if args.get("from") else None
        except ValueError:
            raise ReportError(_("Dates must look like 2024-04-01.")) from None
        if not all(EARLIEST_DAY <= day <= LATEST_DAY for day in (first, last) if day is not None):
            raise ReportError(_("Dates must be between %(first)s and %(last)s.",
                                first=EARLIEST_DAY.isoformat(), last=LATEST_DAY.isoformat()))
        first = first or last - timedelta(days=6)
        if first > last:
            raise ReportError(_("The start date is after the end date."))
        if (last - first).days >= MAX_DAYS:
            raise ReportError(_("Choose a range of at most %(n)s days.", n=MAX_DAYS))
        bucket = args.get("bucket") or "day"
        if bucket not in BUCKETS:
            raise ReportError(_("Unknown bucket."))
        if bucket == "hour" and (last - first).days >= MAX_HOUR_DAYS:
            bucket = "day"  # thousands of hourly bars help nobody

        def _int(name: str) -> int | None:
            raw = args.get(name)
            if raw in (None, "", "all"):
                return None
            try:
                value = int(raw)
            except (TypeError, ValueError):
                value = None
            # An id no row can have (0, negative, past the id column's range) is a typo, not a
            # filter: it used to show every row (0) or fail in the database (a 20-digit id).
            if value is None or not 0 < value <= ROW_ID_MAX:
                raise ReportError(_("Bad value for %(name)s.", name=_filter_name(name)))
            return value

        def _text(name: str, limit: int) -> str | None:
            raw = (args.get(name) or "").strip()
            if any(ord(c) < 32 for c in raw):  # PostgreSQL refuses NUL in a parameter
                raise ReportError(_("Bad value for %(name)s.", name=_filter_name(name)))
            return raw[:limit] or None

        start = datetime.combine(first, time(0), tz).astimezone(timezone.utc)
        end = datetime.combine(last + timedelta(days=1), time(0), tz).astimezone(timezone.utc)
        channel = _text("channel", 40)
        return cls(start=start, end=end, tz=tz, bucket=bucket, channel=channel if channel != "all" else None,
                   inbox_id=_int("inbox"), team_id=_int("team"), agent_id=_int("agent"),
                   tag=_text("tag", 60), first_day=first, last_day=last)

    def previous(self) -> Filters:
        """The same-length period just before this one (for "this period vs the last")."""
        span = self.end - self.start
        return Filters(**{**self.__dict__, "start": self.start - span, "end": self.start})

    def as_args(self) -> dict[str, str]:
        out = {"from": self.first_day.isoformat() if self.first_day else "",
               "to": self.last_day.isoformat() if self.last_day else "", "bucket": self.bucket}
        for k, v in (("channel", self.channel), ("inbox", self.inbox_id), ("team", self.team_id),
                     ("agent", self.agent_id), ("tag", self.tag)):
            if v is not None:
                out[k] = str(v)
        return out


def _dialect() -> str:
    return db.session.get_bind().dialect.name


# ---- scoping helpers ----------------------------------------------------------------------

def _channel_inboxes(channel: str):
    return select(Inbox.id).where(Inbox.kind == channel).scalar_subquery()


def _tagged(tag: str):
    return (select(ticket_tags.c.ticket_id).join(Tag, Tag.id == ticket_tags.c.tag_id)
            .where(Tag.name == tag))


def _scope_messages(stmt, f: Filters, *, joined_ticket: bool = False, in_range: bool = True):
    """Customer messages in range matching the filters; joins tickets only when needed."""
    stmt = stmt.where(Message.direction == Direction.inbound)
    if in_range:
        stmt = stmt.where(Message.sent_at >= f.start, Message.sent_at < f.end)
    if f.inbox_id:
        stmt = stmt.where(Message.inbox_id == f.inbox_id)
    if f.channel:
        stmt = stmt.where(Message.inbox_id.in_(_channel_inboxes(f.channel)))
    if (f.team_id or f.agent_id) and not joined_ticket:
        stmt = stmt.join(Ticket, Ticket.id == Message.ticket_id)
    if f.team_id:
        stmt = stmt.where(Ticket.team_id == f.team_id)
    if f.agent_id:
        stmt = stmt.where(Ticket.assignee_id == f.agent_id)
    if f.tag:
        stmt = stmt.where(Message.ticket_id.in_(_tagged(f.tag)))
    return stmt


def _filter_on(stmt, f: Filters, *, inbox, channel, team, agent, ticket):
    """The dashboard filters applied to whichever columns carry them in a query
    (a ticket's own, or a survey's copy taken when it was sent); a column given as None is
    not filtered."""
    for value, col in ((f.inbox_id, inbox), (f.channel, channel), (f.team_id, team), (f.agent_id, agent)):
        if value and col is not None:
            stmt = stmt.where(col == value)
    if f.tag:
        stmt = stmt.where(ticket.in_(_tagged(f.tag)))
    return stmt


def _scope_tickets(stmt, f: Filters, *, created_in_range: bool = True):
    if created_in_range:
        stmt = stmt.where(Ticket.created_at >= f.start, Ticket.created_at < f.end)
    return _filter_on(stmt, f, inbox=Ticket.inbox_id, channel=Ticket.channel, team=Ticket.team_id,
                      agent=Ticket.assignee_id, ticket=Ticket.id)


# ---- time buckets ---------------------------------------------------------------------------

def _slot_seconds(f: Filters) -> int:
    offsets = {f.start.astimezone(f.tz).utcoffset(), f.end.astimezone(f.tz).utcoffset()}
    return 3600 if all(o.total_seconds() % 3600 == 0 for o in offsets if o is not None) else 900


def _slot_expr(col_sql: str, seconds: int):
    """The UTC slot (hour, or quarter hour) of a timestamp column. Whole hours use the cheapest
    expression per backend (date_trunc; the stored text's 'YYYY-MM-DD HH' prefix on SQLite), which
    made the sentiment report several times faster than epoch arithmetic on a million rows."""
    if _dialect() == "postgresql":
        if seconds == 3600:
            return literal_column(f"date_trunc('hour', {col_sql})")
        return literal_column(f"CAST(FLOOR(EXTRACT(EPOCH FROM {col_sql}) / {seconds}) AS BIGINT)")
    if seconds == 3600:
        return literal_column(f"substr({col_sql}, 1, 13)")
    return literal_column(f"CAST(strftime('%s', {col_sql}) AS INTEGER) / {seconds}")


def _slot_start(value, seconds: int) -> datetime:
    """The UTC instant a slot value from ``_slot_expr`` starts at."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str):
        return datetime.strptime(value, "%Y-%m-%d %H").replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(int(value) * seconds, timezone.utc)


def bucket_key(dt: datetime, f: Filters) -> str:
    """The local bucket a UTC instant falls in, as a sortable label."""
    local = dt.astimezone(f.tz)
    if f.bucket == "hour":
        return local.strftime("%Y-%m-%d %H:00")
    day = local.date()
    if f.bucket == "week":
        day = day - timedelta(days=day.weekday())
    return day.isoformat()


def bucket_keys(f: Filters) -> list[str]:
    """Every bucket in the range, empty ones included, in order."""
    keys: dict[str, None] = {}
    step = timedelta(seconds=900 if f.bucket == "hour" else 3600)
    cur = f.start
    while cur < f.end:
        keys[bucket_key(cur, f)] = None
        cur += step
    return list(keys)


def _table(columns: list[str], rows: list[list]) -> dict[str, Any]:
    return {"columns": columns, "rows": rows}


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def _pct(share: float | None) -> float | None:
    """A share (0.75) as a table and its CSV show it, in percent (75.0) under a "(%)" header, as
    CSAT is; the JSON keeps the share itself."""
    return None if share is None else round(float(share) * 100, 1)


def label_names() -> dict[str, str]:
    return {"negative": _("Negative"), "neutral": _("Neutral"), "positive": _("Positive")}


def rule_names() -> dict[str, str]:
    """Escalation rules as the alert list shows them."""
    return {"angry": _("Angry customer"), "strongly_negative": _("Strongly negative"),
            "negative_streak": _("Negative streak")}


def _local_time(dt: datetime, f: Filters) -> str:
    """A stored UTC time as the dashboard shows it: in its zone, to the minute."""
    return dt.astimezone(f.tz).strftime("%Y-%m-%d %H:%M")


# ---- sentiment over time ----------------------------------------------------------------------

def sentiment_series(f: Filters) -> dict[str, Any]:
    """Customer-message sentiment per bucket, stacked by label, with share negative and mean score."""
    seconds = _slot_seconds(f)
    slot = _slot_expr("messages.sent_at", seconds)
    stmt = _scope_messages(
        select(slot, Message.sentiment_label, func.count(), func.sum(Message.sentiment_score))
        .select_from(Message)
        .where(Message.sentiment_label.is_not(None)), f
    ).group_by(slot, Message.sentiment_label)
    keys = bucket_keys(f)
    idx = {k: i for i, k in enumerate(keys)}
    counts = {lab: [0] * len(keys) for lab in LABELS}
    score_sum = [0.0] * len(keys)
    cache: dict[int, str] = {}
    for s, label, n, total in db.session.execute(stmt):
        key = cache.get(s)
        if key is None:
            key = cache[s] = bucket_key(_slot_start(s, seconds), f)
        i = idx.get(key)
        if i is None or label not in counts:
            continue
        counts[label][i] += n
        score_sum[i] += float(total or 0)
    totals = [sum(counts[lab][i] for lab in LABELS) for i in range(len(keys))]
    neg_share = [(_r(counts["negative"][i] / totals[i]) if totals[i] else None) for i in range(len(keys))]
    avg = [(_r(score_sum[i] / totals[i]) if totals[i] else None) for i in range(len(keys))]
    n_all = sum(totals)
    names = label_names()
    rows = [[k, counts["negative"][i], counts["neutral"][i], counts["positive"][i], totals[i],
             _pct(neg_share[i]), avg[i]] for i, k in enumerate(keys)]
    return {
        "buckets": keys,
        "counts": counts,
        "totals": totals,
        "negative_share": neg_share,
        "avg_score": avg,
        "summary": {"messages": n_all,
                    "negative_share": _r(sum(counts["negative"]) / n_all) if n_all else None,
                    "avg_score": _r(sum(score_sum) / n_all) if n_all else None},
        # "time": the labels are bucket keys (YYYY-MM-DD, or YYYY-MM-DD HH:00); the page words them
        "chart": {"type": "bar", "stacked": True, "integer": True, "labels": keys, "time": f.bucket,
                  "datasets": [{"key": lab, "label": names[lab], "data": counts[lab]} for lab in LABELS]
                  + [{"key": "avg_score", "label": _("Average score"), "data": avg, "type": "line",
                      "yAxisID": "score"}]},
        "table": _table([_("Period"), names["negative"], names["neutral"], names["positive"], _("Total"),
                         _("Share negative (%)"), _("Average score")], rows),
    }


# ---- by channel / agent / team -------------------------------------------------------------------

GROUPS = ("channel", "agent", "team")


def _group_col(by: str):
    return {"channel": Ticket.channel, "agent": Ticket.assignee_id, "team": Ticket.team_id}[by]


def _names(by: str, ids: Iterable) -> dict:
    ids = [i for i in ids if i is not None]
    if by == "agent":
        return dict(db.session.execute(select(Agent.id, Agent.name).where(Agent.id.in_(ids or [-1]))).all())
    if by == "team":
        return dict(db.session.execute(select(Team.id, Team.name).where(Team.id.in_(ids or [-1]))).all())
    return {i: channel_label(i) for i in ids}


def _none_name(by: str) -> str:
    return {"agent": _("Unassigned"), "team": _("No team"), "channel": _("Unknown")}[by]


def breakdown(f: Filters, by: str) -> dict[str, Any]:
    """Volume, sentiment mix and the first-to-last sentiment shift per channel, agent or team."""
    if by not in GROUPS:
        raise ReportError(_("Unknown grouping."))
    gcol = _group_col(by)
    if by == "channel":
        # A message arrives on its ticket's inbox, whose kind is the ticket's channel: grouping by
        # the message's inbox reads the report index alone, with no join to tickets.
        group, kinds = Message.inbox_id, dict(db.session.execute(select(Inbox.id, Inbox.kind)).all())
        mix_stmt = _scope_messages(select(group, Message.sentiment_label, func.count()).select_from(Message)
                                   .where(Message.sentiment_label.is_not(None)), f)
    else:
        group, kinds = gcol, None
        mix_stmt = _scope_messages(
            select(gcol, Message.sentiment_label, func.count())
            .select_from(Message).join(Ticket, Ticket.id == Message.ticket_id)
            .where(Message.sentiment_label.is_not(None)), f, joined_ticket=True)
    mix: dict[Any, Counter] = defaultdict(Counter)
    for key, label, n in db.session.execute(mix_stmt.group_by(group, Message.sentiment_label)):
        mix[kinds[key] if kinds else key][label] += n
    shift = Ticket.sentiment_score - Ticket.sentiment_first_score
    has_shift = and_(Ticket.sentiment_score.is_not(None), Ticket.sentiment_first_score.is_not(None))
    t_stmt = _scope_tickets(
        select(gcol, func.count(),
               func.avg(case((has_shift, shift))),
               func.sum(case((and_(has_shift, shift >= 0.25), 1), else_=0)),
               func.sum(case((and_(has_shift, shift <= -0.25), 1), else_=0)))
        .select_from(Ticket), f
    ).group_by(gcol)
    tickets = {key: (n, avg, up, down) for key, n, avg, up, down in db.session.execute(t_stmt)}
    keys = set(mix) | set(tickets)
    names = _names(by, keys)
    groups = []
    for key in keys:
        n, avg, up, down = tickets.get(key, (0, None, 0, 0))
        c = mix.get(key, Counter())
        total = sum(c.values())
        groups.append({"key": key, "name": names.get(key, key) if key is not None else _none_name(by),
                       "tickets": n, "messages": total, **{lab: c.get(lab, 0) for lab in LABELS},
                       "negative_share": _r(c.get("negative", 0) / total) if total else None,
                       "avg_shift": _r(avg), "improved": int(up or 0), "worsened": int(down or 0)})
    groups.sort(key=lambda g: (-g["messages"], -g["tickets"], str(g["name"])))
    ln = label_names()
    rows = [[g["name"], g["tickets"], g["messages"], g["negative"], g["neutral"], g["positive"],
             _pct(g["negative_share"]), g["avg_shift"], g["improved"], g["worsened"]] for g in groups]
    labels = [str(g["name"]) for g in groups]
    return {
        "by": by,
        "groups": groups,
        "chart": {"type": "bar", "stacked": True, "horizontal": True, "integer": True, "labels": labels,
                  "datasets": [{"key": lab, "label": ln[lab], "data": [g[lab] for g in groups]} for lab in LABELS]},
        "table": _table([{"channel": _("Channel"), "agent": _("Agent"), "team": _("Team")}[by], _("Tickets"),
                         _("Customer messages"), ln["negative"], ln["neutral"], ln["positive"],
                         _("Share negative (%)"), _("Average sentiment shift"), _("Turned around"), _("Got worse")],
                        rows),
    }


# ---- operations: backlog, response and resolution times against SLA -------------------------------

def _epoch_expr(col_sql: str):
    """A timestamp column as UTC epoch seconds: thousands of rows come back without
    per-row datetime parsing, which dominated the SLA reports on a million messages."""
    if _dialect() == "postgresql":
        return literal_column(f"CAST(EXTRACT(EPOCH FROM {col_sql}) AS DOUBLE PRECISION)")
    return literal_column(f"CAST(strftime('%s', {col_sql}) AS INTEGER)")


def _ticket_times(f: Filters) -> list[tuple]:
    """Per ticket created in range: (id, agent, team, channel, first response s, resolution s, shift),
    the times in business seconds; the resolution's without the customer's waits (pending) where
    SLA_PAUSE_WHEN_PENDING says so."""
    clock = sla.BusinessClock.from_config(current_app.config)
    pause = sla.Targets.from_config(current_app.config).pause_when_pending
    cum = clock.cumulative_ts
    stmt = _scope_tickets(
        select(Ticket.id, Ticket.assignee_id, Ticket.team_id, Ticket.channel, _epoch_expr("tickets.created_at"),
               _epoch_expr("tickets.first_response_at"), _epoch_expr("tickets.resolved_at"),
               Ticket.sentiment_first_score, Ticket.sentiment_score, Ticket.paused_seconds).select_from(Ticket), f)
    out = []
    for tid, agent_id, team_id, channel, created, fr, resolved, first_s, last_s, paused in \
            db.session.execute(stmt):
        c0 = cum(created)
        out.append((tid, agent_id, team_id, channel,
                    max(cum(fr) - c0, 0) if fr is not None else None,
                    max(cum(resolved) - c0 - (paused if pause else 0), 0) if resolved is not None else None,
                    (last_s - first_s) if first_s is not None and last_s is not None else None))
    return out


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def operations(f: Filters, now: datetime | None = None) -> dict[str, Any]:
    """Backlog now, response/resolution times (median, p90) vs targets, and tickets near breach."""
    cfg = current_app.config
    clock = sla.BusinessClock.from_config(cfg)
    targets = sla.Targets.from_config(cfg)
    now = now or sla.now_utc()
    backlog_stmt = _scope_tickets(select(Ticket.status, func.count()).select_from(Ticket)
                                  .where(Ticket.status.in_(Status.active())), f, created_in_range=False
                                  ).group_by(Ticket.status)
    backlog = {s.value: 0 for s in Status.active()}
    for status, n in db.session.execute(backlog_stmt):
        backlog[status.value if hasattr(status, "value") else status] = n
    times = _ticket_times(f)
    frt = [t[4] for t in times if t[4] is not None]
    rt = [t[5] for t in times if t[5] is not None]

    def stats(values: list[int], target: int) -> dict[str, Any]:
        return {"count": len(values), "median_min": _minutes(sla.percentile(values, 50)),
                "p90_min": _minutes(sla.percentile(values, 90)), "target_min": target // 60,
                "within_target": _r(sum(1 for v in values if v <= target) / len(values)) if values else None}

    first_response = stats(frt, targets.first_response_s)
    resolution = stats(rt, targets.resolution_s)
    # Open tickets measured against their clock now.
    active = db.session.execute(_scope_tickets(
        select(Ticket.id, _epoch_expr("tickets.created_at"), Ticket.first_response_at.is_not(None),
               Ticket.paused_seconds, _epoch_expr("tickets.pending_since"))
        .select_from(Ticket).where(Ticket.status.in_(Status.active())), f, created_in_range=False))
    at_risk = []
    counts = Counter()
    now_cum = clock.cumulative(now)
    pause = targets.pause_when_pending
    for tid, created, fr, paused, pending_since in active:
        start = clock.cumulative_ts(created)
        if not fr:
            which, target, elapsed = "first_response", targets.first_response_s, now_cum - start
        else:  # the resolution clock: stopped since the wait began while the customer is to answer
            until = clock.cumulative_ts(pending_since) if pause and pending_since is not None else now_cum
            which, target, elapsed = "resolution", targets.resolution_s, until - start - (paused if pause else 0)
        elapsed = max(elapsed, 0)
        st = sla.state(elapsed, target, targets.warn_ratio)
        if st == "ok":
            continue
        counts[st] += 1
        at_risk.append({"id": tid, "clock": which, "state": st, "elapsed_min": _minutes(elapsed),
                        "target_min": target // 60, "ratio": round(elapsed / target, 2)})
    at_risk.sort(key=lambda r: (-r["ratio"], r["id"]))
    at_risk = at_risk[:50]
    details = {tid: (subject, status, prio, assignee) for tid, subject, status, prio, assignee in db.session.execute(
        select(Ticket.id, Ticket.subject, Ticket.status, Ticket.priority, Ticket.assignee_id)
        .where(Ticket.id.in_([r["id"] for r in at_risk] or [-1])))}
    names = _names("agent", {d[3] for d in details.values()})
    for r in at_risk:
        subject, status, prio, assignee = details[r["id"]]
        r.update(subject=subject, status=status.value, priority=prio.value, assignee_id=assignee,
                 assignee=names.get(assignee) if assignee else None)
    rows = [[status_label(s), n] for s, n in backlog.items()]
    rows += [[_("First response median (business min)"), first_response["median_min"]],
             [_("First response p90 (business min)"), first_response["p90_min"]],
             [_("First response target (min)"), first_response["target_min"]],
             [_("First response within target (%)"), _pct(first_response["within_target"])],
             [_("Resolution median (business min)"), resolution["median_min"]],
             [_("Resolution p90 (business min)"), resolution["p90_min"]],
             [_("Resolution target (min)"), resolution["target_min"]],
             [_("Resolution within target (%)"), _pct(resolution["within_target"])],
             [_("Breached now"), counts["breached"]], [_("About to breach"), counts["at_risk"]]]
    return {
        "backlog": backlog,
        "first_response": first_response,
        "resolution": resolution,
        "breaching": {"breached": counts["breached"], "at_risk": counts["at_risk"], "tickets": at_risk},
        "business_open_now": clock.is_open(now),
        "chart": {"type": "bar", "integer": True, "labels": [status_label(s) for s in backlog],
                  "datasets": [{"key": "backlog", "label": _("Open tickets"), "data": list(backlog.values())}]},
        "table": _table([_("Measure"), _("Value")], rows),
    }


# ---- surveys ------------------------------------------------------------------------------------

def _survey_scores(kind: str, scores: list[int]) -> float | None:
    if not scores:
        return None
    n = len(scores)
    if kind == "csat":
        return _r(sum(1 for s in scores if s >= 4) / n * 100, 1)
    if kind == "nps":
        return _r((sum(1 for s in scores if s >= 9) - sum(1 for s in scores if s <= 6)) / n * 100, 1)
    return _r(sum(scores) / n, 2)


def _answers(f: Filters) -> list[tuple]:
    stmt = (select(SurveyAnswer.answered_at, Survey.kind, SurveyAnswer.score, Survey.agent_id, Survey.team_id,
                   Survey.channel, Survey.contact_id)
            .join(Survey, Survey.id == SurveyAnswer.survey_id)
            .where(SurveyAnswer.answered_at >= f.start, SurveyAnswer.answered_at < f.end))
    stmt = _filter_on(stmt, f, inbox=Survey.inbox_id, channel=Survey.channel, team=Survey.team_id,
                      agent=Survey.agent_id, ticket=Survey.ticket_id)
    return db.session.execute(stmt).all()


def surveys(f: Filters, by: str = "agent") -> dict[str, Any]:
    """CSAT (% 4-5 of 5), NPS (promoters - detractors) and CES (mean) over time and per group."""
    if by not in GROUPS:
        raise ReportError(_("Unknown grouping."))
    rows = _answers(f)
    keys = bucket_keys(f)
    per_bucket: dict[tuple[str, str], list[int]] = defaultdict(list)
    per_group: dict[tuple[Any, str], list[int]] = defaultdict(list)
    gi = {"agent": 3, "team": 4, "channel": 5}[by]
    for row in rows:
        per_bucket[(bucket_key(row[0], f), row[1])].append(row[2])
        per_group[(row[gi], row[1])].append(row[2])
    series = {k: [_survey_scores(k, per_bucket.get((b, k), [])) for b in keys] for k in ("csat", "nps", "ces")}
    counts = {k: [len(per_bucket.get((b, k), [])) for b in keys] for k in ("csat", "nps", "ces")}
    totals = {k: _survey_scores(k, [r[2] for r in rows if r[1] == k]) for k in ("csat", "nps", "ces")}
    gkeys = sorted({g for g, _k in per_group}, key=lambda x: (x is None, str(x)))
    names = _names(by, gkeys)
    groups = []
    for g in gkeys:
        entry = {"key": g, "name": names.get(g, g) if g is not None else _none_name(by)}
        for k in ("csat", "nps", "ces"):
            entry[k] = _survey_scores(k, per_group.get((g, k), []))
            entry[k + "_n"] = len(per_group.get((g, k), []))
        groups.append(entry)
    table_rows = [[b, series["csat"][i], counts["csat"][i], series["nps"][i], counts["nps"][i],
                   series["ces"][i], counts["ces"][i]] for i, b in enumerate(keys)]
    return {
        "buckets": keys, "series": series, "counts": counts, "summary": {**totals, "answers": len(rows)},
        "groups": groups, "by": by,
        "chart": {"type": "line", "labels": keys, "time": f.bucket,
                  "datasets": [{"key": "csat", "label": _("CSAT (%)"), "data": series["csat"]},
                               {"key": "nps", "label": "NPS", "data": series["nps"]},
                               {"key": "ces", "label": "CES", "data": series["ces"], "yAxisID": "ces"}]},
        "table": _table([_("Period"), _("CSAT (%)"), _("CSAT answers"), "NPS", _("NPS answers"), "CES",
                         _("CES answers")], table_rows),
        "group_table": _table([{"channel": _("Channel"), "agent": _("Agent"), "team": _("Team")}[by],
                               _("CSAT (%)"), _("CSAT answers"), "NPS", _("NPS answers"), "CES", _("CES answers")],
                              [[g["name"], g["csat"], g["csat_n"], g["nps"], g["nps_n"], g["ces"], g["ces_n"]]
                               for g in groups]) | {
            # the narrow card's headers: "answers" after each score, the full name in <abbr title>
            "short": [None, None, _("Answers"), None, _("Answers"), None, _("Answers")]},
    }


# ---- voice of the customer ----------------------------------------------------------------------

def _keyword_source():
    """Rows of (message, keyword): a JSON table function per backend, same result shape."""
    if _dialect() == "postgresql":
        kw = func.jsonb_array_elements_text(Message.keywords).table_valued(column("value", String)) \
            .render_derived(name="kw")
        is_array = func.jsonb_typeof(Message.keywords) == "array"
    else:
        kw = func.json_each(Message.keywords).table_valued(column("value", String)).alias("kw")
        is_array = func.json_type(Message.keywords) == "array"
    return kw, is_array


def _keyword_counts(f: Filters, label: str | None, limit: int = 200) -> tuple[Counter, Counter]:
    """Keyword counts this period and the one before, in one scan over both."""
    kw, is_array = _keyword_source()
    both = Filters(**{**f.__dict__, "start": f.previous().start})
    current = func.sum(case((Message.sent_at >= f.start, 1), else_=0))
    stmt = _scope_messages(
        select(kw.c.value, current, func.sum(case((Message.sent_at < f.start, 1), else_=0)))
        .select_from(Message).join(kw, true())
        .where(Message.keywords.is_not(None), is_array), both
    )
    if label:
        stmt = stmt.where(Message.sentiment_label == label)
    stmt = stmt.group_by(kw.c.value).order_by(current.desc(), kw.c.value).limit(limit)
    cur, before = Counter(), Counter()
    for value, n_cur, n_prev in db.session.execute(stmt):
        if value:
            if n_cur:
                cur[value] = int(n_cur)
            if n_prev:
                before[value] = int(n_prev)
    return cur, before


CHART_TERMS = 15


def keywords(f: Filters, label: str = "negative", limit: int = 30) -> dict[str, Any]:
    """Top keywords in (negative) customer messages this period vs the previous one; rising terms."""
    if label not in LABELS and label != "all":
        raise ReportError(_("Unknown sentiment label."))
    cur, prev = _keyword_counts(f, None if label == "all" else label)
    top = []
    for term, n in cur.most_common(limit):
        p = prev.get(term, 0)
        top.append({"term": term, "count": n, "previous": p, "change": n - p})
    rising = sorted(
        ({"term": t, "count": n, "previous": prev.get(t, 0), "change": n - prev.get(t, 0),
          "ratio": round((n + 1) / (prev.get(t, 0) + 1), 2)} for t, n in cur.items() if n >= 2),
        key=lambda r: (-r["ratio"], -r["count"], r["term"]))
    rising = [r for r in rising if r["ratio"] > 1][:15]
    head = top[:CHART_TERMS]  # the chart shows the head of the list; the chips and the table have all of it
    return {
        "label": label, "top": top, "rising": rising,
        "chart": {"type": "bar", "horizontal": True, "integer": True, "labels": [t["term"] for t in head],
                  "datasets": [{"key": "current", "label": _("This period"), "data": [t["count"] for t in head]},
                               {"key": "previous", "label": _("Previous period"),
                                "data": [t["previous"] for t in head]}]},
        "table": _table([_("Keyword"), _("This period"), _("Previous period"), _("Change")],
                        [[t["term"], t["count"], t["previous"], t["change"]] for t in top]),
    }


def keyword_messages(f: Filters, term: str, label: str = "negative", limit: int = 50) -> dict[str, Any]:
    """Drill-down: the customer messages in range whose keywords contain ``term``."""
    from nlp.text import normalize

    # Keywords are stored normalised (NFKC, lower case): 「ｷｬﾝｾﾙ」 or 「ＰＣ」 in a link must find them.
    term = normalize(term or "").strip()[:100]
    if not term:
        raise ReportError(_("Give a keyword."))
    if label not in LABELS and label != "all":  # as keywords() refuses it: not "every message" silently
        raise ReportError(_("Unknown sentiment label."))
    if "\x00" in term:  # PostgreSQL refuses NUL in a parameter
        raise ReportError(_("Bad value for %(name)s.", name=_("Keyword")))
    kw, is_array = _keyword_source()
    stmt = _scope_messages(
        select(Message.id, Message.ticket_id, Message.body, Message.sent_at, Message.sentiment_label,
               Message.sentiment_score)
        .select_from(Message).join(kw, true())
        .where(Message.keywords.is_not(None), is_array, kw.c.value == term), f
    )
    if label in LABELS:
        stmt = stmt.where(Message.sentiment_label == label)
    stmt = stmt.order_by(Message.sent_at.desc(), Message.id.desc()).limit(limit)
    rows = [{"id": mid, "ticket_id": tid, "excerpt": (body or "")[:200],
             "sent_at": _local_time(sent, f), "label": lab, "score": _r(score)}
            for mid, tid, body, sent, lab, score in db.session.execute(stmt)]
    names = label_names()
    return {"term": term, "messages": rows,
            "table": _table([_("Ticket"), _("Sent at"), _("Sentiment"), _("Score"), _("Message")],
                            [[r["ticket_id"], r["sent_at"], names.get(r["label"], r["label"]), r["score"],
                              r["excerpt"]] for r in rows])}


# ---- customers: at risk and loyal ---------------------------------------------------------------

LOW_ANSWER = {"csat": 2, "nps": 6, "ces": 3}  # at or below: an unhappy answer
HIGH_ANSWER = {"csat": 5, "nps": 9, "ces": 6}  # at or above: a promoter


def _survey_flags(contact_ids_sub, start: datetime, end: datetime):
    """Per contact: how many unhappy and how many promoter answers (a subquery)."""
    def any_of(limits: dict[str, int], low: bool):
        return or_(*[and_(Survey.kind == kind, SurveyAnswer.score <= lim if low else SurveyAnswer.score >= lim)
                     for kind, lim in limits.items()])
    return (select(Survey.contact_id, func.sum(case((any_of(LOW_ANSWER, True), 1), else_=0)).label("low"),
                   func.sum(case((any_of(HIGH_ANSWER, False), 1), else_=0)).label("high"))
            .join(SurveyAnswer, SurveyAnswer.survey_id == Survey.id)
            .where(Survey.contact_id.in_(contact_ids_sub), SurveyAnswer.answered_at >= start,
                   SurveyAnswer.answered_at < end)
            .group_by(Survey.contact_id).subquery("answers"))


def _reason_text(code: str, params: dict) -> str:
    texts = {
        "latest_negative": lambda: _("Latest message negative (%(score)s)", **params),
        "worsening": lambda: _("Sentiment getting worse"),
        "open_negative": lambda: _("%(n)s unresolved negative ticket(s)", **params),
        "repeat": lambda: _("%(n)s tickets in %(days)s days", **params),
        "channels": lambda: _("Wrote on %(n)s channels", **params),
        "low_survey": lambda: _("Low survey answer"),
        "history": lambda: _("%(n)s tickets over time", **params),
        "tenure": lambda: _("Customer for %(n)s days", **params),
        "latest_positive": lambda: _("Latest message positive"),
        "improving": lambda: _("Sentiment improving"),
        "promoter": lambda: _("Promoter in surveys"),
    }
    return texts[code]()


def _points(condition, n: int):
    return case((condition, n), else_=0)


def _no_params(_row) -> dict:
    return {}


def customers(f: Filters, segment: str = "at_risk", limit: int = 100, repeat_days: int = 7) -> dict[str, Any]:
    """A transparent score per customer active in the range, with the reasons that made it.

    Each rule is one SQL expression for its points, so the database adds them up, sorts and
    keeps the top ``limit`` (thousands of active customers never reach Python); a customer's
    reasons are the rules that gave points, with the numbers behind them."""
    if segment not in ("at_risk", "loyal"):
        raise ReportError(_("Unknown segment."))
    recent = f.end - timedelta(days=repeat_days)
    active_neg = and_(Ticket.status.in_(Status.active()), Ticket.sentiment_label == "negative")
    active_in_range = _scope_tickets(select(Ticket.contact_id).where(Ticket.last_message_at >= f.start,
                                                                    Ticket.last_message_at < f.end),
                                     f, created_in_range=False)
    history = (select(Ticket.contact_id, func.count().label("tickets"),
                      func.sum(case((Ticket.created_at >= recent, 1), else_=0)).label("recent"),
                      func.count(func.distinct(case((Ticket.created_at >= recent, Ticket.channel))))
                      .label("channels"),
                      func.sum(case((active_neg, 1), else_=0)).label("open_negative"),
                      func.min(Ticket.created_at).label("first_at"))
               .where(Ticket.contact_id.in_(active_in_range), Ticket.created_at < f.end)
               # At risk needs only recent, in-range or open-negative tickets; loyalty needs the whole history.
               .where(true() if segment == "loyal" else or_(Ticket.created_at >= recent, active_neg,
                                                            Ticket.last_message_at >= f.start))
               .group_by(Ticket.contact_id).subquery("history"))
    answers = _survey_flags(active_in_range, f.end - timedelta(days=180), f.end)
    h = history.c
    # code -> (points as SQL, the numbers its reason shows)
    if segment == "at_risk":
        rules = {
            "latest_negative": (_points(Contact.sentiment_latest_label == "negative", 3),
                                lambda r: {"score": f"{r.sentiment_latest_score:.2f}"
                                           if r.sentiment_latest_score is not None else "?"}),
            "worsening": (_points(Contact.sentiment_trend == "worsening", 2), _no_params),
            "open_negative": (case((h.open_negative >= 3, 6), else_=2 * h.open_negative),
                              lambda r: {"n": r.open_negative}),
            "repeat": (case((h.recent >= 4, 3), (h.recent >= 2, h.recent - 1), else_=0),
                       lambda r: {"n": r.recent, "days": repeat_days}),
            "channels": (_points(h.channels >= 2, 1), lambda r: {"n": r.channels}),
            "low_survey": (_points(answers.c.low > 0, 3), _no_params),
        }
    else:
        rules = {
            "history": (case((h.tickets >= 9, 3), (h.tickets >= 6, 2), (h.tickets >= 3, 1), else_=0),
                        lambda r: {"n": r.tickets}),
            "tenure": (_points(h.first_at <= f.end - timedelta(days=180), 2),
                       lambda r: {"n": (f.end - r.first_at).days}),
            "latest_positive": (_points(Contact.sentiment_latest_label == "positive", 2), _no_params),
            "improving": (_points(Contact.sentiment_trend == "improving", 1), _no_params),
            "promoter": (_points(answers.c.high > 0, 3), _no_params),
        }
    exprs = [expr for expr, _params in rules.values()]
    score = sum(exprs[1:], exprs[0])
    stmt = (select(Contact.id, Contact.name, Contact.email, Contact.sentiment_latest_label,
                   Contact.sentiment_latest_score, Contact.sentiment_trend, h.tickets, h.recent, h.channels,
                   h.open_negative, h.first_at, score.label("score"),
                   *[expr.label(f"points_{code}") for code, (expr, _params) in rules.items()])
            .join(history, h.contact_id == Contact.id)
            .outerjoin(answers, answers.c.contact_id == Contact.id)
            .where(score > 0))
    if segment == "loyal":
        stmt = stmt.where(h.open_negative == 0)  # an unhappy open case rules out "loyal" for now
    out = []
    for r in db.session.execute(stmt.order_by(score.desc(), Contact.id).limit(limit)):
        reasons = [(code, params(r)) for code, (_expr, params) in rules.items()
                   if r._mapping[f"points_{code}"] > 0]
        out.append({"id": r.id, "name": r.name or r.email or f"#{r.id}", "email": r.email, "score": int(r.score),
                    "reason_codes": [code for code, _p in reasons],
                    "reasons": [_reason_text(code, p) for code, p in reasons],
                    "sentiment": r.sentiment_latest_label, "trend": r.sentiment_trend, "tickets": int(r.tickets)})
    return {
        "segment": segment, "customers": out,
        "table": _table([_("Customer"), _("Email address"), _("Score"), _("Tickets"), _("Reasons")],
                        [[c["name"], c["email"] or "", c["score"], c["tickets"], " / ".join(c["reasons"])]
                         for c in out]),
    }


# ---- agent scorecard ----------------------------------------------------------------------------

def agent_scorecard(f: Filters) -> dict[str, Any]:
    """Per agent: first response and resolution (business time), CSAT and sentiment shift."""
    times = _ticket_times(f)
    per: dict[Any, dict[str, list]] = defaultdict(lambda: {"frt": [], "rt": [], "shift": [], "n": []})
    for _tid, agent_id, _team, _channel, frt, rt, shift in times:
        p = per[agent_id]
        p["n"].append(1)
        if frt is not None:
            p["frt"].append(frt)
        if rt is not None:
            p["rt"].append(rt)
        if shift is not None:
            p["shift"].append(shift)
    answers = _answers(f)
    csat: dict[Any, list[int]] = defaultdict(list)
    for row in answers:
        if row[1] == "csat":
            csat[row[3]].append(row[2])
    ids = set(per) | set(csat)
    names = _names("agent", ids)
    cards = []
    for aid in ids:
        p = per.get(aid, {"frt": [], "rt": [], "shift": [], "n": []})
        cards.append({"agent_id": aid, "name": names.get(aid, aid) if aid is not None else _("Unassigned"),
                      "tickets": len(p["n"]), "resolved": len(p["rt"]),
                      "frt_median_min": _minutes(sla.percentile(p["frt"], 50)),
                      "rt_median_min": _minutes(sla.percentile(p["rt"], 50)),
                      "csat": _survey_scores("csat", csat.get(aid, [])), "csat_n": len(csat.get(aid, [])),
                      "avg_shift": _r(sum(p["shift"]) / len(p["shift"])) if p["shift"] else None})
    cards.sort(key=lambda c: (c["agent_id"] is None, -c["tickets"], str(c["name"])))
    return {
        "agents": cards,
        "chart": {"type": "bar", "labels": [str(c["name"]) for c in cards],
                  "datasets": [{"key": "avg_shift", "label": _("Average sentiment shift"),
                                "data": [c["avg_shift"] for c in cards]}]},
        "table": _table([_("Agent"), _("Tickets"), _("Resolved"), _("First response median (business min)"),
                         _("Resolution median (business min)"), _("CSAT (%)"), _("CSAT answers"),
                         _("Average sentiment shift")],
                        [[c["name"], c["tickets"], c["resolved"], c["frt_median_min"], c["rt_median_min"],
                          c["csat"], c["csat_n"], c["avg_shift"]] for c in cards]),
    }


# ---- who is working now -----------------------------------------------------------------------

def staffing(f: Filters) -> dict[str, Any]:
    """Now, whatever the dates: each active agent's state (a page of the desk open or not, and
    available or busy for automatic assignment), their tickets to work (new and open) and their
    pending ones, and how many tickets wait for an agent (new or open, unassigned). The team and
    agent filters choose the agents; the inbox, channel and tag filters the tickets counted."""
    from ..models import Availability
    from ..models.agent import team_members
    from ..realtime import presence
    from .assign import WORKING

    stmt = select(Agent).where(Agent.active.is_(True)).order_by(Agent.name, Agent.id)
    if f.team_id:
        stmt = stmt.where(Agent.id.in_(select(team_members.c.agent_id).where(team_members.c.team_id == f.team_id)))
    if f.agent_id:
        stmt = stmt.where(Agent.id == f.agent_id)
    agents = db.session.scalars(stmt).all()
    ids = [a.id for a in agents]

    def tickets(stmt):
        return _filter_on(stmt, f, inbox=Ticket.inbox_id, channel=Ticket.channel, team=None, agent=None,
                          ticket=Ticket.id)

    counts: dict[tuple[int, Status], int] = {}
    if ids:
        rows = db.session.execute(tickets(
            select(Ticket.assignee_id, Ticket.status, func.count())
            .where(Ticket.assignee_id.in_(ids), Ticket.status.in_(Status.active()))
            .group_by(Ticket.assignee_id, Ticket.status))).all()
        counts = {(aid, status): n for aid, status, n in rows}
    waiting_stmt = tickets(select(func.count()).select_from(Ticket)
                           .where(Ticket.assignee_id.is_(None), Ticket.status.in_(WORKING)))
    if f.team_id:
        waiting_stmt = waiting_stmt.where(Ticket.team_id == f.team_id)
    waiting = db.session.scalar(waiting_stmt)
    online = presence.registry().online_among(ids)
    states = {"available": _("Available"), "busy": _("Busy"), "online": _("Online"), "offline": _("Offline")}
    people = []
    for a in agents:
        if a.id not in online:
            state = "offline"
        elif a.sees_all_inboxes:  # not given tickets automatically: neither available nor busy
            state = "online"
        else:
            state = "busy" if a.availability is Availability.busy else "available"
        people.append({"agent_id": a.id, "name": a.name, "state": state,
                       "working": sum(counts.get((a.id, s), 0) for s in WORKING),
                       "pending": counts.get((a.id, Status.pending), 0)})
    order = {"available": 0, "busy": 1, "online": 2, "offline": 3}
    people.sort(key=lambda p: (order[p["state"]], -p["working"]))
    return {
        "agents": people,
        "waiting": waiting,
        "online": sum(p["state"] != "offline" for p in people),
        "table": _table([_("Agent"), _("State"), _("New and open"), _("Pending")],
                        [[p["name"], states[p["state"]], p["working"], p["pending"]] for p in people]),
    }


# ---- alerts ------------------------------------------------------------------------------------

def alert_json(alert: Alert, ticket: Ticket | None = None) -> dict[str, Any]:
    ticket = ticket or db.session.get(Ticket, alert.ticket_id)
    ack_by = db.session.get(Agent, alert.acknowledged_by_id) if alert.acknowledged_by_id else None
    excerpt = ""
    if alert.message_id:
        excerpt = (db.session.scalar(select(Message.body).where(Message.id == alert.message_id)) or "")[:140]
    return {"id": alert.id, "ticket_id": alert.ticket_id, "rule": alert.rule, "detail": alert.detail,
            "subject": ticket.subject if ticket else "", "contact": ticket.contact.display_name if ticket else "",
            "assignee": {"id": ticket.assignee.id, "name": ticket.assignee.name} if ticket and ticket.assignee
            else None, "excerpt": excerpt, "created_at": alert.created_at.isoformat(),
            "acknowledged_by": {"id": ack_by.id, "name": ack_by.name} if ack_by else None,
            "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None}


def alerts(f: Filters, limit: int = 50, include_acknowledged: bool = True) -> dict[str, Any]:
    """The alerts raised in the range on tickets that fit the filters (as they are now, like the
    other reports), unacknowledged first."""
    stmt = (select(Alert).where(Alert.created_at >= f.start, Alert.created_at < f.end)
            .order_by(Alert.acknowledged_at.is_not(None), Alert.created_at.desc(), Alert.id.desc()))
    if f.inbox_id or f.channel or f.team_id or f.agent_id or f.tag:
        stmt = _scope_tickets(stmt.join(Ticket, Ticket.id == Alert.ticket_id), f, created_in_range=False)
    if not include_acknowledged:
        stmt = stmt.where(Alert.acknowledged_at.is_(None))
    found = list(db.session.scalars(stmt.limit(limit)))
    rows = [alert_json(a) for a in found]
    rules = rule_names()
    return {"alerts": rows,
            "table": _table([_("Ticket"), _("Rule"), _("Customer"), _("Assignee"), _("Raised"), _("Acknowledged by")],
                            [[r["ticket_id"], rules.get(r["rule"], r["rule"]), r["contact"],
                              (r["assignee"] or {}).get("name", ""), _local_time(a.created_at, f),
                              (r["acknowledged_by"] or {}).get("name", "")] for a, r in zip(found, rows)])}


def acknowledge(alert: Alert, agent: Agent) -> bool:
    """Mark an alert seen; True if this call did it (a second click changes nothing)."""
    from ..models._types import utcnow
    from ..realtime import events

    if alert.acknowledged_at is not None:
        return False
    alert.acknowledged_by_id = agent.id
    alert.acknowledged_at = utcnow()
    db.session.flush()
    events.publish(ALERT_ACKNOWLEDGED, alert_json(alert), ticket_id=alert.ticket_id, supervisors_only=True)
    db.session.commit()
    return True


ALERT_ACKNOWLEDGED = "alert.acknowledged"


def filter_choices() -> dict[str, list]:
    """Values for the dashboard's filter menus."""
    return {
        "channels": sorted(set(db.session.scalars(select(Inbox.kind)))),
        "inboxes": db.session.execute(select(Inbox.id, Inbox.name).order_by(Inbox.name)).all(),
        "teams": db.session.execute(select(Team.id, Team.name).order_by(Team.name)).all(),
        "agents": db.session.execute(select(Agent.id, Agent.name).where(Agent.active.is_(True))
                                     .order_by(Agent.name)).all(),
        "tags": list(db.session.scalars(select(Tag.name).order_by(Tag.name).limit(200))),
    }


__all__ = ["Filters", "ReportError", "acknowledge", "agent_scorecard", "alerts", "breakdown", "customers",
           "keyword_messages", "keywords", "operations", "sentiment_series", "surveys"]
