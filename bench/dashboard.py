"""Dashboard query latency on generated data, SQLite and PostgreSQL, with and without the
reporting indexes, side by side.

    python -m bench.dashboard --messages 1000000 --db both
    python -m bench.dashboard --messages 200000 --db sqlite --repeat 10

Data: a year of traffic (tickets spread over 365 days, ~10 messages each, 70 % from the
customer, labelled, with keywords), 5 channels, 20 agents, 4 teams, surveys on resolved
tickets. Rows go in with executemany (Core insert, batched) or COPY on PostgreSQL, so a
million messages take minutes. Each endpoint is called through the Flask test client as a
logged-in supervisor (view + query + JSON), for the last 30 days, ``--repeat`` times per
phase; we print p50 and p95 per endpoint without the reporting indexes (baseline) and with
them, and the ratio. The two phases alternate in ``--rounds`` rounds so that load from other
work on a shared machine falls on both, and the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402

from helpdesk import create_app  # noqa: E402
from helpdesk.extensions import db  # noqa: E402
from helpdesk.models import Agent  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1/sv_bench"
CHANNELS = ["email", "chat", "line", "messenger", "social"]
WORDS = ["返金", "配送", "遅延", "ログイン", "パスワード", "請求", "解約", "不具合", "交換", "サイズ", "在庫", "クーポン",
         "ポイント", "領収書", "電話", "対応", "アプリ", "エラー", "キャンセル", "注文"]
ENDPOINTS = [
    ("sentiment (day)", "/supervisor/api/sentiment"),
    ("sentiment (hour, 7d)", "/supervisor/api/sentiment?bucket=hour&days=7"),
    ("sentiment, channel=line", "/supervisor/api/sentiment?channel=line"),
    ("sentiment, agent filter", "/supervisor/api/sentiment?agent=3"),
    ("breakdown by channel", "/supervisor/api/breakdown?by=channel"),
    ("breakdown by agent", "/supervisor/api/breakdown?by=agent"),
    ("breakdown by team", "/supervisor/api/breakdown?by=team"),
    ("operations / SLA", "/supervisor/api/operations"),
    ("surveys", "/supervisor/api/surveys"),
    ("keywords (VoC)", "/supervisor/api/keywords"),
    ("keyword drill-down", "/supervisor/api/keyword-messages?term=返金"),
    ("at-risk customers", "/supervisor/api/customers?segment=at_risk"),
    ("loyal customers", "/supervisor/api/customers?segment=loyal"),
    ("agent scorecard", "/supervisor/api/agents"),
    ("alerts", "/supervisor/api/alerts"),
]

# The reporting indexes under test (declared on the models; dropped for the baseline run).
REPORT_INDEXES = {
    "ix_messages_report": "CREATE INDEX ix_messages_report ON messages "
                          "(direction, sent_at, sentiment_label, sentiment_score, inbox_id, ticket_id)",
    "ix_messages_keywords": "CREATE INDEX ix_messages_keywords ON messages "
                            "(direction, sentiment_label, sent_at, keywords)",
    "ix_tickets_report": "CREATE INDEX ix_tickets_report ON tickets (created_at, assignee_id, team_id, channel, "
                         "inbox_id, first_response_at, resolved_at, sentiment_first_score, sentiment_score)",
    "ix_tickets_contact_last": "CREATE INDEX ix_tickets_contact_last ON tickets (last_message_at, contact_id)",
}


def _app(url: str):
    return create_app({"TESTING": True, "SECRET_KEY": "bench", "DATABASE_URL": url, "JOBS": "inline",
                       "SENTIMENT_ENABLED": False, "RATELIMIT_ENABLED": False, "WTF_CSRF_ENABLED": False})


def _reset(url: str) -> None:
    if url.startswith("postgresql"):
        db.session.remove()
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    db.create_all()


def _batches(rows, size=20_000):
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def _copy(table: str, cols: list[str], rows: list[tuple]) -> None:
    """PostgreSQL COPY through psycopg: the fastest way in for a million rows."""
    raw = db.engine.raw_connection()
    try:
        with raw.cursor() as cur:
            with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(row)
        raw.commit()
    finally:
        raw.close()


def generate(n_messages: int, n_tickets: int, seed: int = 7) -> dict:
    """Bulk-insert a year of traffic; returns counts and seconds taken."""
    from helpdesk.models import Agent, Contact, Inbox, Team
    from helpdesk.models.agent import team_members

    rnd = random.Random(seed)
    t0 = time.perf_counter()
    pg = db.engine.dialect.name == "postgresql"
    now = datetime.now(timezone.utc).replace(microsecond=0)
    year_ago = now - timedelta(days=365)
    with db.engine.begin() as conn:
        conn.execute(insert(Team), [{"name": f"チーム{i}"} for i in range(4)])
        conn.execute(insert(Inbox), [{"name": f"{k} 受信箱", "kind": k, "key": f"bench-{k}", "settings": {},
                                      "secrets": {}} for k in CHANNELS])
        conn.execute(insert(Agent), [{"email": f"a{i}@bench.jp", "name": f"担当{i}", "password_hash": "x",
                                      "role": "supervisor" if i == 0 else "agent"} for i in range(20)])
        conn.execute(insert(team_members), [{"team_id": 1 + i % 4, "agent_id": i + 1} for i in range(1, 20)])
        n_contacts = max(1, n_tickets // 3)
        conn.execute(insert(Contact), [{"name": f"顧客{i}", "email": f"c{i}@example.jp", "attributes": {},
                                        "sentiment_latest_label": rnd.choice(["negative", "neutral", "positive"]),
                                        "sentiment_latest_score": round(rnd.uniform(-1, 1), 3),
                                        "sentiment_trend": rnd.choice([None, "steady", "worsening", "improving"]),
                                        "created_at": year_ago} for i in range(n_contacts)])
    per_ticket = max(1, n_messages // n_tickets)
    tickets, messages, surveys, answers = [], [], [], []
    mid = 0
    for tid in range(1, n_tickets + 1):
        created = year_ago + timedelta(seconds=rnd.randrange(365 * 86400))
        inbox_id = rnd.randrange(5) + 1
        agent = rnd.randrange(1, 20) + 1 if rnd.random() < 0.9 else None
        team = 1 + (agent - 1) % 4 if agent else None
        age_days = (now - created).days
        status = ("resolved" if rnd.random() < 0.6 else "closed") if age_days > 7 else \
            rnd.choice(["new", "open", "pending", "resolved"])
        fr = created + timedelta(minutes=rnd.expovariate(1 / 90)) if status != "new" else None
        resolved = created + timedelta(hours=rnd.expovariate(1 / 20)) if status in ("resolved", "closed") else None
        first_s, last_s = round(rnd.uniform(-1, 1), 3), round(rnd.uniform(-1, 1), 3)
        label = "negative" if last_s < -0.3 else "positive" if last_s > 0.3 else "neutral"
        last_at = created
        for k in range(per_ticket):
            mid += 1
            at = created + timedelta(minutes=k * rnd.randrange(1, 240))
            last_at = max(last_at, at)
            inbound = rnd.random() < 0.7
            score = round(rnd.uniform(-1, 1), 3) if inbound else None
            mlabel = (None if not inbound else "negative" if score < -0.3 else "positive" if score > 0.3
                      else "neutral")
            kws = json.dumps(rnd.sample(WORDS, 2), ensure_ascii=False) if inbound else None
            messages.append((mid, tid, inbox_id, (tid % n_contacts) + 1 if inbound else None,
                             None if inbound else agent, "inbound" if inbound else "outbound", "お問い合わせ本文", "[]", "{}",
                             f"b{mid}", at, at, "none" if inbound else "sent", 0, False, mlabel, score, kws, ""))
        tickets.append((tid, inbox_id, (tid % n_contacts) + 1, CHANNELS[inbox_id - 1], "件名", status, "normal",
                        agent, team, "", created, created, last_at, fr, resolved, label, last_s, first_s, last_s))
        if resolved and rnd.random() < 0.3:
            sid = len(surveys) + 1
            kind = rnd.choice(["csat", "csat", "nps", "ces"])
            surveys.append((sid, tid, kind, inbox_id, CHANNELS[inbox_id - 1], (tid % n_contacts) + 1, agent, team,
                            resolved))
            hi = {"csat": 5, "nps": 10, "ces": 7}[kind]
            answers.append((sid, sid, rnd.randint(0 if kind == "nps" else 1, hi), "", "link",
                            resolved + timedelta(hours=2)))
    tcols = ["id", "inbox_id", "contact_id", "channel", "subject", "status", "priority", "assignee_id", "team_id",
             "reply_to", "created_at", "updated_at", "last_message_at", "first_response_at", "resolved_at",
             "sentiment_label", "sentiment_score", "sentiment_first_score", "sentiment_worst_score"]
    mcols = ["id", "ticket_id", "inbox_id", "contact_id", "agent_id", "direction", "body", "attachments", "meta",
             "external_id", "sent_at", "created_at", "delivery", "delivery_attempts", "unsent", "sentiment_label",
             "sentiment_score", "keywords", "search_text"]
    scols = ["id", "ticket_id", "kind", "inbox_id", "channel", "contact_id", "agent_id", "team_id", "created_at"]
    acols = ["id", "survey_id", "score", "comment", "via", "answered_at"]
    t_gen = time.perf_counter()
    if pg:
        _copy("tickets", tcols, tickets)
        _copy("messages", mcols, messages)
        _copy("surveys", scols, surveys)
        _copy("survey_answers", acols, answers)
        with db.engine.begin() as conn:
            for table in ("tickets", "messages", "surveys", "survey_answers"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
            conn.execute(text("ANALYZE"))
    else:
        def fmt(v):
            return v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            for table, cols, rows in (("tickets", tcols, tickets), ("messages", mcols, messages),
                                      ("surveys", scols, surveys), ("survey_answers", acols, answers)):
                sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                for chunk in _batches(rows):
                    cur.executemany(sql, [tuple(fmt(v) for v in r) for r in chunk])
            raw.commit()
            cur.execute("ANALYZE")
            raw.commit()
        finally:
            raw.close()
    return {"tickets": len(tickets), "messages": len(messages), "answers": len(answers),
            "build_s": round(t_gen - t0, 1), "insert_s": round(time.perf_counter() - t_gen, 1)}


def _set_indexes(on: bool) -> None:
    with db.engine.begin() as conn:
        for name, ddl in REPORT_INDEXES.items():
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
            if on:
                conn.execute(text(ddl))
    _vacuum()


def _vacuum() -> None:
    """Steady state: PostgreSQL's autovacuum would have set the visibility map (index-only scans)."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if db.engine.dialect.name == "postgresql" else "ANALYZE"))


