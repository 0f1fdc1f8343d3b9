"""The desk's live pages in headless Chromium: alerts, the customer's whole history, renames,
the inbox's order and count, and the language switch."""

from __future__ import annotations

import re

import pytest

from helpdesk.extensions import db
from helpdesk.models import Contact, Role, Ticket
from helpdesk.realtime import events
from helpdesk.services.ingest import ingest
from tests import factories as f
from tests.live import chromium, live_server, open_desk_page

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread", SENTIMENT_ENABLED=False)]

DESK_I18N = "() => JSON.parse(document.getElementById('desk-config').textContent).i18n"
# Whether the element a person sees at a control's centre is that control (nothing lies over it).
UNCOVERED = """(sel) => {
  const e = document.querySelector(sel);
  e.scrollIntoView({block: "center"});
  const r = e.getBoundingClientRect();
  const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return top === e || e.contains(top);
}"""


def row_ids(page) -> list[int]:
    return [int(i) for i in page.eval_on_selector_all("#tickets tbody tr[data-ticket-id]",
                                                      "rows => rows.map((r) => r.dataset.ticketId)")]


def alert(inbox, ticket_id: int, n: int) -> None:
    """A sentiment alert as escalation sends it to the supervisors (escalation._alert_json)."""
    events.publish(events.SENTIMENT_ALERT, {
        "id": n, "ticket_id": ticket_id, "message_id": n, "rule": "very_negative", "detail": "",
        "subject": "", "contact": f"顧客{n}", "inbox_id": inbox.id, "assignee": None,
        "excerpt": f"最悪です。二度と使いません。{n}", "created_at": "2024-06-01T00:00:00+00:00"},
        ticket_id=ticket_id, supervisors_only=True)


def test_supervisor_alerts_are_capped_closable_and_never_cover_the_ticket(app, tmp_path):
    inbox = f.inbox(kind="test")
    sup = f.agent(role=Role.supervisor, name="上長")
    tickets = [ingest(inbox, f.inbound(user_id=f"angry-{i}", text="返金して")).message.ticket_id for i in range(6)]
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, sup.email, f.PASSWORD)
        page.set_viewport_size({"width": 1280, "height": 720})
        page.goto(f"{server.url}/agent/tickets/{tickets[0]}")
        page.wait_for_selector("body[data-live=ready]")
        for n, ticket_id in enumerate(tickets + [tickets[5]], start=1):  # the last ticket twice
            alert(inbox, ticket_id, n)
        db.session.commit()
        page.wait_for_function("() => (document.querySelector('#alerts .alert') || {}).textContent"
                               " && document.querySelector('#alerts .alert').textContent.includes('二度と使いません。7')",
                               timeout=10000)
        t = page.evaluate(DESK_I18N)
        items = page.locator("#alerts .alert")
        # The newest three, one per ticket; the rest are counted.
        assert items.count() == 3
        assert [items.nth(i).get_attribute("data-ticket-id") for i in range(3)] == [
            str(tickets[5]), str(tickets[4]), str(tickets[3])]
        assert page.inner_text("#alerts .alerts-count") == t["more_alerts"].replace("{n}", "3")  # tickets 1-3
        assert page.get_attribute("#alerts .alert a", "href") == f"/agent/tickets/{tickets[5]}"
        assert page.get_attribute("#alerts .alerts-more a", "href") == "/supervisor/"  # where all of them are
        for i in range(3):
            assert items.nth(i).locator("button.alert-close").get_attribute("aria-label") == t["dismiss_alert"]
        # Not a layer over the page: every control of the ticket can still be reached.
        assert page.evaluate("() => getComputedStyle(document.getElementById('alerts')).position") == "static"
        for control in ("#status", "#props button[type=submit]", "#send-reply", "#reply-body",
                        ".contact-card .contact-name a", ".topbar form button"):
            assert page.evaluate(UNCOVERED, control), control
        page.screenshot(path=str(tmp_path / "alerts.png"))

        items.nth(0).locator("button.alert-close").click()
        assert items.count() == 2 and items.nth(0).get_attribute("data-ticket-id") == str(tickets[4])
        page.click("#alerts .alerts-more button")
        assert page.locator("#alerts").is_hidden()
        assert page.errors == []


