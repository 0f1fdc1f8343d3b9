"""Report queries on generated rows with known answers, on SQLite and PostgreSQL."""

from __future__ import annotations

import random

import pytest

from helpdesk.extensions import db
from helpdesk.models import Status
from helpdesk.services import reports
from helpdesk.services.sentiment import MAX_KEYWORDS
from nlp.keywords import MAX_KEYWORD_CHARS
from tests import factories as f
from tests.supervisor import builders as b

pytestmark = [pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True),
              pytest.mark.config(SENTIMENT_ENABLED=False), pytest.mark.usefixtures("request_ctx")]


def _bucket(series, key):
    i = series["buckets"].index(key)
    return {lab: series["counts"][lab][i] for lab in reports.LABELS}


def test_empty_range_gives_zero_buckets_and_no_averages(app, filters):
    s = reports.sentiment_series(filters("2026-03-01", "2026-03-07"))
    assert s["buckets"] == [f"2026-03-0{d}" for d in range(1, 8)]
    assert s["totals"] == [0] * 7
    assert s["summary"] == {"messages": 0, "negative_share": None, "avg_score": None}
    assert s["table"]["rows"][0] == ["2026-03-01", 0, 0, 0, 0, None, None]


def test_other_reports_are_empty_not_errors_on_an_empty_range(app, filters):
    fl = filters("2026-03-01", "2026-03-07")
    assert reports.breakdown(fl, "agent")["groups"] == []
    ops = reports.operations(fl)
    assert ops["first_response"]["median_min"] is None and ops["backlog"] == {"new": 0, "open": 0, "pending": 0}
    assert reports.surveys(fl)["summary"] == {"csat": None, "nps": None, "ces": None, "answers": 0}
    assert reports.keywords(fl)["top"] == []
    assert reports.customers(fl)["customers"] == []
    assert reports.agent_scorecard(fl)["agents"] == []


def test_message_at_2330_utc_counts_for_the_next_day_in_tokyo(app, filters):
    t = b.ticket(f.inbox(), created=b.utc(2026, 3, 1, 0, 0))
    b.message(t, at=b.utc(2026, 3, 1, 23, 30), label="negative", score=-0.5)   # 3/2 08:30 JST
    b.message(t, at=b.utc(2026, 3, 1, 14, 59), label="positive", score=0.5)    # 3/1 23:59 JST
    b.message(t, at=b.utc(2026, 2, 28, 15, 0), label="neutral", score=0.0)     # 3/1 00:00 JST
    b.message(t, at=b.utc(2026, 2, 28, 14, 59), label="neutral", score=0.0)    # 2/28 in Tokyo: outside
    db.session.commit()
    s = reports.sentiment_series(filters("2026-03-01", "2026-03-02"))
    assert _bucket(s, "2026-03-01") == {"negative": 0, "neutral": 1, "positive": 1}
    assert _bucket(s, "2026-03-02") == {"negative": 1, "neutral": 0, "positive": 0}
    assert s["summary"]["messages"] == 3


def test_counts_share_negative_and_average_score(app, filters):
    t = b.ticket(f.inbox(), created=b.jst(2026, 3, 2, 9))
    for label, score in [("negative", -0.8), ("negative", -0.6), ("neutral", 0.0), ("positive", 0.6)]:
        b.message(t, at=b.jst(2026, 3, 2, 10), label=label, score=score)
    b.message(t, at=b.jst(2026, 3, 2, 10))  # not yet labelled: not counted
    db.session.commit()
    s = reports.sentiment_series(filters("2026-03-02", "2026-03-02"))
    assert s["counts"] == {"negative": [2], "neutral": [1], "positive": [1]}
    assert s["negative_share"] == [0.5]
    assert s["avg_score"] == [pytest.approx(-0.2)]
    # The table (and its CSV) in percent, as CSAT is, under a header that says so.
    assert s["table"]["columns"][5] == "ネガティブの割合（%）" and s["table"]["rows"][0][5] == 50.0


