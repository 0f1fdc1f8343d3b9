"""Who may see the dashboards, the JSON/CSV API, and acknowledging alerts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpdesk.extensions import db, socketio
from helpdesk.models import Alert, Event, Role, Ticket
from tests import factories as f
from tests.conftest import csrf_token, login
from tests.supervisor import builders as b

pytestmark = pytest.mark.config(SENTIMENT_ENABLED=False)

PAGES = ["/supervisor/", "/supervisor/insight"]
APIS = ["/supervisor/api/sentiment", "/supervisor/api/breakdown?by=agent", "/supervisor/api/operations",
        "/supervisor/api/surveys", "/supervisor/api/keywords", "/supervisor/api/customers?segment=loyal",
        "/supervisor/api/agents", "/supervisor/api/alerts", "/supervisor/api/sentiment?format=csv"]


def _alert() -> Alert:
    inbox = f.inbox()
    t = b.ticket(inbox, created=b.utc(2026, 3, 2, 0), subject="怒りの件")
    m = b.message(t, at=b.utc(2026, 3, 2, 1), label="negative", score=-0.9, body="ふざけるな")
    m.sentiment_anger = 0.9
    db.session.commit()
    with db.session.no_autoflush:
        [alert] = b.escalate(t, [m])
    db.session.commit()
    return alert


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_pages_redirect_to_login(app, client, path):
    r = client.get(path)
    assert r.status_code == 302 and "/login" in r.headers["Location"]


@pytest.mark.parametrize("path", APIS)
def test_anonymous_api_gets_401(app, client, path):
    r = client.get(path)
    assert r.status_code == 401 and r.get_json() == {"error": "login required"}


def test_plain_agent_gets_403_on_every_page_and_api(app, client):
    f.agent(email="plain@example.com")
    login(client, "plain@example.com")
    assert {path: client.get(path).status_code for path in PAGES + APIS} == {path: 403 for path in PAGES + APIS}


def test_plain_agent_cannot_acknowledge(app, client):
    alert = _alert()
    f.agent(email="plain@example.com")
    login(client, "plain@example.com")
    r = client.post(f"/supervisor/alerts/{alert.id}/ack", headers={"X-CSRFToken": csrf_token(client, "/agent/")})
    assert r.status_code == 403
    assert db.session.get(Alert, alert.id).acknowledged_at is None


@pytest.mark.parametrize("role", [Role.supervisor, Role.admin])
def test_supervisor_and_admin_see_the_dashboard(app, client, role):
    f.agent(email="boss@example.com", role=role)
    login(client, "boss@example.com")
    page = client.get("/supervisor/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-report="sentiment"' in html and "chart.js/dist/chart.umd" in html
    # each page has one heading for screen readers (the tabs name it for the eye)
    assert html.count("<h1") == 1 and '<h1 class="sr-only">ダッシュボード</h1>' in html
    assert client.get("/supervisor/insight").get_data(as_text=True).count("<h1") == 1


@pytest.mark.parametrize("pauses", [True, False])
def test_the_dashboard_says_whether_resolution_times_leave_out_the_waits(app, sv_client, pauses):
    app.config["SLA_PAUSE_WHEN_PENDING"] = pauses
    html = sv_client.get("/supervisor/").get_data(as_text=True)
    assert ("解決時間には、保留中（お客様の返答待ち）の時間を含めていません。" in html) is pauses


def test_bad_filters_are_a_400_with_a_message(app, sv_client):
    r = sv_client.get("/supervisor/api/sentiment?from=2026-03-09&to=2026-03-01")
    assert r.status_code == 400 and r.get_json()["error"]
    assert sv_client.get("/supervisor/api/nope").status_code == 404
    assert sv_client.get("/supervisor/api/breakdown?by=planet").status_code == 400
    page = sv_client.get("/supervisor/?from=garbage")
    assert page.status_code == 400 and "日付は 2024-04-01 の形式で指定してください。" in page.get_data(as_text=True)


def test_csv_export_is_utf8_with_bom_for_excel(app, sv_client):
    inbox = f.inbox()
    t = b.ticket(inbox, created=b.jst(2026, 3, 2, 9))
    b.message(t, at=b.jst(2026, 3, 2, 10), label="negative", score=-0.5)
    db.session.commit()
    r = sv_client.get("/supervisor/api/sentiment?from=2026-03-02&to=2026-03-02&format=csv")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="sentiment-2026-03-02-2026-03-02.csv"' in r.headers["Content-Disposition"]
    raw = r.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = raw.decode("utf-8-sig").split("\r\n")
    assert lines[0].startswith("期間") or lines[0].startswith("Period")
    assert lines[1] == "2026-03-02,1,0,0,1,100.0,-0.5"


def test_csv_cells_cannot_become_formulas(app, sv_client):
    inbox = f.inbox()
    who = b.contact("=HYPERLINK(\"http://x\")", sentiment_latest_label="negative", sentiment_latest_score=-0.9)
    b.ticket(inbox, who=who, created=b.jst(2026, 3, 2, 9), label="negative")
    db.session.commit()
    r = sv_client.get("/supervisor/api/customers?from=2026-03-01&to=2026-03-07&format=csv")
    body = r.get_data().decode("utf-8-sig")
    assert "'=HYPERLINK" in body


def test_acknowledge_sets_who_and_when_and_broadcasts(app, client, supervisor):
    alert = _alert()
    login(client, supervisor.email)
    sio = socketio.test_client(app, namespace="/agent", flask_test_client=client)
    assert sio.is_connected("/agent")
    sio.get_received("/agent")
    token = csrf_token(client, "/supervisor/")
    r = client.post(f"/supervisor/alerts/{alert.id}/ack", headers={"X-CSRFToken": token})
    assert r.status_code == 200 and r.get_json()["changed"] is True, r.get_json()
    db.session.expire_all()
    row = db.session.get(Alert, alert.id)
    assert row.acknowledged_by_id == supervisor.id and row.acknowledged_at is not None
    got = [e for e in sio.get_received("/agent") if e["name"] == "alert.acknowledged"]
    assert got and got[0]["args"][0]["acknowledged_by"]["name"] == supervisor.name
    ev = db.session.scalar(select(Event).where(Event.name == "alert.acknowledged"))
    assert ev.audience == "supervisors"
    again = client.post(f"/supervisor/alerts/{alert.id}/ack", headers={"X-CSRFToken": token})
    assert again.get_json()["changed"] is False
    sio.disconnect("/agent")


def test_acknowledge_without_csrf_is_refused(app, sv_client):
    alert = _alert()
    assert sv_client.post(f"/supervisor/alerts/{alert.id}/ack").status_code == 400
    assert db.session.get(Alert, alert.id).acknowledged_at is None


def test_alert_feed_lists_who_is_on_it(app, sv_client):
    alert = _alert()
    agent = f.agent(name="担当 次郎")
    alert_ticket = alert.ticket_id
    db.session.get(Ticket, alert_ticket).assignee_id = agent.id
    db.session.commit()
    data = sv_client.get("/supervisor/api/alerts").get_json()
    [row] = data["alerts"]
    assert (row["ticket_id"], row["rule"], row["assignee"]["name"]) == (alert_ticket, "angry", "担当 次郎")
    assert row["excerpt"] == "ふざけるな"


# Every report, with the parameters it needs.
REPORTS = ["sentiment", "breakdown", "operations", "surveys", "keywords", "keyword-messages?term=返金", "customers",
           "agents", "alerts"]
OUT_OF_CALENDAR = "日付は 1970-01-01 から 9998-12-31 までの範囲で指定してください。"


@pytest.mark.parametrize("dates", ["from=9999-12-25&to=9999-12-31", "from=0001-01-01&to=0001-01-02",
                                   "to=0001-01-03"])
def test_dates_at_the_ends_of_the_calendar_are_a_400_with_a_message(app, sv_client, dates):
    for report in REPORTS:
        sep = "&" if "?" in report else "?"
        r = sv_client.get(f"/supervisor/api/{report}{sep}{dates}")
        assert (r.status_code, r.get_json()) == (400, {"error": OUT_OF_CALENDAR}), report
    for path in PAGES:
        r = sv_client.get(f"{path}?{dates}")
        assert r.status_code == 400 and OUT_OF_CALENDAR in r.get_data(as_text=True)


@pytest.mark.parametrize("query", ["breakdown?table=groups", "sentiment?table=buckets", "sentiment?table=summary",
                                   "sentiment?table=chart", "sentiment?table=nope", "surveys?table=summary",
                                   "agents?table=agents"])
def test_csv_export_of_something_that_is_no_table_is_a_400(app, sv_client, query):
    r = sv_client.get(f"/supervisor/api/{query}&format=csv")
    assert (r.status_code, r.get_json()) == (400, {"error": "このレポートにそのような表はありません。"})


def test_csv_export_of_a_second_table(app, sv_client):
    r = sv_client.get("/supervisor/api/surveys?by=team&table=group_table&format=csv&from=2026-03-01&to=2026-03-07")
    assert r.status_code == 200
    assert r.get_data().decode("utf-8-sig").split("\r\n")[0] == "チーム,CSAT（%）,CSAT回答数,NPS,NPS回答数,CES,CES回答数"


def _inputs(html: str) -> dict:
    """The filter form's date inputs and chosen bucket, as the browser shows them."""
    form = html.split('class="filters sv-filters"')[1].split("</form>")[0]
    return {"from": form.split('name="from" value="')[1].split('"')[0],
            "to": form.split('name="to" value="')[1].split('"')[0],
            "bucket": [o.split('"')[0] for o in form.split('<option value="')[1:] if '" selected>' in o][0]}