def test_a_message_on_another_channel_joins_the_customers_history_live(app, tmp_path):
    from helpdesk.services.replies import post_reply
    from helpdesk.services.tickets import merge_contacts

    mail = f.inbox(kind="test")
    api = f.inbox(kind="api")
    agent = f.agent(inboxes=[mail, api], name="田中")
    colleague = f.agent(inboxes=[mail, api], name="鈴木")
    mine = ingest(mail, f.inbound(user_id="mail-user", text="メールからの問い合わせ")).message.ticket
    other = ingest(api, f.inbound(user_id="api-user", text="APIからの問い合わせ")).message.ticket
    mine_id, other_id = mine.id, other.id
    merge_contacts(mine.contact, other.contact, agent)
    stranger = ingest(api, f.inbound(user_id="someone-else", text="別の顧客です")).message.ticket_id
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.goto(f"{server.url}/agent/tickets/{mine_id}")
        page.wait_for_selector("body[data-live=ready]")
        assert page.locator("#thread .msg").count() == 2
        api_label = page.evaluate(DESK_I18N)["channels"]["api"]

        # The customer writes on their API ticket: it shows here, marked as that ticket's.
        msg = ingest(api, f.inbound(user_id="api-user", text="APIから追記です")).message
        assert msg.ticket_id == other_id
        li = page.wait_for_selector(f"#m{msg.id}", timeout=10000)
        assert "APIから追記です" in li.inner_text()
        assert "other-ticket" in li.get_attribute("class")
        assert li.query_selector("a.ticket-link").get_attribute("href") == f"/agent/tickets/{other_id}"
        assert li.query_selector(".badge.ch-api").inner_text() == api_label
        # A colleague's private note there (its event carries no ticket) and a new ticket of theirs.
        note = post_reply(db.session.get(Ticket, other_id), colleague, "社内メモです", private=True)
        page.wait_for_selector(f"#m{note.id}.dir-note", timeout=10000)
        fresh = ingest(api, f.inbound(user_id="api-user", text="新しい件です", new_thread=True)).message
        assert fresh.ticket_id not in (mine_id, other_id)
        li = page.wait_for_selector(f"#m{fresh.id}", timeout=10000)
        assert li.query_selector("a.ticket-link").inner_text() == f"#{fresh.ticket_id}"
        # The sidebar lists it on top of the customer's other tickets, and follows their status.
        t = page.evaluate(DESK_I18N)
        past = lambda: page.eval_on_selector_all(  # noqa: E731
            ".contact-card ul.past li", "items => items.map((i) => [i.dataset.ticketId, i.innerText])")
        assert past() == [[str(fresh.ticket_id), f"#{fresh.ticket_id} 新しい件です {t['statuses']['new']}"],
                          [str(other_id), f"#{other_id} APIからの問い合わせ {t['statuses']['new']}"]]
        from helpdesk.services.tickets import update_ticket

        update_ticket(db.session.get(Ticket, other_id), colleague, status="pending")
        page.wait_for_function(f"() => document.querySelector('.past li[data-ticket-id=\"{other_id}\"]')"
                               f".innerText.endsWith('{t['statuses']['pending']}')", timeout=10000)
        assert [i for i, _ in past()] == [str(fresh.ticket_id), str(other_id)]
        # Another customer's message stays out.
        ingest(api, f.inbound(user_id="someone-else", text="別の顧客の追記"))
        page.wait_for_timeout(500)
        assert "別の顧客" not in page.inner_text("#thread") and stranger

        # A message added live carries its channel badge, as after a reload.
        page.fill("#reply-body", "確認いたします")
        page.click("#send-reply")
        out = page.wait_for_selector('.msg.dir-out .delivery[data-delivery="sent"]', timeout=10000)
        assert out.evaluate("(d) => d.closest('.msg').querySelector('.badge.ch-test') !== null")
        page.screenshot(path=str(tmp_path / "history.png"), full_page=True)
        assert page.errors == []