def test_hour_buckets_are_local_hours(app, filters):
    t = b.ticket(f.inbox(), created=b.jst(2026, 3, 2, 9))
    b.message(t, at=b.jst(2026, 3, 2, 10, 15), label="negative", score=-0.7)
    db.session.commit()
    s = reports.sentiment_series(filters("2026-03-02", "2026-03-02", bucket="hour"))
    assert len(s["buckets"]) == 24 and s["buckets"][0] == "2026-03-02 00:00"
    assert _bucket(s, "2026-03-02 10:00")["negative"] == 1
    assert sum(s["totals"]) == 1


def test_week_buckets_start_on_monday(app, filters):
    t = b.ticket(f.inbox(), created=b.jst(2026, 3, 1, 9))
    b.message(t, at=b.jst(2026, 3, 1, 12), label="positive", score=0.9)   # Sunday
    b.message(t, at=b.jst(2026, 3, 9, 0, 5), label="negative", score=-0.9)  # Monday just after midnight JST
    db.session.commit()
    s = reports.sentiment_series(filters("2026-03-01", "2026-03-10", bucket="week"))
    assert s["buckets"] == ["2026-02-23", "2026-03-02", "2026-03-09"]
    assert s["totals"] == [1, 0, 1]


def test_filters_by_channel_agent_team_and_tag(app, filters):
    email, chat = f.inbox(kind="email"), f.inbox(kind="chat")
    alice, team = f.agent(), f.team()
    t1 = b.ticket(email, created=b.jst(2026, 3, 2, 9), agent=alice, team=team, tags=("返金",))
    t2 = b.ticket(chat, created=b.jst(2026, 3, 2, 9))
    b.message(t1, at=b.jst(2026, 3, 2, 10), label="negative", score=-0.9)
    b.message(t2, at=b.jst(2026, 3, 2, 10), label="positive", score=0.9)
    b.message(t2, at=b.jst(2026, 3, 2, 11), label="positive", score=0.8)
    db.session.commit()

    def total(**kw):
        return reports.sentiment_series(filters("2026-03-02", "2026-03-02", **kw))["summary"]["messages"]
    assert total() == 3
    assert total(channel="chat") == 2
    assert total(inbox=email.id) == 1
    assert total(agent=alice.id) == 1
    assert total(team=team.id) == 1
    assert total(tag="返金") == 1
    assert total(tag="未使用") == 0


def test_breakdown_by_agent_shows_mix_and_sentiment_shift(app, filters):
    inbox = f.inbox()
    alice = f.agent(name="アリス")
    up = b.ticket(inbox, created=b.jst(2026, 3, 2, 9), agent=alice, first_score=-0.6, score=0.2)
    down = b.ticket(inbox, created=b.jst(2026, 3, 2, 9), agent=alice, first_score=0.2, score=-0.2)
    b.ticket(inbox, created=b.jst(2026, 3, 2, 9))  # unassigned, unlabelled
    b.message(up, at=b.jst(2026, 3, 2, 10), label="negative", score=-0.6)
    b.message(up, at=b.jst(2026, 3, 2, 11), label="positive", score=0.2)
    b.message(down, at=b.jst(2026, 3, 2, 10), label="neutral", score=-0.2)
    db.session.commit()
    r = reports.breakdown(filters("2026-03-02", "2026-03-02"), "agent")
    by_name = {g["name"]: g for g in r["groups"]}
    a = by_name["アリス"]
    assert (a["tickets"], a["messages"], a["negative"], a["neutral"], a["positive"]) == (2, 3, 1, 1, 1)
    assert a["avg_shift"] == pytest.approx(0.2)
    assert (a["improved"], a["worsened"]) == (1, 1)
    none = by_name[reports._none_name("agent")]
    assert none["tickets"] == 1 and none["avg_shift"] is None