def test_a_refused_filter_is_shown_as_it_was_asked_for(app, sv_client):
    r = sv_client.get("/supervisor/?from=2026-11-30&to=2026-11-01")
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and "開始日が終了日より後になっています。" in html
    assert _inputs(html) == {"from": "2026-11-30", "to": "2026-11-01", "bucket": "day"}
    r = sv_client.get("/supervisor/insight?from=2026-03-01&to=2026-03-07&bucket=month")
    assert r.status_code == 400 and "不明な集計単位です。" in r.get_data(as_text=True)
    assert _inputs(r.get_data(as_text=True)) == {"from": "2026-03-01", "to": "2026-03-07", "bucket": "month"}
    # Accepted filters: shown as they are used, with no error.
    r = sv_client.get("/supervisor/?from=2026-03-01&to=2026-03-07&bucket=week")
    assert r.status_code == 200 and 'role="alert">' not in r.get_data(as_text=True).split("</form>")[0]
    assert _inputs(r.get_data(as_text=True)) == {"from": "2026-03-01", "to": "2026-03-07", "bucket": "week"}


def test_alerts_csv_shows_rule_names_local_times_and_only_the_range(app, sv_client):
    alert = _alert()
    ticket = db.session.get(Ticket, alert.ticket_id)
    customer = ticket.contact.display_name
    alert.created_at = b.utc(2026, 3, 1, 15, 30, 12, 345678)  # 3/2 00:30 in Tokyo
    db.session.add_all([Alert(ticket_id=ticket.id, rule="strongly_negative", created_at=b.utc(2026, 3, 2, 3, 0)),
                        Alert(ticket_id=ticket.id, rule="negative_streak", created_at=b.utc(2026, 3, 1, 14, 59))])
    db.session.commit()
    r = sv_client.get("/supervisor/api/alerts?from=2026-03-02&to=2026-03-02&format=csv")
    assert 'filename="alerts-2026-03-02-2026-03-02.csv"' in r.headers["Content-Disposition"]
    assert r.get_data().decode("utf-8-sig").split("\r\n") == [
        "チケット,ルール,顧客,担当者,発生日時,確認者",
        f"{ticket.id},強いネガティブ,{customer},,2026-03-02 12:00,",
        f"{ticket.id},怒っている顧客,{customer},,2026-03-02 00:30,",
        ""]  # the negative streak raised on 3/1 in Tokyo is outside the range
    english = sv_client.get("/supervisor/api/alerts?from=2026-03-02&to=2026-03-02&format=csv&lang=en")
    assert english.get_data().decode("utf-8-sig").split("\r\n")[1] == \
        f"{ticket.id},Strongly negative,{customer},,2026-03-02 12:00,"