def test_renaming_a_customer_reaches_an_open_ticket_page(app, tmp_path):
    from helpdesk.models import CannedReply
    from helpdesk.services.tickets import update_contact

    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    admin = f.agent(inboxes=[inbox], role=Role.admin, name="管理者")
    db.session.add(CannedReply(shortcut="thanks", title="お礼", body="{customer} 様"))
    db.session.commit()
    first = ingest(inbox, f.inbound(user_id="masaki", display_name="まさき", text="届きません")).message
    ticket_id, contact_id = first.ticket_id, first.contact_id
    ingest(inbox, f.inbound(user_id="masaki", text="まだですか"))
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.goto(f"{server.url}/agent/tickets/{ticket_id}")
        page.wait_for_selector("body[data-live=ready]")
        assert page.inner_text(".contact-card .contact-name") == "まさき"

        update_contact(db.session.get(Contact, contact_id), admin, name="山本 正樹", email=None, phone=None, note="")
        page.wait_for_function("() => document.querySelector('.contact-card .contact-name').textContent"
                               " === '山本 正樹'", timeout=10000)
        assert page.eval_on_selector_all("#thread .msg.dir-in .who", "ws => ws.map((w) => w.textContent)") == [
            "山本 正樹", "山本 正樹"]
        via = page.inner_text(".reply-via")
        assert "山本 正樹" in via and "まさき" not in via
        assert page.locator(".reply-via .badge.ch").count() == 1
        assert page.input_value(".contact-edit input[name=name]") == "山本 正樹"
        page.select_option("#canned", index=1)
        assert page.input_value("#reply-body") == "山本 正樹 様"
        assert page.errors == []


def test_merging_the_customer_away_reaches_an_open_ticket_page(app, tmp_path):
    from helpdesk.services.tickets import merge_contacts

    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    guest = ingest(inbox, f.inbound(user_id="guest", display_name="ゲスト", text="質問です")).message.ticket
    known = ingest(inbox, f.inbound(user_id="known", display_name="山本 正樹", text="以前の件")).message.ticket
    ticket_id, survivor_id = guest.id, known.contact_id
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.goto(f"{server.url}/agent/tickets/{ticket_id}")
        page.wait_for_selector("body[data-live=ready]")
        merge_contacts(db.session.get(Contact, survivor_id), db.session.get(Ticket, ticket_id).contact, agent)
        banner = page.wait_for_selector("#contact-merged-banner", timeout=10000)
        assert banner.inner_text().startswith(page.evaluate(DESK_I18N)["contact_merged"])
        assert page.inner_text(".contact-card .contact-name") == "山本 正樹"
        assert page.get_attribute(".contact-card .contact-name a", "href") == f"/agent/contacts/{survivor_id}"
        assert page.inner_text("#thread .msg.dir-in .who") == "山本 正樹"
        assert page.errors == []


def test_live_inbox_rows_move_only_as_the_lists_sort_says(app, tmp_path):
    from helpdesk.services.tickets import update_ticket

    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    a, b, c = (ingest(inbox, f.inbound(user_id=u, text="問い合わせ")).message.ticket_id for u in ("a", "b", "c"))
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.wait_for_selector("body[data-live=ready]")
        assert row_ids(page) == [c, b, a]  # newest activity first
        # A status change is no new activity: the row stays where it is.
        update_ticket(db.session.get(Ticket, a), agent, status="pending")
        page.wait_for_selector(f'tr[data-ticket-id="{a}"] td.status[data-status="pending"]', timeout=10000)
        assert row_ids(page) == [c, b, a]
        # A customer message is: the row goes to the top.
        ingest(inbox, f.inbound(user_id="a", text="まだですか"))
        page.wait_for_function(f"() => document.querySelector('#tickets tbody tr').dataset.ticketId === '{a}'",
                               timeout=10000)
        assert row_ids(page) == [a, c, b]

        # Sorted by priority, a raised priority moves the row up, and nothing else moves it.
        page.goto(f"{server.url}/agent/?sort=priority")
        page.wait_for_selector("body[data-live=ready]")
        assert row_ids(page) == [a, c, b]
        update_ticket(db.session.get(Ticket, b), agent, priority="urgent")
        page.wait_for_selector(f'tr.prio-urgent[data-ticket-id="{b}"]', timeout=10000)
        assert row_ids(page) == [b, a, c]
        update_ticket(db.session.get(Ticket, c), agent, status="pending")
        page.wait_for_selector(f'tr[data-ticket-id="{c}"] td.status[data-status="pending"]', timeout=10000)
        assert row_ids(page) == [b, a, c]
        assert page.errors == []