def test_breakdown_by_channel_and_team(app, filters):
    team = f.team(name="一次対応")
    t = b.ticket(f.inbox(kind="line"), created=b.jst(2026, 3, 2, 9), team=team)
    b.message(t, at=b.jst(2026, 3, 2, 10), label="negative", score=-0.9)
    mail = b.ticket(f.inbox(kind="email"), created=b.jst(2026, 3, 2, 9))
    b.message(mail, at=b.jst(2026, 3, 2, 11), label="positive", score=0.8)
    db.session.commit()
    fl = filters("2026-03-02", "2026-03-02")
    # Channels by the label a person reads (Japanese by default), not the stored code.
    groups = reports.breakdown(fl, "channel")["groups"]
    assert sorted((g["name"], g["negative"], g["positive"]) for g in groups) == [("LINE", 1, 0), ("メール", 0, 1)]
    teams = reports.breakdown(fl, "team")["groups"]
    assert sorted((g["name"], g["tickets"]) for g in teams) == sorted([("一次対応", 1), (reports._none_name("team"), 1)])


def test_response_and_resolution_times_count_business_hours_only(app, filters):
    inbox = f.inbox()
    # Mon 3/2 09:00 -> 09:30: 30 min. Fri 3/6 17:30 -> Mon 3/9 09:30: 30 + 30 = 60 min.
    # Tue 3/3 20:00 -> Wed 3/4 11:30: 150 min (the night does not count).
    b.ticket(inbox, created=b.jst(2026, 3, 2, 9), first_response=b.jst(2026, 3, 2, 9, 30),
             resolved=b.jst(2026, 3, 2, 12), status=Status.resolved)
    b.ticket(inbox, created=b.jst(2026, 3, 6, 17, 30), first_response=b.jst(2026, 3, 9, 9, 30))
    b.ticket(inbox, created=b.jst(2026, 3, 3, 20), first_response=b.jst(2026, 3, 4, 11, 30))
    db.session.commit()
    ops = reports.operations(filters("2026-03-01", "2026-03-08"), now=b.jst(2026, 3, 9, 10))
    assert ops["first_response"]["count"] == 3
    assert ops["first_response"]["median_min"] == 60
    assert ops["first_response"]["p90_min"] == pytest.approx(132)
    assert ops["first_response"]["within_target"] == pytest.approx(2 / 3, abs=1e-3)
    assert ["初回応答の目標達成率（%）", 66.7] in ops["table"]["rows"]
    assert ops["resolution"]["median_min"] == 180
    assert ops["backlog"] == {"new": 0, "open": 2, "pending": 0}


def test_tickets_breaching_or_about_to_breach_are_listed(app, filters):
    inbox = f.inbox()
    agent = f.agent(name="担当A")
    now = b.jst(2026, 3, 9, 15)  # Monday 15:00
    late = b.ticket(inbox, created=b.jst(2026, 3, 9, 10), agent=agent, subject="遅延")   # 300 min, target 60
    soon = b.ticket(inbox, created=b.jst(2026, 3, 9, 14, 10))                          # 50 min: > 80 %
    b.ticket(inbox, created=b.jst(2026, 3, 9, 14, 50))                                  # 10 min: fine
    b.ticket(inbox, created=b.jst(2026, 3, 9, 9), status=Status.resolved,
             first_response=b.jst(2026, 3, 9, 9, 5), resolved=b.jst(2026, 3, 9, 9, 10))
    db.session.commit()
    ops = reports.operations(filters("2026-03-09", "2026-03-09"), now=now)
    rows = ops["breaching"]["tickets"]
    assert [(r["id"], r["state"], r["clock"]) for r in rows] == [(late.id, "breached", "first_response"),
                                                                 (soon.id, "at_risk", "first_response")]
    assert rows[0]["assignee"] == "担当A" and rows[0]["elapsed_min"] == 300
    assert (ops["breaching"]["breached"], ops["breaching"]["at_risk"]) == (1, 1)


