"""The dashboard in headless Chromium: charts drawn from the report data, the table beside
them, a live alert arriving and being acknowledged, a new label moving the chart."""

from __future__ import annotations

from datetime import timedelta

import pytest

from helpdesk.extensions import db
from helpdesk.models import Role
from helpdesk.models._types import utcnow
from helpdesk.realtime import events
from helpdesk.realtime.serializers import sentiment_json
from tests import factories as f
from tests.live import chromium, live_server, open_desk_page
from tests.supervisor import builders as b

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread", SENTIMENT_ENABLED=False)]

SENTIMENT_TOTALS = """() => {
  const chart = Chart.getChart(document.querySelector('#report-sentiment canvas'));
  const out = {};
  chart.data.datasets.forEach((d) => { if (d.key !== 'avg_score') out[d.key] = d.data.reduce((a, v) => a + (v || 0), 0); });
  return out;
}"""


def test_dashboard_draws_charts_tables_and_takes_live_alerts(app, tmp_path):
    inbox = f.inbox(kind="chat")
    sup = f.agent(role=Role.supervisor, name="上長", email="boss@example.com")
    agent = f.agent(inboxes=[inbox], name="担当 太郎")
    now = utcnow()
    t = b.ticket(inbox, created=now - timedelta(hours=2), agent=agent, first_score=-0.8, score=0.4)
    for label, score in [("negative", -0.8), ("negative", -0.6), ("positive", 0.4)]:
        b.message(t, at=now - timedelta(hours=1), label=label, score=score)
    db.session.commit()
    ticket_id = t.id

    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, sup.email, f.PASSWORD)
        errors = page.errors
        page.goto(server.url + "/supervisor/")
        page.wait_for_selector("body[data-reports=ready]", timeout=10000)
        page.wait_for_selector("body[data-live=ready]", timeout=10000)

        assert page.evaluate(SENTIMENT_TOTALS) == {"negative": 2, "neutral": 0, "positive": 1}
        assert page.inner_text("#tile-messages") == "3"
        # The SLA table says when nothing is breaching, instead of a bare header over the chart.
        breaching = int(page.inner_text("#ops-breached")) + int(page.inner_text("#ops-at-risk"))
        sla_rows = page.locator("#breaching tbody tr")
        if breaching:
            assert sla_rows.count() == breaching and page.locator("#breaching tr.empty").count() == 0
        else:
            assert sla_rows.count() == 1
            assert sla_rows.inner_text() == "SLA違反中・違反間近のチケットはありません。"
        assert page.inner_text("#report-operations .chart-title") == "未解決チケット（ステータス別）"
        page.click("#report-sentiment summary")
        rows = page.query_selector_all("#report-sentiment .table-slot tbody tr")
        assert len(rows) == 7  # one row per day of the default week
        # numbers are right-aligned under right-aligned headers; the day column is not a number
        heads = page.locator("#report-sentiment .table-slot thead th")
        assert "num" not in (heads.nth(0).get_attribute("class") or "")
        assert heads.nth(1).evaluate("th => getComputedStyle(th).textAlign") == "right"
        assert "2" in rows[-1].inner_text() or "2" in rows[-2].inner_text()
        by_agent = page.evaluate("""() => {
          const c = Chart.getChart(document.querySelector('#report-breakdown-agent canvas'));
          return {labels: c.data.labels, negative: c.data.datasets[0].data};
        }""")
        assert by_agent == {"labels": ["担当 太郎"], "negative": [2]}
        assert page.get_attribute("#report-sentiment a[data-csv]", "href").startswith("/supervisor/api/sentiment?")

        # An angry customer: escalation raises the alert; it appears without reload.
        angry = b.message(t, at=utcnow(), label="negative", score=-0.95,
                          body="いい加減にして！<img src=x onerror=window.pwned=1>")
        angry.sentiment_anger = 0.97
        db.session.flush()
        [alert] = b.escalate(t, [angry])
        events.publish(events.MESSAGE_SENTIMENT, {"id": angry.id, "ticket_id": ticket_id,
                                                  "sentiment": sentiment_json(angry)},
                       inbox_id=inbox.id, ticket_id=ticket_id)
        db.session.commit()
        item = page.wait_for_selector(f"#alert-{alert.id}", timeout=5000)
        text = item.inner_text()
        assert f"#{ticket_id}" in text and "担当 太郎" in text and "<img src=x" in text
        assert page.evaluate("window.pwned") is None
        assert item.query_selector("a.alert-link").get_attribute("href") == f"/agent/tickets/{ticket_id}"

        # The new label moves the chart (debounced refresh, no reload).
        page.wait_for_function("() => { const c = Chart.getChart(document.querySelector('#report-sentiment canvas'));"
                               " return c.data.datasets[0].data.reduce((a, v) => a + (v || 0), 0) === 3; }",
                               timeout=5000)

        item.query_selector("button.ack").click()
        page.wait_for_selector(f"#alert-{alert.id}.acked", timeout=5000)
        assert "上長" in page.inner_text(f"#alert-{alert.id}")
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        assert errors == []


