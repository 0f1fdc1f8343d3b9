"""Supervisor dashboards: sentiment, operations, surveys, alerts and customer insight.

Pages render a shell; the numbers come from ``/supervisor/api/<report>`` (JSON, or CSV with
``?format=csv``) so every chart has its table and export from the same data.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from types import SimpleNamespace

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request
from flask_babel import gettext as _
from flask_login import current_user

from ..extensions import db, login_manager
from ..models import Alert
from ..services import reports, sla
from ..services.reports import Filters, ReportError

bp = Blueprint("supervisor", __name__, url_prefix="/supervisor")
log = logging.getLogger(__name__)


def _is_api() -> bool:
    return request.path.startswith(f"{bp.url_prefix}/api/") or request.method == "POST"


@bp.before_request
def _require_supervisor():
    """Anonymous: login page (or 401 for the API); plain agents: 403 everywhere."""
    if not current_user.is_authenticated:
        if _is_api():
            return jsonify(error="login required"), 401
        return login_manager.unauthorized()
    if not current_user.is_supervisor:
        log.warning("agent %s denied supervisor %s", current_user.id, request.path)
        if _is_api():
            return jsonify(error="forbidden"), 403
        abort(403)
    return None


_REPORTS = {
    "sentiment": lambda f, a: reports.sentiment_series(f),
    "breakdown": lambda f, a: reports.breakdown(f, a.get("by", "channel")),
    "operations": lambda f, a: reports.operations(f),
    "surveys": lambda f, a: reports.surveys(f, a.get("by", "agent")),
    "keywords": lambda f, a: reports.keywords(f, a.get("label", "negative")),
    "keyword-messages": lambda f, a: reports.keyword_messages(f, a.get("term", ""), a.get("label", "negative")),
    "customers": lambda f, a: reports.customers(f, a.get("segment", "at_risk")),
    "agents": lambda f, a: reports.agent_scorecard(f),
    "staffing": lambda f, a: reports.staffing(f),
    "alerts": lambda f, a: reports.alerts(f),
}
# What ?format=csv may export: the tables of a report, nothing else of its data.
CSV_TABLES = ("table", "group_table")
# The parameter that tells a report's tables apart on one page (by channel, agent or team...):
# it goes into the file name, so two downloads from the dashboard are not both breakdown-<range>.csv.
CSV_VARIANTS = {"breakdown": "by", "surveys": "by", "keywords": "label", "customers": "segment"}
FILTER_ARGS = ("from", "to", "bucket", "channel", "inbox", "team", "agent", "tag")


def _requested(args) -> SimpleNamespace:
    """A refused filter as it was asked for (defaults where nothing was given), so the form
    shows what the reports were asked for rather than a range no one chose."""
    default = Filters.from_args({})

    def _id(name: str) -> int | None:
        # Not str.isdigit(): it is True for 「²」, which int() refuses (this page then crashed).
        try:
            return int(args.get(name, ""))
        except ValueError:
            return None

    return SimpleNamespace(first_day=args.get("from") or default.first_day,
                           last_day=args.get("to") or default.last_day,
                           bucket=args.get("bucket") or default.bucket, channel=args.get("channel") or None,
                           inbox_id=_id("inbox"), team_id=_id("team"), agent_id=_id("agent"),
                           tag=args.get("tag") or None, tz=default.tz,
                           as_args=lambda: {k: v for k, v in args.items() if k in FILTER_ARGS})


def _page(template: str, **context):
    try:
        f, error = Filters.from_args(request.args), None
    except ReportError as exc:
        log.info("bad dashboard filter %s: %s", request.query_string, exc)
        f, error = _requested(request.args), str(exc)
    page = render_template(template, f=f, filter_error=error, choices=reports.filter_choices(),
                           tz=str(f.tz), labels=reports.label_names(), **context)
    return page, 400 if error else 200


@bp.get("/")
def dashboard():
    return _page("supervisor/dashboard.html",
                 pending_pauses=sla.Targets.from_config(current_app.config).pause_when_pending)


@bp.get("/insight")
def insight():
    return _page("supervisor/insight.html")


@bp.get("/api/<name>")
def report(name: str):
    fn = _REPORTS.get(name)
    if fn is None:
        return jsonify(error="unknown report"), 404
    try:
        f = Filters.from_args(request.args)
        data = fn(f, request.args)
    except ReportError as exc:
        log.info("report %s refused %s: %s", name, request.query_string, exc)
        return jsonify(error=str(exc)), 400
    if request.args.get("format") == "csv":
        table = request.args.get("table", "table")
        if table not in CSV_TABLES or table not in data:
            return jsonify(error=_("This report has no such table.")), 400
        variant = data.get(CSV_VARIANTS.get(name, ""))  # the value the report accepted, never raw input
        stem = f"{name}-{variant}" if variant else name
        return csv_response(data[table], f"{stem}-{f.first_day}-{f.last_day}.csv")
    return jsonify(data)


def _cell(value):
    # Keep spreadsheets from running customer text as a formula (CSV injection).
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def csv_response(table: dict, filename: str) -> Response:
    """UTF-8 with a BOM and CRLF rows: what Excel in Japan opens without mojibake."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([_cell(c) for c in table["columns"]])
    for row in table["rows"]:
        w.writerow([_cell(c) for c in row])
    resp = Response("\ufeff" + buf.getvalue(), mimetype="text/csv")
    resp.headers["Content-Type"] = "text/csv; charset=utf-8"
    resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return resp


@bp.post("/alerts/<int:alert_id>/ack")
def acknowledge(alert_id: int):
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        return jsonify(error=_("No such alert.")), 404
    changed = reports.acknowledge(alert, current_user)
    log.info("alert %s acknowledged by %s (changed=%s)", alert_id, current_user.id, changed)
    return jsonify(ok=True, changed=changed, alert=reports.alert_json(alert))


def _chartjs_path() -> str:
    """Chart.js 4.5+ ships its minified UMD build as chart.umd.js; older releases as chart.umd.min.js."""
    dist = Path(current_app.static_folder) / "node_modules" / "chart.js" / "dist"
    name = "chart.umd.min.js" if (dist / "chart.umd.min.js").exists() else "chart.umd.js"
    return f"node_modules/chart.js/dist/{name}"


@bp.context_processor
def _supervisor_globals():
    return {"chartjs_path": _chartjs_path()}