def test_csat_nps_and_ces_arithmetic(app, filters):
    inbox = f.inbox()
    alice, bob = f.agent(name="アリス"), f.agent(name="ボブ")
    at = b.jst(2026, 3, 2, 12)
    for score in (5, 4, 3, 1):
        b.answer(b.ticket(inbox, created=at, agent=alice), "csat", score, at)
    for score in (10, 9, 7, 0, 3):
        b.answer(b.ticket(inbox, created=at, agent=bob), "nps", score, at)
    for score in (7, 5):
        b.answer(b.ticket(inbox, created=at, agent=bob), "ces", score, at)
    db.session.commit()
    r = reports.surveys(filters("2026-03-02", "2026-03-03"))
    assert r["summary"] == {"csat": 50.0, "nps": 0.0, "ces": 6.0, "answers": 11}
    assert r["series"]["csat"] == [50.0, None]
    groups = {g["name"]: g for g in r["groups"]}
    assert groups["アリス"]["csat"] == 50.0 and groups["アリス"]["csat_n"] == 4
    assert groups["ボブ"]["nps"] == 0.0 and groups["ボブ"]["ces"] == 6.0


def test_nps_is_promoters_minus_detractors(app, filters):
    inbox = f.inbox()
    at = b.jst(2026, 3, 2, 12)
    for score in (10, 10, 6):
        b.answer(b.ticket(inbox, created=at), "nps", score, at)
    db.session.commit()
    assert reports.surveys(filters("2026-03-02", "2026-03-02"))["summary"]["nps"] == pytest.approx(33.3)


def test_keywords_this_period_vs_previous_and_rising(app, filters):
    t = b.ticket(f.inbox(), created=b.jst(2026, 3, 1, 9))
    now, before = b.jst(2026, 3, 9, 12), b.jst(2026, 3, 2, 12)
    b.message(t, at=now, label="negative", score=-0.8, keywords=["返金", "遅い"])
    b.message(t, at=now, label="negative", score=-0.7, keywords=["返金"])
    b.message(t, at=now, label="negative", score=-0.7, keywords=["配送"])
    b.message(t, at=now, label="positive", score=0.7, keywords=["返金"])  # not negative: not counted
    b.message(t, at=now, label="negative", score=-0.7, keywords=None)
    b.message(t, at=before, label="negative", score=-0.6, keywords=["配送"])
    b.message(t, at=before, label="negative", score=-0.6, keywords=["配送"])
    db.session.commit()
    r = reports.keywords(filters("2026-03-08", "2026-03-14"))
    assert [(k["term"], k["count"], k["previous"]) for k in r["top"]] == [("返金", 2, 0), ("遅い", 1, 0), ("配送", 1, 2)]
    assert [k["term"] for k in r["rising"]] == ["返金"]
    assert r["rising"][0]["ratio"] == 3.0


def test_keyword_chart_shows_the_head_of_the_list(app, filters):
    """30 terms in one chart squeeze every bar into a line: the chart takes the first 15,
    the chips and the table keep all of them."""
    t = b.ticket(f.inbox(), created=b.jst(2026, 3, 1, 9))
    terms = [f"語{i:02d}" for i in range(20)]
    for i, term in enumerate(terms):
        for _ in range(20 - i):  # 語00 most often, 語19 once
            b.message(t, at=b.jst(2026, 3, 9, 12), label="negative", score=-0.8, keywords=[term])
    db.session.commit()
    r = reports.keywords(filters("2026-03-08", "2026-03-14"))
    assert [k["term"] for k in r["top"]] == terms
    assert r["chart"]["labels"] == terms[:reports.CHART_TERMS]
    assert [len(d["data"]) for d in r["chart"]["datasets"]] == [reports.CHART_TERMS] * 2
    assert len(r["table"]["rows"]) == 20


def test_the_longest_keyword_list_fits_the_keyword_index(app, filters):
    """ix_messages_keywords carries each message's keyword list, and PostgreSQL refuses a B-tree
    row over ~2.7 kB: the caps on the list (terms, characters per term) must keep the worst case
    (4-byte characters, no two alike, so nothing compresses) inside it."""
    rnd = random.Random(6)
    longest = ["".join(chr(rnd.randrange(0x20000, 0x2A6E0)) for _ in range(MAX_KEYWORD_CHARS))
               for _ in range(MAX_KEYWORDS)]
    t = b.ticket(f.inbox(), created=b.jst(2026, 3, 9, 9))
    b.message(t, at=b.jst(2026, 3, 9, 12), label="negative", score=-0.8, keywords=longest)
    db.session.commit()
    top = reports.keywords(filters("2026-03-08", "2026-03-14"))["top"]
    assert sorted(k["term"] for k in top) == sorted(longest)


