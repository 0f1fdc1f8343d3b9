"""The agent desk under real use: two agents on one ticket, search as typed, tags as typed."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from helpdesk.extensions import db
from helpdesk.models import Priority, Status, Ticket
from helpdesk.services.ingest import ingest
from helpdesk.services.tickets import update_ticket
from tests import factories as f
from tests.conftest import login


class _FormFields(HTMLParser):
    """The fields one form (by id) submits, as a browser would: inputs, selected options, textareas."""

    def __init__(self, form_id: str):
        super().__init__()
        self.form_id, self.inside, self.select, self.fields = form_id, False, None, {}
        self.first_option = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        elif not self.inside:
            return
        elif tag == "input" and a.get("type") not in ("submit", "checkbox"):
            self.fields[a["name"]] = a.get("value") or ""
        elif tag == "select":
            self.select = a["name"]
        elif tag == "option" and self.select:
            self.first_option.setdefault(self.select, a.get("value", ""))
            if "selected" in a:
                self.fields[self.select] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select" and self.select:
            self.fields.setdefault(self.select, self.first_option.get(self.select, ""))
            self.select = None


def props_form(client, ticket_id: int) -> dict[str, str]:
    """The ticket page's sidebar form as the agent's browser would post it, unchanged."""
    parser = _FormFields("props")
    parser.feed(client.get(f"/agent/tickets/{ticket_id}").get_data(as_text=True))
    assert "csrf_token" in parser.fields and "status" in parser.fields
    return parser.fields


@pytest.fixture
def desk(app, client):
    inbox = f.inbox(kind="test")
    agent = f.agent(inboxes=[inbox], name="佐藤")
    other = f.agent(inboxes=[inbox], name="同僚")
    login(client, agent.email)
    ticket = ingest(inbox, f.inbound(user_id="cust-1", text="返金について")).message.ticket
    return inbox, agent, other, ticket


def _ticket(ticket_id: int) -> Ticket:
    db.session.expire_all()
    return db.session.get(Ticket, ticket_id)


def test_saving_an_old_page_keeps_a_colleagues_assignment_and_status(app, client, desk):
    inbox, agent, other, ticket = desk
    fields = props_form(client, ticket.id)  # the page opened before the colleague's changes
    update_ticket(db.session.get(Ticket, ticket.id), other, assignee_id=other.id, status="pending",
                  tags=["至急"])
    # This agent only raises the priority on the page they had open, and saves.
    resp = client.post(f"/agent/tickets/{ticket.id}/update", data={**fields, "priority": "high"})
    assert resp.status_code == 302
    t = _ticket(ticket.id)
    assert t.priority is Priority.high
    assert (t.assignee_id, t.status, [tag.name for tag in t.tags]) == (other.id, Status.pending, ["至急"])


def test_a_changed_field_on_an_old_page_still_applies(app, client, desk):
    inbox, agent, other, ticket = desk
    fields = props_form(client, ticket.id)
    update_ticket(db.session.get(Ticket, ticket.id), other, assignee_id=other.id)
    client.post(f"/agent/tickets/{ticket.id}/update", data={**fields, "assignee": str(agent.id), "tags": "返金"})
    t = _ticket(ticket.id)
    assert t.assignee_id == agent.id and [tag.name for tag in t.tags] == ["返金"]
    # Unassigning from a page that showed an assignee applies too.
    fields = props_form(client, ticket.id)
    assert fields["was_assignee"] == str(agent.id)
    client.post(f"/agent/tickets/{ticket.id}/update", data={**fields, "assignee": ""})
    assert _ticket(ticket.id).assignee_id is None


def test_saving_keeps_an_assignee_who_lost_access_to_the_inbox(app, client, desk):
    inbox, agent, other, ticket = desk
    update_ticket(db.session.get(Ticket, ticket.id), other, assignee_id=other.id)
    inbox.members.remove(db.session.get(type(other), other.id))
    db.session.commit()
    page = client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert "同僚（この受信箱を担当できません）" in page
    fields = props_form(client, ticket.id)
    assert fields["assignee"] == str(other.id)
    client.post(f"/agent/tickets/{ticket.id}/update", data={**fields, "priority": "urgent"})
    t = _ticket(ticket.id)
    assert (t.priority, t.assignee_id) == (Priority.urgent, other.id)


@pytest.mark.parametrize("typed", ["返金，至急", "返金、至急", "返金､至急", "返金, 至急"])
def test_tags_split_on_japanese_and_full_width_commas(app, client, desk, typed):
    inbox, agent, other, ticket = desk
    fields = props_form(client, ticket.id)
    client.post(f"/agent/tickets/{ticket.id}/update", data={**fields, "tags": typed})
    assert [tag.name for tag in _ticket(ticket.id).tags] == ["至急", "返金"]


@pytest.mark.parametrize(("subject", "query"), [
    ("ＡＢＣ注文の件", "ＡＢＣ注文"),  # typed as shown: full-width letters
    ("ﾍﾝﾋﾟﾝ希望", "ﾍﾝﾋﾟﾝ"),  # half-width katakana
    ("ABC注文の件", "ａｂｃ"),  # the usual form still found from full-width input
])
def test_inbox_search_finds_a_subject_as_it_is_written(app, client, desk, subject, query):
    inbox, agent, other, ticket = desk
    ticket.subject = subject
    db.session.commit()
    html = client.get("/agent/", query_string={"q": query}).get_data(as_text=True)
    assert f'data-ticket-id="{ticket.id}"' in html


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("typed", ["ﾔﾏﾀﾞ", "ヤマダ", "ヤマダ\u3000タロウ"])
def test_search_finds_a_customer_name_in_half_width_kana(app, client, desk, typed):
    """Names exported by older systems in half-width katakana are found as agents type them:
    with the IME's usual katakana (this once found nothing), or as stored."""
    inbox, agent, other, ticket = desk
    ticket.contact.name = "ﾔﾏﾀﾞ ﾀﾛｳ"
    db.session.commit()
    assert f'data-ticket-id="{ticket.id}"' in client.get("/agent/", query_string={"q": typed}).get_data(as_text=True)
    directory = client.get("/agent/contacts", query_string={"q": typed}).get_data(as_text=True)
    assert "ﾔﾏﾀﾞ ﾀﾛｳ" in directory
    assert "ﾔﾏﾀﾞ ﾀﾛｳ" not in client.get("/agent/contacts?q=ｽｽﾞｷ").get_data(as_text=True)
    assert f'data-ticket-id="{ticket.id}"' not in client.get("/agent/?q=スズキ").get_data(as_text=True)


def test_ticket_page_offers_no_customer_edit_or_merge_the_server_would_refuse(app, client, desk):
    inbox, agent, other, ticket = desk
    page = client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert f'action="/agent/contacts/{ticket.contact_id}/update"' in page
    assert f'action="/agent/contacts/{ticket.contact_id}/merge"' in page
    ingest(f.inbox(), f.inbound(user_id="cust-1", text="別の窓口から"))  # the same customer, an inbox not theirs
    page = client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert f'action="/agent/contacts/{ticket.contact_id}/update"' not in page
    assert f'action="/agent/contacts/{ticket.contact_id}/merge"' not in page
    assert 'class="muted contact-readonly"' in page


def test_bulk_tag_is_split_like_the_tickets_tags_field(app, client, desk):
    from tests.conftest import csrf_token

    inbox, agent, other, ticket = desk
    token = csrf_token(client, "/agent/")
    resp = client.post("/agent/tickets/bulk", data={"ticket_ids": [str(ticket.id)], "add_tag": "返金、 至急",
                                                    "csrf_token": token, "next": "/agent/"})
    assert resp.status_code == 302
    assert [tag.name for tag in _ticket(ticket.id).tags] == ["至急", "返金"]