def test_keyword_messages_csv_names_the_sentiment(app, sv_client):
    t = b.ticket(f.inbox(), created=b.jst(2026, 3, 2, 9))
    b.message(t, at=b.jst(2026, 3, 2, 10, 5, 30), label="negative", score=-0.8, keywords=["返金"], body="返金して")
    db.session.commit()
    r = sv_client.get("/supervisor/api/keyword-messages?from=2026-03-02&to=2026-03-02&term=返金&format=csv")
    assert r.get_data().decode("utf-8-sig").split("\r\n")[1] == f"{t.id},2026-03-02 10:05,ネガティブ,-0.8,返金して"


@pytest.mark.parametrize("path", PAGES)
def test_a_digit_that_is_no_number_is_a_400_page_not_a_crash(app, sv_client, path):
    # "²".isdigit() is True, yet int("²") fails: the refused filter was shown by a crash.
    r = sv_client.get(f"{path}?inbox=²")
    assert r.status_code == 400 and "受信箱 の値が正しくありません。" in r.get_data(as_text=True)


@pytest.mark.parametrize("query, field", [("inbox=99999999999999999999", "受信箱"), ("agent=0", "エージェント"),
                                          ("team=-3", "チーム"), ("tag=a%00b", "タグ"), ("channel=%00", "チャネル")])