@pytest.mark.config(JOBS="thread", SENTIMENT_ENABLED=False, PAGE_SIZE=3)
def test_live_inbox_keeps_its_page_size_and_counts_new_tickets(app, tmp_path):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    for u in ("a", "b", "c"):
        ingest(inbox, f.inbound(user_id=u, text="問い合わせ"))
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.wait_for_selector("body[data-live=ready]")
        t = page.evaluate(DESK_I18N)

        def info(n: int, m: int, total: int) -> str:
            return t["page_of"].format(n=n, m=m) + " · " + t["tickets_total"].format(n=total)

        assert page.inner_text(".pager > span") == info(1, 1, 3)
        new = [ingest(inbox, f.inbound(user_id=u, text="新しい問い合わせ")).message.ticket_id for u in ("d", "e")]
        page.wait_for_function(f"() => document.querySelector('#tickets tbody tr').dataset.ticketId === '{new[1]}'",
                               timeout=10000)
        assert row_ids(page) == [new[1], new[0], row_ids(page)[2]]  # still three: one moved on to page 2
        assert page.inner_text(".pager > span") == info(1, 2, 5)
        assert page.get_attribute(".pager a.next", "href") == "/agent/?page=2"
        page.click(".pager a.next")
        page.wait_for_selector("body[data-live=ready]")
        assert len(row_ids(page)) == 2
        assert page.errors == []


def test_a_filtered_inbox_takes_tickets_that_fit_and_marks_rows_that_left(app, tmp_path):
    """The "unassigned" queue, as a busy desk watches it: new tickets arrive in it, a ticket a
    colleague takes is marked as gone (not pulled from under the mouse), one handed back comes in."""
    from helpdesk.services.tickets import update_ticket

    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    colleague = f.agent(inboxes=[inbox], name="鈴木")
    waiting = ingest(inbox, f.inbound(user_id="a", text="届いていません")).message.ticket_id
    taken = ingest(inbox, f.inbound(user_id="b", text="鈴木さんの件")).message.ticket
    taken_id = taken.id
    update_ticket(taken, colleague, assignee_id=colleague.id)
    db.session.commit()
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.goto(f"{server.url}/agent/?assignee=unassigned")
        page.wait_for_selector("body[data-live=ready]")
        t = page.evaluate(DESK_I18N)
        total = lambda n: t["page_of"].format(n=1, m=1) + " · " + (  # noqa: E731
            t["tickets_total_one"] if n == 1 else t["tickets_total"]).format(n=n)
        assert row_ids(page) == [waiting] and page.inner_text(".pager > span") == total(1)

        new = ingest(inbox, f.inbound(user_id="c", text="新しい問い合わせ")).message.ticket_id
        page.wait_for_function(f"() => document.querySelector('#tickets tbody tr').dataset.ticketId === '{new}'",
                               timeout=10000)
        assert row_ids(page) == [new, waiting] and page.inner_text(".pager > span") == total(2)

        update_ticket(db.session.get(Ticket, waiting), colleague, assignee_id=colleague.id)
        db.session.commit()
        row = page.locator(f'tr[data-ticket-id="{waiting}"]')
        row.locator(".out-of-view-note").wait_for(timeout=10000)
        assert "out-of-view" in row.get_attribute("class")
        assert row.locator(".out-of-view-note").inner_text() == t["out_of_view"] == "この一覧の条件から外れました"
        assert row.locator("td.assignee").inner_text() == "鈴木"
        assert row_ids(page) == [new, waiting] and page.inner_text(".pager > span") == total(1)
        page.screenshot(path=str(tmp_path / "unassigned.png"))

        update_ticket(db.session.get(Ticket, taken_id), colleague, assignee_id=None)  # handed back
        db.session.commit()
        page.wait_for_selector(f'tr[data-ticket-id="{taken_id}"]', timeout=10000)
        assert page.locator(f'tr[data-ticket-id="{taken_id}"].out-of-view').count() == 0
        page.reload()
        page.wait_for_selector("body[data-live=ready]")
        assert sorted(row_ids(page)) == sorted([new, taken_id])
        assert page.errors == []