def measure(app, repeat: int, samples: dict[str, list[float]]) -> None:
    """Call every endpoint ``repeat`` times after one warm-up call; add the times (ms) to ``samples``."""
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["_user_id"] = db.session.get(Agent, 1).get_id()  # agent 1 is the supervisor
        sess["_fresh"] = True
    today = datetime.now(timezone.utc).date()
    for label, path in ENDPOINTS:
        days = 7 if "days=7" in path else 30
        sep = "&" if "?" in path else "?"
        url = f"{path}{sep}from={today - timedelta(days=days - 1)}&to={today}"
        client.get(url)  # warm caches (and the business-day table)
        for _ in range(repeat):
            t = time.perf_counter()
            r = client.get(url)
            samples.setdefault(label, []).append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, (url, r.status_code, r.get_data(as_text=True)[:200])


def _p50_p95(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]


def _ensure_pg_database(url: str) -> None:
    """Create the benchmark database on first use (it is dropped and refilled, never shared)."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def run_backend(name: str, url: str, n_messages: int, n_tickets: int, repeat: int, rounds: int,
                generate_data: bool) -> None:
    """Baseline (no reporting indexes) and indexed phases in alternating rounds (off/on, on/off,
    ...), so load from other work on a shared machine falls on both alike."""
    if url.startswith("postgresql"):
        _ensure_pg_database(url)
    app = _app(url)
    base: dict[str, list[float]] = {}
    tuned: dict[str, list[float]] = {}
    loads = [os.getloadavg()[0]]
    with app.app_context():
        if generate_data:
            _reset(url)
            _set_indexes(False)
            stats = generate(n_messages, n_tickets)
            print(f"[{name}] generated {stats}", flush=True)
        indexed = None
        per_round = max(1, -(-repeat // rounds))
        for i in range(rounds):
            for on in ((False, True) if i % 2 == 0 else (True, False)):
                if on != indexed:
                    db.session.remove()  # no transaction left open while the DDL runs
                    t = time.perf_counter()
                    _set_indexes(on)
                    print(f"[{name}] round {i + 1}: reporting indexes {'built' if on else 'dropped'} in "
                          f"{time.perf_counter() - t:.1f}s", flush=True)
                    indexed = on
                measure(app, per_round, tuned if on else base)
                loads.append(os.getloadavg()[0])
        if not indexed:
            _set_indexes(True)  # leave the database as the models describe it
        db.session.remove()
        db.engine.dispose()
    print(f"\n{name}: {n_messages:,} messages / {n_tickets:,} tickets, last 30 days, "
          f"{per_round * rounds} runs per endpoint and phase in {rounds} rounds, ms; "
          f"load average {min(loads):.1f}-{max(loads):.1f}")
    print(f"{'endpoint':28} {'base p50':>9} {'base p95':>9} {'idx p50':>9} {'idx p95':>9} {'p95 ratio':>9}  <200ms")
    for label, _ in ENDPOINTS:
        b50, b95 = _p50_p95(base[label])
        i50, i95 = _p50_p95(tuned[label])
        print(f"{label:28} {b50:9.1f} {b95:9.1f} {i50:9.1f} {i95:9.1f} {b95 / i95:8.2f}x  {'yes' if i95 < 200 else 'NO'}")
    print(flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--tickets", type=int, default=None)
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--repeat", type=int, default=20, help="calls per endpoint and phase")
    ap.add_argument("--rounds", type=int, default=2, help="alternating baseline/indexed rounds")
    ap.add_argument("--sqlite-path", default=str(Path(tempfile.gettempdir()) / "helpdesk-bench.db"))
    ap.add_argument("--pg-url", default=PG_URL)
    ap.add_argument("--reuse", action="store_true", help="measure the data already there")
    args = ap.parse_args(argv)
    n_tickets = args.tickets or max(1, args.messages // 10)
    if args.db in ("sqlite", "both"):
        path = Path(args.sqlite_path)
        if not args.reuse:
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
        run_backend("SQLite", f"sqlite:///{path}", args.messages, n_tickets, args.repeat, args.rounds,
                    not args.reuse)
    if args.db in ("postgresql", "both"):
        run_backend("PostgreSQL", args.pg_url, args.messages, n_tickets, args.repeat, args.rounds,
                    not args.reuse)


if __name__ == "__main__":
    main()