def test_ids_no_row_can_have_and_nul_characters_are_a_400_naming_the_filter(app, sv_client, query, field):
    for report in REPORTS:
        sep = "&" if "?" in report else "?"
        r = sv_client.get(f"/supervisor/api/{report}{sep}{query}")
        assert (r.status_code, r.get_json()) == (400, {"error": f"{field} の値が正しくありません。"}), report


def test_each_csv_of_a_page_has_a_file_name_of_its_own(app, sv_client):
    """By channel, by agent and by team (and at-risk vs loyal customers) were all saved as
    breakdown-<range>.csv (customers-<range>.csv): a supervisor could not tell the files apart."""
    dates = "from=2026-03-01&to=2026-03-07&format=csv"
    names = set()
    for query in ["breakdown?by=channel", "breakdown?by=agent", "breakdown?by=team", "customers?segment=at_risk",
                  "customers?segment=loyal", "surveys?by=channel&table=group_table",
                  "surveys?by=team&table=group_table", "keywords?label=negative", "keywords?label=positive"]:
        r = sv_client.get(f"/supervisor/api/{query}&{dates}")
        assert r.status_code == 200, query
        names.add(r.headers["Content-Disposition"])
    assert len(names) == 9
    r = sv_client.get(f"/supervisor/api/breakdown?by=team&{dates}")
    assert r.headers["Content-Disposition"] == 'attachment; filename="breakdown-team-2026-03-01-2026-03-07.csv"'


def test_alert_feed_and_its_csv_follow_the_filters(app, sv_client):
    line, mail = f.inbox(kind="line", name="LINE窓口"), f.inbox(kind="email", name="メール窓口")
    team = f.team(name="二次対応")
    agent = f.agent(name="担当 三郎")
    ids = {}
    for inbox, who, in_team, tags in [(line, agent, team, ("返金",)), (mail, None, None, ())]:
        t = b.ticket(inbox, created=b.jst(2026, 3, 2, 9), agent=who, team=in_team, tags=tags)
        db.session.add(Alert(ticket_id=t.id, rule="strongly_negative", created_at=b.jst(2026, 3, 2, 10)))
        ids[inbox.kind] = t.id
    db.session.commit()
    dates = "from=2026-03-02&to=2026-03-02"
    every = sv_client.get(f"/supervisor/api/alerts?{dates}").get_json()["alerts"]
    assert sorted(a["ticket_id"] for a in every) == sorted(ids.values())
    for query in [f"inbox={line.id}", "channel=line", f"team={team.id}", f"agent={agent.id}", "tag=返金"]:
        got = sv_client.get(f"/supervisor/api/alerts?{dates}&{query}").get_json()["alerts"]
        assert [a["ticket_id"] for a in got] == [ids["line"]], query
        rows = sv_client.get(f"/supervisor/api/alerts?{dates}&{query}&format=csv").get_data().decode("utf-8-sig")
        assert [line.split(",")[0] for line in rows.split("\r\n")[1:-1]] == [str(ids["line"])], query
