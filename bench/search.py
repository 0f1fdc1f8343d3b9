"""Inbox search latency on generated data: names and subjects matched in their normal form
(``models._types.folded``: NFKC and lower case, so ﾔﾏﾀﾞ stored is found by ヤマダ) against
plain ``lower()`` in the same process, side by side.

    python -m bench.search --tickets 100000 --db sqlite
    python -m bench.search --tickets 100000 --db both --repeat 10

Data: bench/dashboard.py's year of traffic (10 messages a ticket), every message's search
text a short tokenised sentence, and one customer in 50 named in half-width katakana, as an
older system's export writes them. Each query is ``GET /agent/?q=...`` through the Flask test
client as a logged-in supervisor (view, query, page). ``lower()`` runs in SQL's C code on
both backends; on SQLite ``folded`` is a Python function called per row, which is the cost
this measures. The phases alternate in ``--rounds`` rounds (A B, B A, ...).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, text  # noqa: E402

from bench.dashboard import PG_URL, _app, _ensure_pg_database, _p50_p95, _reset, generate  # noqa: E402
from helpdesk.extensions import db  # noqa: E402
from helpdesk.models import Agent  # noqa: E402
from helpdesk.services import search  # noqa: E402

QUERIES = [
    ("a customer's name", "顧客1234"),
    ("half-width name, typed ヤマダ", "ヤマダ"),
    ("a word in the messages", "返金"),
    ("nothing matches", "該当なし"),
]


def _texts() -> None:
    """Search text to scan, and some names as half-width katakana."""
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE messages SET search_text = ' 商品 が 届き ませ ん 確認 を お願い し ます ' "
                          "WHERE direction = 'inbound'"))
        conn.execute(text("UPDATE contacts SET name = 'ﾔﾏﾀﾞ ﾀﾛｳ' WHERE id % 50 = 0"))
        conn.execute(text("ANALYZE"))


def measure(app, repeat: int, samples: dict[str, list[float]]) -> None:
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["_user_id"] = db.session.get(Agent, 1).get_id()  # agent 1 is the supervisor
        sess["_fresh"] = True
    for label, q in QUERIES:
        client.get("/agent/", query_string={"q": q})  # warm-up
        for _ in range(repeat):
            t = time.perf_counter()
            r = client.get("/agent/", query_string={"q": q})
            samples.setdefault(label, []).append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, (q, r.status_code)


def run_backend(name: str, url: str, n_tickets: int, repeat: int, rounds: int, generate_data: bool) -> None:
    if url.startswith("postgresql"):
        _ensure_pg_database(url)
    app = _app(url)
    folded = search.folded
    phases: dict[str, dict[str, list[float]]] = {"lower()": {}, "folded": {}}
    loads = [os.getloadavg()[0]]
    with app.app_context():
        if generate_data:
            _reset(url)
            stats = generate(n_tickets * 10, n_tickets)
            _texts()
            print(f"[{name}] generated {stats}", flush=True)
        per_round = max(1, -(-repeat // rounds))
        for i in range(rounds):
            for phase in (("lower()", "folded") if i % 2 == 0 else ("folded", "lower()")):
                search.folded = func.lower if phase == "lower()" else folded
                try:
                    measure(app, per_round, phases[phase])
                finally:
                    search.folded = folded
                loads.append(os.getloadavg()[0])
        db.session.remove()
        db.engine.dispose()
    print(f"\n{name}: {n_tickets:,} tickets, {n_tickets * 10:,} messages, {per_round * rounds} searches per "
          f"query and phase in {rounds} rounds, ms; load average {min(loads):.1f}-{max(loads):.1f}")
    print(f"{'query':32} {'lower p50':>10} {'lower p95':>10} {'folded p50':>11} {'folded p95':>11} {'p50 ratio':>9}")
    for label, _ in QUERIES:
        b50, b95 = _p50_p95(phases["lower()"][label])
        f50, f95 = _p50_p95(phases["folded"][label])
        print(f"{label:32} {b50:10.1f} {b95:10.1f} {f50:11.1f} {f95:11.1f} {f50 / b50:8.2f}x")
    print(flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickets", type=int, default=100_000)
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="sqlite")
    ap.add_argument("--repeat", type=int, default=10, help="searches per query and phase")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    ap.add_argument("--sqlite-path", default=str(Path(tempfile.gettempdir()) / "helpdesk-bench-search.db"))
    ap.add_argument("--pg-url", default=PG_URL.rsplit("/", 1)[0] + "/search_bench")
    ap.add_argument("--reuse", action="store_true", help="measure the data already there")
    args = ap.parse_args(argv)
    if args.db in ("sqlite", "both"):
        path = Path(args.sqlite_path)
        if not args.reuse:
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
        run_backend("SQLite", f"sqlite:///{path}", args.tickets, args.repeat, args.rounds, not args.reuse)
    if args.db in ("postgresql", "both"):
        run_backend("PostgreSQL", args.pg_url, args.tickets, args.repeat, args.rounds, not args.reuse)


if __name__ == "__main__":
    main()