def test_keyword_drill_down_lists_matching_messages(app, filters):
    t = b.ticket(f.inbox(), created=b.jst(2026, 3, 1, 9))
    hit = b.message(t, at=b.jst(2026, 3, 9, 12), label="negative", score=-0.8, keywords=["返金"],
                    body="<b>返金</b>してください")
    b.message(t, at=b.jst(2026, 3, 9, 13), label="negative", score=-0.8, keywords=["返金額"])
    db.session.commit()
    r = reports.keyword_messages(filters("2026-03-08", "2026-03-14"), "返金")
    assert [(m["id"], m["ticket_id"]) for m in r["messages"]] == [(hit.id, t.id)]
    assert r["messages"][0]["excerpt"] == "<b>返金</b>してください"  # escaped by the page, not mangled here
    assert r["messages"][0]["sent_at"] == "2026-03-09 12:00"


def test_at_risk_customers_are_scored_with_reasons(app, filters):
    email, chat = f.inbox(kind="email"), f.inbox(kind="chat")
    angry = b.contact("怒っている人", sentiment_latest_label="negative", sentiment_latest_score=-0.9,
                      sentiment_trend="worsening")
    b.ticket(email, who=angry, created=b.jst(2026, 3, 9, 9), label="negative", score=-0.9)
    b.ticket(chat, who=angry, created=b.jst(2026, 3, 10, 9), status=Status.resolved, label="neutral")
    unhappy = b.contact("低評価の人", sentiment_latest_label="neutral")
    done = b.ticket(email, who=unhappy, created=b.jst(2026, 3, 9, 9), status=Status.resolved)
    b.answer(done, "csat", 1, b.jst(2026, 3, 10, 9))
    calm = b.contact("穏やかな人", sentiment_latest_label="positive")
    b.ticket(email, who=calm, created=b.jst(2026, 3, 9, 9), status=Status.resolved)
    db.session.commit()
    r = reports.customers(filters("2026-03-08", "2026-03-14"), "at_risk")
    names = [c["name"] for c in r["customers"]]
    assert names == ["怒っている人", "低評価の人"]
    top = r["customers"][0]
    # negative 3 + worsening 2 + one unresolved negative 2 + 2 tickets in 7 days 1 + two channels 1
    assert top["score"] == 9
    assert len(top["reasons"]) == 5
    assert r["customers"][1]["reason_codes"] == ["low_survey"]


def test_loyal_customers_have_history_positive_trend_and_promoter_answers(app, filters):
    inbox = f.inbox()
    fan = b.contact("ファン", sentiment_latest_label="positive", sentiment_trend="improving")
    b.ticket(inbox, who=fan, created=b.jst(2025, 6, 1, 9), status=Status.closed)
    b.ticket(inbox, who=fan, created=b.jst(2025, 12, 1, 9), status=Status.closed)
    last = b.ticket(inbox, who=fan, created=b.jst(2026, 3, 9, 9), status=Status.resolved)
    b.answer(last, "nps", 10, b.jst(2026, 3, 10, 9))
    b.ticket(inbox, who=b.contact("新規"), created=b.jst(2026, 3, 9, 9))
    db.session.commit()
    r = reports.customers(filters("2026-03-08", "2026-03-14"), "loyal")
    assert [c["name"] for c in r["customers"]] == ["ファン"]
    assert r["customers"][0]["score"] == 1 + 2 + 2 + 1 + 3


