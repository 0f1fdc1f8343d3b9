"""The customer directory: who an agent sees, finding a customer, their page, and merging
the same customer found twice."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import AuditLog, Contact, Event, Role, Ticket
from helpdesk.services.ingest import ingest
from tests import factories as f
from tests.conftest import csrf_token, login


def customer(inbox, user_id: str, name: str, kind: str | None = None, **fields) -> Contact:
    msg = ingest(inbox, f.inbound(user_id=user_id, display_name=name, identity_kind=kind,
                                  text=f"{name}からの問い合わせ")).message
    contact = db.session.get(Contact, msg.contact_id)
    for key, value in fields.items():
        setattr(contact, key, value)
    db.session.commit()
    return contact


def listed(client, q: str = "") -> set[int]:
    html = client.get("/agent/contacts", query_string={"q": q}).get_data(as_text=True)
    return {c.id for c in db.session.scalars(select(Contact)) if f'data-contact-id="{c.id}"' in html}


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_search_finds_customers_as_agents_type_them(app, client):
    inbox = f.inbox()
    sato = customer(inbox, "U1", "佐藤花子", email="Hanako.Sato@example.jp", phone="090-1234-5678")
    kana = customer(inbox, "U2", "サトウ ケンジ")
    social = customer(inbox, "sato_hanako", "はなこ", kind="social")
    suzuki = customer(inbox, "U4", "鈴木一郎", phone="03 (1111) 2222")
    # typed with a Japanese IME: the minus sign 「−」, the long vowel mark 「ー」, full-width brackets
    ime = customer(inbox, "U5", "伊藤", phone="080−3333ー4444")
    brackets = customer(inbox, "U6", "加藤", phone="（06）5555‐6666")
    # an older system's export: the account's name in half-width katakana, the agent's in kanji
    tanaka = customer(inbox, "U7", "ﾀﾅｶ ﾐｷ")
    tanaka.name = "田中美紀"
    db.session.commit()
    login(client, f.agent(inboxes=[inbox]).email)
    assert listed(client, "08033334444") == {ime.id} and listed(client, "080-3333-4444") == {ime.id}
    assert listed(client, "0655556666") == {brackets.id} and listed(client, "06−5555") == {brackets.id}
    assert listed(client) == {sato.id, kana.id, social.id, suzuki.id, ime.id, brackets.id, tanaka.id}
    assert listed(client, "タナカ") == {tanaka.id} and listed(client, "ﾀﾅｶ") == {tanaka.id}
    assert listed(client, "佐藤") == {sato.id}  # part of the name
    assert listed(client, "ｻﾄｳ") == {kana.id}  # half-width katakana, as some systems export it
    assert listed(client, "hanako.sato@EXAMPLE") == {sato.id}  # email, any case
    assert listed(client, "09012345678") == {sato.id}  # the phone without its hyphens
    assert listed(client, "０３１１１１") == {suzuki.id}  # full-width digits, separators ignored
    assert listed(client, "@sato_hanako") == {social.id}  # a social handle as written
    assert listed(client, f"#{suzuki.id}") == {suzuki.id}
    assert listed(client, "%") == set()  # LIKE wildcards are text
    assert listed(client, "該当なし") == set()


def test_agents_see_customers_of_their_inboxes_only(app, client):
    mine, other = f.inbox(), f.inbox()
    seen = customer(mine, "U1", "見える顧客")
    hidden = customer(other, "U2", "見えない顧客")
    both = customer(mine, "U3", "両方の顧客")
    ingest(other, f.inbound(user_id="U3", text="別の受信箱でも"))
    login(client, f.agent(inboxes=[mine]).email)
    assert listed(client) == {seen.id, both.id}
    html = client.get("/agent/contacts").get_data(as_text=True)
    assert "見えない顧客" not in html
    assert client.get(f"/agent/contacts/{hidden.id}").status_code == 403
    # the customer with tickets on both sides: visible, but only the tickets the agent may see,
    # and not to be changed or merged (the rule the sidebar's forms already follow)
    page = client.get(f"/agent/contacts/{both.id}").get_data(as_text=True)
    assert "両方の顧客からの問い合わせ" in page and "別の受信箱でも" not in page
    assert 'action="/agent/contacts/%d/update"' % both.id not in page


def test_an_admin_sees_every_customer(app, client):
    a, b = f.inbox(), f.inbox()
    one, two = customer(a, "U1", "一人目"), customer(b, "U2", "二人目")
    login(client, f.agent(role=Role.admin).email)
    assert listed(client) == {one.id, two.id}


def test_the_customer_page_lists_their_tickets_and_accounts(app, client):
    inbox = f.inbox(kind="email")
    c = customer(inbox, "kimura@example.jp", "木村直子", email="kimura@example.jp", phone="045-000-1111")
    first = db.session.scalar(select(Ticket).where(Ticket.contact_id == c.id))
    login(client, f.agent(inboxes=[inbox]).email)
    html = client.get(f"/agent/contacts/{c.id}").get_data(as_text=True)
    assert "木村直子" in html and "045-000-1111" in html
    assert f'data-ticket-id="{first.id}"' in html and "<code>kimura@example.jp</code>" in html
    assert client.get("/agent/contacts/999999").status_code == 404
    # and the ticket page's customer card leads here
    ticket_page = client.get(f"/agent/tickets/{first.id}").get_data(as_text=True)
    assert f'href="/agent/contacts/{c.id}"' in ticket_page


def test_likely_duplicates_are_offered_and_merged_from_the_customer_page(app, client):
    email, line = f.inbox(kind="email"), f.inbox(kind="line")
    kimura = customer(email, "kimura@example.jp", "木村直子", email="kimura@example.jp")
    same = customer(line, "U-line-1", "なおこ", kind="line", email="KIMURA@example.jp")
    stranger = customer(line, "U-line-2", "別人", kind="line")
    line_ticket = db.session.scalar(select(Ticket.id).where(Ticket.contact_id == same.id))
    login(client, f.agent(inboxes=[email, line]).email)
    html = client.get(f"/agent/contacts/{kimura.id}").get_data(as_text=True)
    duplicates = html.split('id="duplicates"')[1].split("</table>")[0]
    assert f'data-contact-id="{same.id}"' in duplicates
    assert f'data-contact-id="{stranger.id}"' not in duplicates
    # Anyone else is found by a search on the same page.
    found = client.get(f"/agent/contacts/{kimura.id}", query_string={"find": "別人"}).get_data(as_text=True)
    assert f'data-contact-id="{stranger.id}"' in found.split('id="found"')[1]

    token = csrf_token(client, f"/agent/contacts/{kimura.id}")
    resp = client.post(f"/agent/contacts/{kimura.id}/merge", data={"csrf_token": token, "other_id": same.id})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/agent/contacts/{kimura.id}")
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "なおこ" in page and f'data-ticket-id="{line_ticket}"' in page  # their LINE ticket moved here
    assert 'id="duplicates"' not in page
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "contact.merge")) is not None
    # The merged contact's old address leads to the one it became.
    old = client.get(f"/agent/contacts/{same.id}")
    assert old.status_code == 302 and old.headers["Location"].endswith(f"/agent/contacts/{kimura.id}")
    assert same.id not in listed(client)


def test_a_customer_merged_away_is_in_no_second_merge(app, client):
    """Two agents merging two customers into each other (one from a page opened before the
    other's merge) left each merged into the other: both gone, their pages redirecting to
    each other for ever. A merge into, or of, a customer merged away is refused."""
    inbox = f.inbox(kind="line")
    a, b, c = (customer(inbox, f"U-{n}", n) for n in ("たけし", "たぬき", "小林"))
    login(client, f.agent(inboxes=[inbox], locale="en").email)
    token = csrf_token(client, f"/agent/contacts/{a.id}")
    assert client.post(f"/agent/contacts/{a.id}/merge", data={"csrf_token": token, "other_id": b.id}).status_code == 302
    events_before = db.session.scalar(select(func.count()).select_from(Event))
    for survivor, other in ((b, a), (b, c), (c, b)):  # b was merged into a
        resp = client.post(f"/agent/contacts/{survivor.id}/merge", data={"csrf_token": token, "other_id": other.id})
        assert resp.status_code == 302
        page = client.get(resp.headers["Location"], follow_redirects=True).get_data(as_text=True)
        assert "This customer was merged into another one already." in page
    db.session.expire_all()
    assert [(x.id, x.merged_into_id) for x in (a, b, c)] == [(a.id, None), (b.id, a.id), (c.id, None)]
    assert db.session.scalar(select(func.count()).select_from(Event)) == events_before
    assert client.get(f"/agent/contacts/{a.id}").status_code == 200
    assert listed(client) == {a.id, c.id}


def test_a_merge_shows_live_on_the_moved_tickets(app, client):
    inbox = f.inbox(kind="line")
    a, b = customer(inbox, "U-a", "たけし"), customer(inbox, "U-b", "たぬき")
    moved = db.session.scalar(select(Ticket.id).where(Ticket.contact_id == b.id))
    login(client, f.agent(inboxes=[inbox]).email)
    token = csrf_token(client, f"/agent/contacts/{a.id}")
    client.post(f"/agent/contacts/{a.id}/merge", data={"csrf_token": token, "other_id": b.id})
    ev = db.session.scalars(select(Event).where(Event.name == "ticket.updated").order_by(Event.id.desc())).first()
    assert ev is not None and ev.ticket_id == moved
    assert ev.payload["contact"] == {"id": a.id, "name": "たけし"}


def test_editing_from_the_customer_page_returns_there(app, client):
    inbox = f.inbox()
    c = customer(inbox, "U1", "山田")
    login(client, f.agent(inboxes=[inbox]).email)
    token = csrf_token(client, f"/agent/contacts/{c.id}")
    resp = client.post(f"/agent/contacts/{c.id}/update", data={
        "csrf_token": token, "name": "山田 太郎", "email": "taro@example.jp", "phone": "", "note": "法人契約"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/agent/contacts/{c.id}")
    db.session.expire_all()
    assert (c.name, c.email) == ("山田 太郎", "taro@example.jp")


def test_customer_text_is_escaped_in_the_directory_and_on_the_page(app, client):
    inbox = f.inbox()
    c = customer(inbox, "U1", "<script>alert(1)</script>", phone="<b>03</b>")
    login(client, f.agent(inboxes=[inbox]).email)
    for url in ("/agent/contacts", f"/agent/contacts/{c.id}"):
        html = client.get(url).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<b>03</b>" not in html


def test_the_directory_pages_most_recently_active_first(app, client):
    app.config["PAGE_SIZE"] = 2
    inbox = f.inbox()
    made = [customer(inbox, f"U{i}", f"顧客{i}") for i in range(5)]
    login(client, f.agent(inboxes=[inbox]).email)
    assert listed(client) == {made[4].id, made[3].id}
    html = client.get("/agent/contacts", query_string={"page": 3}).get_data(as_text=True)
    assert f'data-contact-id="{made[0].id}"' in html and "全5人" in html


@pytest.mark.config(PAGE_SIZE=2)
def test_the_directory_pages_through_a_search(app, client):
    """The pager (shared with the inbox) keeps the search and moves one page at a time."""
    import re

    inbox = f.inbox()
    for i in range(5):
        customer(inbox, f"P{i}", f"田中{i}")
    customer(inbox, "X", "山本")
    login(client, f.agent(inboxes=[inbox]).email)
    html = client.get("/agent/contacts", query_string={"q": "田中", "page": 2}).get_data(as_text=True)
    links = re.findall(r'<nav class="pager">.*?</nav>', html, re.S)[0]
    hrefs = [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', links)]
    assert len(hrefs) == 2 and all("q=%E7%94%B0%E4%B8%AD" in h for h in hrefs)
    assert "page=1" in hrefs[0] and "page=3" in hrefs[1]
    # page 2 of 3, and how many match (not how many customers there are)
    assert re.search(r"<span[^>]*>(.*?)</span>", links).group(1) == "2 / 3ページ · 全5人"
