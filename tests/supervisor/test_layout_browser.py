"""What the dashboard's reader sees of dates and tables: time axes in the page's language (not
ISO keys), full dates in tooltips and short ones in tables, survey tables that fit their card."""

from __future__ import annotations

from datetime import timedelta

import pytest

from helpdesk.extensions import db
from helpdesk.models import Role
from helpdesk.models._types import utcnow
from tests import factories as f
from tests.live import chromium, live_server, open_desk_page
from tests.supervisor import builders as b

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread", SENTIMENT_ENABLED=False)]

# What the axis shows (Chart.js's ticks after the label callback) and what the tooltip of the
# second bucket says (Chart.js's tooltip model after hovering it), per chart.
CHART_TEXT = """(sel) => {
  const c = Chart.getChart(document.querySelector(sel + ' canvas'));
  c.tooltip.setActiveElements([{datasetIndex: 0, index: 1}], {x: 0, y: 0});
  c.update();
  return {ticks: c.scales.x.ticks.map((t) => t.label), title: c.tooltip.title};
}"""

CASES = {
    "ja": {"day": (["11/18", "11/19"], ["2026年11月19日木曜日"], "2026/11/18"),
           "hour": ("0時", "14時", ["2026年11月19日木曜日 1:00"])},
    "en": {"day": (["Nov 18", "Nov 19"], ["Thursday, November 19, 2026"], "Nov 18, 2026"),
           "hour": ("12 AM", "2 PM", ["Thursday, November 19, 2026 at 1:00 AM"])},
}


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_time_axes_speak_the_pages_language(app, locale):
    sup = f.agent(role=Role.supervisor, email="boss@example.com", locale=locale)
    expect = CASES[locale]
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, sup.email, f.PASSWORD, locale={"ja": "ja-JP", "en": "en-US"}[locale])
        errors = page.errors
        page.goto(server.url + "/supervisor/?from=2026-11-18&to=2026-11-19&bucket=day")
        page.wait_for_selector("body[data-reports=ready]", timeout=10000)
        ticks, title, first_row = expect["day"]
        for report in ("#report-sentiment", "#report-surveys-agent"):
            shown = page.evaluate(CHART_TEXT, report)
            assert shown == {"ticks": ticks, "title": title}, report
        page.click("#report-sentiment summary")
        cell = page.locator("#report-sentiment .table-slot tbody th").first
        assert cell.inner_text() == first_row
        assert cell.locator("time").get_attribute("datetime") == "2026-11-18"

        page.goto(server.url + "/supervisor/?from=2026-11-19&to=2026-11-19&bucket=hour")
        page.wait_for_selector("body[data-reports=ready]", timeout=10000)
        midnight, two_pm, title = expect["hour"]
        shown = page.evaluate(CHART_TEXT, "#report-sentiment")
        assert shown["ticks"][0] == midnight and two_pm in shown["ticks"] and shown["title"] == title
        assert not any("2026-" in t for t in shown["ticks"])
        assert errors == []


def _survey_data():
    now = utcnow()
    inbox = f.inbox(kind="line")
    agent = f.agent(inboxes=[inbox], name="担当 太郎")
    t = b.ticket(inbox, created=now - timedelta(hours=3), agent=agent)
    for kind, score in (("csat", 5), ("nps", 9), ("ces", 6)):
        b.answer(t, kind, score, now - timedelta(hours=1))
    db.session.commit()


@pytest.mark.parametrize("width", [1366, 390])
def test_survey_tables_fit_their_card(app, width):
    _survey_data()
    sup = f.agent(role=Role.supervisor, email="boss@example.com")
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, sup.email, f.PASSWORD)
        page.set_viewport_size({"width": width, "height": 900})
        errors = page.errors
        page.goto(server.url + "/supervisor/")
        page.wait_for_selector("body[data-reports=ready]", timeout=10000)
        for report in ("#report-surveys-channel", "#report-surveys-team"):
            slot = page.locator(report + " .table-slot")
            sizes = slot.evaluate("s => ({scroll: s.scrollWidth, client: s.clientWidth, "
                                  "card: s.closest('.report').scrollWidth - s.closest('.report').clientWidth})")
            if width >= 1366:  # nothing to scroll: the CES column is in view
                assert sizes["scroll"] <= sizes["client"] and sizes["card"] == 0, (report, sizes)
            ces = page.locator(report + " thead th").nth(5)
            assert ces.inner_text() == "CES"
            # the count after each score is shortened; its full name is one hover (or screen reader) away
            assert page.locator(report + " thead th abbr").first.get_attribute("title") == "CSAT回答数"
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert errors == []


def test_a_logged_out_dashboard_says_so_in_words(app):
    """The session ends (logged out in another tab): the reports say what to do, not the API's
    "login required"."""
    sup = f.agent(role=Role.supervisor, email="boss@example.com", locale="en")
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, sup.email, f.PASSWORD, locale="en-US")
        page.goto(server.url + "/supervisor/")
        page.wait_for_selector("body[data-reports=ready]", timeout=10000)
        page.context.clear_cookies()
        page.evaluate("() => window.supervisor.reload(['sentiment'])")
        error = page.locator("#report-sentiment .report-error")
        assert error.is_visible()
        assert error.inner_text() == ("Could not load this report. "
                                      "Your session has ended. Reload the page to log in again.")