def test_insight_page_drills_from_keyword_to_messages(app, tmp_path):
    inbox = f.inbox(kind="chat")
    sup = f.agent(role=Role.supervisor, email="boss@example.com")
    now = utcnow()
    t = b.ticket(inbox, created=now - timedelta(hours=3))
    b.message(t, at=now - timedelta(hours=1), label="negative", score=-0.7, keywords=["返金", "遅延"],
              body="返金はまだですか")
    b.message(t, at=now - timedelta(hours=1), label="negative", score=-0.7, keywords=["返金"], body="返金を早く")
    db.session.commit()
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, sup.email, f.PASSWORD)
        errors = page.errors
        page.goto(server.url + "/supervisor/insight")
        page.wait_for_selector("body[data-reports=ready]", timeout=10000)
        labels = page.evaluate("() => Chart.getChart(document.querySelector('#report-keywords-negative canvas'))"
                               ".data.labels")
        assert labels == ["返金", "遅延"]
        page.click('#top-terms button[data-term="返金"]')
        page.wait_for_selector("#drill-list li")
        items = page.query_selector_all("#drill-list li")
        assert len(items) == 2
        assert items[0].query_selector("a").get_attribute("href") == f"/agent/tickets/{t.id}"
        page.screenshot(path=str(tmp_path / "insight.png"), full_page=True)
        assert errors == []


def test_filtered_dashboard_counts_in_whole_numbers_and_takes_only_the_alerts_that_fit(app):
    chat, line = f.inbox(kind="chat"), f.inbox(kind="line")
    sup = f.agent(role=Role.supervisor, email="boss@example.com")
    now = utcnow()
    other, ours = b.ticket(chat, created=now - timedelta(hours=2)), b.ticket(line, created=now - timedelta(hours=2))
    b.message(ours, at=now - timedelta(hours=1), label="neutral", score=0.0)
    db.session.commit()

    def angry(t):
        m = b.message(t, at=utcnow(), label="negative", score=-0.95, body="もういいです")
        m.sentiment_anger = 0.97
        db.session.flush()
        [alert] = b.escalate(t, [m])
        db.session.commit()
        return alert.id

    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, sup.email, f.PASSWORD)
        errors = page.errors
        page.goto(f"{server.url}/supervisor/?inbox={line.id}")
        page.wait_for_selector("body[data-reports=ready]", timeout=10000)
        page.wait_for_selector("body[data-live=ready]", timeout=10000)
        # One message: the count axis reads 0 and 1, not 0.1, 0.2 ... 1.0.
        ticks = page.evaluate("() => Chart.getChart(document.querySelector('#report-sentiment canvas'))"
                              ".scales.y.ticks.map((t) => t.value)")
        assert ticks and all(v == int(v) for v in ticks), ticks
        # A day with no message shows "–" for its share, right-aligned under its header like the numbers.
        page.click("#report-sentiment summary")
        share = page.locator("#report-sentiment .table-slot tbody tr").first.locator("td").nth(4)
        assert share.inner_text() == "–"
        assert share.evaluate("td => getComputedStyle(td).textAlign") == "right"

        skipped = angry(other)  # another inbox: not this page's alert
        shown = angry(ours)
        page.wait_for_selector(f"#alert-{shown}", timeout=5000)
        assert page.locator(f"#alert-{skipped}").count() == 0
        assert page.locator("#alert-list li").count() == 1
        assert errors == []


def test_agents_now_follows_an_agent_going_busy_and_a_ticket_given_out(app, tmp_path):
    inbox = f.inbox(kind="test", settings={"auto_assign": True})
    sup = f.agent(role=Role.supervisor, name="上長", email="boss@example.com")
    agent = f.agent(inboxes=[inbox], name="担当 花子")
    with live_server(app) as server, chromium() as browser:
        board = open_desk_page(browser, server, sup.email, f.PASSWORD)
        board.goto(server.url + "/supervisor/")
        board.wait_for_selector("body[data-live=ready]", timeout=10000)
        desk = open_desk_page(browser, server, agent.email, f.PASSWORD)
        desk.goto(server.url + "/agent/")
        desk.wait_for_selector("body[data-live=ready]", timeout=10000)
        row = "#report-staffing tbody tr:first-child"
        # the agent's page opened after the board loaded: a new ticket brings the table up to date
        from helpdesk.services.ingest import ingest

        ingest(inbox, f.inbound(user_id="c1", text="至急お願いします"))
        board.wait_for_function("(sel) => (document.querySelector(sel) || {}).textContent"
                                " === ['担当 花子', '対応可能', '1', '0'].join('')", arg=row, timeout=10000)
        assert board.inner_text("#staff-waiting") == "0"
        desk.select_option("#availability select", "busy")
        board.wait_for_function("(sel) => document.querySelector(sel).textContent.includes('取り込み中')",
                                arg=row, timeout=10000)
        ingest(inbox, f.inbound(user_id="c2", text="こちらも"))  # nobody available: it waits
        board.wait_for_function("() => document.getElementById('staff-waiting').textContent === '1'", timeout=10000)
        board.locator("#report-staffing").screenshot(path=str(tmp_path / "staffing.png"))
        assert board.errors == [] and desk.errors == []