def test_agent_scorecard_combines_times_csat_and_shift(app, filters):
    inbox = f.inbox()
    alice = f.agent(name="アリス")
    t1 = b.ticket(inbox, created=b.jst(2026, 3, 2, 9), agent=alice, first_response=b.jst(2026, 3, 2, 9, 20),
                  resolved=b.jst(2026, 3, 2, 10), status=Status.resolved, first_score=-0.5, score=0.5)
    b.ticket(inbox, created=b.jst(2026, 3, 2, 9), agent=alice, first_response=b.jst(2026, 3, 2, 9, 40),
             first_score=0.0, score=0.0)
    b.answer(t1, "csat", 5, b.jst(2026, 3, 2, 11))
    db.session.commit()
    cards = reports.agent_scorecard(filters("2026-03-02", "2026-03-02"))["agents"]
    assert len(cards) == 1
    c = cards[0]
    assert (c["name"], c["tickets"], c["resolved"]) == ("アリス", 2, 1)
    assert c["frt_median_min"] == 30 and c["rt_median_min"] == 60
    assert c["csat"] == 100.0 and c["avg_shift"] == pytest.approx(0.5)


def test_bad_parameters_are_report_errors(app, filters):
    with pytest.raises(reports.ReportError):
        filters("2026-03-09", "2026-03-01")
    with pytest.raises(reports.ReportError):
        filters("2026-13-01", "2026-03-01")
    with pytest.raises(reports.ReportError):
        filters("2026-03-01", "2026-03-02", bucket="year")
    with pytest.raises(reports.ReportError):
        filters("2026-03-01", "2026-03-02", agent="abc")
    assert filters("2026-01-01", "2026-03-01", bucket="hour").bucket == "day"
    assert filters("2026-03-01", "2026-03-02").previous().end == filters("2026-03-01", "2026-03-02").start


def test_half_hour_time_zone_buckets_by_local_day(app):
    """Zones with :30 offsets are grouped by quarter hour in SQL, then folded locally."""
    t = b.ticket(f.inbox(), created=b.utc(2026, 3, 1, 0))
    b.message(t, at=b.utc(2026, 3, 1, 18, 45), label="negative", score=-0.5)  # 3/2 00:15 in India
    b.message(t, at=b.utc(2026, 3, 1, 18, 15), label="positive", score=0.5)   # 3/1 23:45 in India
    db.session.commit()
    fl = reports.Filters.from_args({"from": "2026-03-01", "to": "2026-03-02"}, tzname="Asia/Kolkata")
    s = reports.sentiment_series(fl)
    assert _bucket(s, "2026-03-01") == {"negative": 0, "neutral": 0, "positive": 1}
    assert _bucket(s, "2026-03-02") == {"negative": 1, "neutral": 0, "positive": 0}


@pytest.mark.parametrize("typed", ["ｷｬﾝｾﾙ", "キャンセル", " キャンセル ", "ＰＣ", "pc"])
def test_keyword_drill_down_finds_a_term_however_it_is_typed(app, filters, typed):
    """Keywords are stored as the text normaliser leaves them (NFKC, lower case): a link or a term
    typed in half-width katakana or full-width letters found nothing."""
    t = b.ticket(f.inbox(), created=b.jst(2026, 3, 1, 9))
    b.message(t, at=b.jst(2026, 3, 9, 12), label="negative", score=-0.8, keywords=["キャンセル", "pc"])
    db.session.commit()
    assert len(reports.keyword_messages(filters("2026-03-08", "2026-03-14"), typed)["messages"]) == 1


def test_keyword_drill_down_refuses_a_nul_character(app, filters):
    with pytest.raises(reports.ReportError):
        reports.keyword_messages(filters("2026-03-08", "2026-03-14"), "返\x00金")


def test_keyword_drill_down_refuses_a_label_it_does_not_know(app, filters):
    """As the keyword list does: a typo is a 400, not every message's keywords."""
    with pytest.raises(reports.ReportError):
        reports.keyword_messages(filters("2026-03-08", "2026-03-14"), "返金", label="negativ")
    assert reports.keyword_messages(filters("2026-03-08", "2026-03-14"), "返金", label="all")["messages"] == []