def test_a_search_or_a_tag_filter_takes_no_ticket_it_cannot_tell_fits(app, tmp_path):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    hit = ingest(inbox, f.inbound(user_id="a", text="返金してください")).message.ticket_id
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.goto(f"{server.url}/agent/?q=返金")
        page.wait_for_selector("body[data-live=ready]")
        assert row_ids(page) == [hit]
        other = ingest(inbox, f.inbound(user_id="b", text="配送について")).message.ticket_id
        ingest(inbox, f.inbound(user_id="a", text="返金はまだですか"))
        page.wait_for_selector(f'tr.fresh[data-ticket-id="{hit}"]', timeout=10000)
        page.wait_for_function("() => document.title.startsWith('●')", timeout=10000)  # something new, elsewhere
        assert row_ids(page) == [hit] and other not in row_ids(page)

        page.goto(f"{server.url}/agent/?tag=VIP")
        page.wait_for_selector("body[data-live=ready]")
        assert row_ids(page) == []
        from helpdesk.services.tickets import update_ticket

        update_ticket(db.session.get(Ticket, other), agent, tags=["VIP"])
        db.session.commit()
        page.wait_for_selector(f'tr[data-ticket-id="{other}"]', timeout=10000)
        assert row_ids(page) == [other] and page.locator("tr.empty").count() == 0
        assert page.errors == []


def test_switching_language_keeps_the_search_and_filters(app, tmp_path):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    hit = ingest(inbox, f.inbound(user_id="a", text="返金してください")).message.ticket_id
    ingest(inbox, f.inbound(user_id="b", text="配送について"))
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.goto(f"{server.url}/agent/?status=all&q=返金&lang=ja")
        assert row_ids(page) == [hit]
        page.click('a.lang[lang="en"]')
        page.wait_for_url(re.compile(r".*lang=en"))
        assert page.evaluate("() => document.documentElement.lang") == "en"
        assert page.input_value("input[name=q]") == "返金" and page.input_value("select[name=status]") == "all"
        assert row_ids(page) == [hit]
        assert "lang=ja" not in page.url and page.url.count("lang=") == 1
        page.click('a.lang[lang="ja"]')
        page.wait_for_url(re.compile(r".*lang=ja"))
        assert page.input_value("input[name=q]") == "返金" and row_ids(page) == [hit]
        assert page.errors == []


def test_inbox_filters_by_a_named_agent_and_says_so(app, tmp_path):
    from helpdesk.services.tickets import update_ticket

    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    colleague = f.agent(inboxes=[inbox], name="鈴木")
    theirs = ingest(inbox, f.inbound(user_id="a", text="鈴木さんの件")).message.ticket
    theirs_id = theirs.id
    update_ticket(theirs, agent, assignee_id=colleague.id)
    ingest(inbox, f.inbound(user_id="b", text="未割り当ての件"))
    db.session.commit()
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        page.select_option(".filters select[name=assignee]", label="鈴木")
        page.click(".filters button[type=submit]")
        page.wait_for_url(re.compile(rf".*assignee={colleague.id}"))
        assert row_ids(page) == [theirs_id]
        assert page.locator(".filters select[name=assignee] option:checked").inner_text() == "鈴木"
        assert page.errors == []


def test_inbox_and_customers_have_a_heading_and_the_reply_box_a_label(app, tmp_path):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="田中")
    ticket_id = ingest(inbox, f.inbound(user_id="a", text="質問です")).message.ticket_id
    with live_server(app) as server, chromium() as browser:
        page = open_desk_page(browser, server, agent.email, f.PASSWORD)
        assert page.get_by_role("heading", level=1).inner_text() == "受信箱"
        page.goto(f"{server.url}/agent/contacts")
        assert page.get_by_role("heading", level=1).inner_text() == "顧客"
        page.goto(f"{server.url}/agent/tickets/{ticket_id}")
        # The reply box is named for assistive technology, not only by its placeholder.
        assert page.get_by_role("textbox", name="返信", exact=True).get_attribute("id") == "reply-body"
        assert page.errors == []
