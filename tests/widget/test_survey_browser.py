"""A survey answered in the widget as a customer does it: the question shows its answer buttons
and a link to its page; a button answers; the ticket stays resolved (headless Chromium)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import Status, Ticket
from helpdesk.models.survey import SurveyAnswer
from helpdesk.realtime.widget_ns import agents_online
from helpdesk.services.replies import post_reply
from helpdesk.services.tickets import update_ticket
from tests import factories as f
from tests.live import chromium, live_server, log_in
from tests.widget.host import host_page, host_site
from tests.widget.test_widget_browser import open_widget

pytestmark = [pytest.mark.browser, pytest.mark.config(JOBS="thread", PUBLIC_URL="https://desk.example.jp")]

AGENT_TEXT = ("詳しくは https://help.example.jp/returns?item=1&lang=ja をご覧ください。"
              '<img src=x onerror="window.__xss=1"> javascript:alert(1)')


def chat_ticket() -> Ticket:
    db.session.expire_all()
    return db.session.scalars(select(Ticket).where(Ticket.channel == "chat")).one()


def test_visitor_answers_the_survey_with_a_button(app):
    inbox = f.inbox(kind="chat", name="サイトチャット")
    agent = f.agent(inboxes=[inbox], name="佐藤 花子")
    with live_server(app) as desk, chromium() as browser:
        with host_site({"/": host_page(desk.url, inbox.key)}) as shop:
            errors: list[str] = []
            page = browser.new_context(locale="ja-JP").new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            staff = browser.new_context(locale="ja-JP").new_page()  # so the visitor is asked for no email
            log_in(staff, desk, agent.email, f.PASSWORD)
            staff.wait_for_selector("body[data-live=ready]")
            page.goto(shop + "/")
            _, frame = open_widget(page)
            frame.fill("#text", "返品の方法を教えてください")
            frame.press("#text", "Enter")
            frame.wait_for_selector(".msg.dir-in")

            # Links in the agent's text are links (http(s) only); the rest stays text.
            post_reply(chat_ticket(), agent, AGENT_TEXT)
            frame.wait_for_selector(".msg.dir-out")
            link = frame.query_selector(".msg.dir-out a.web-link")
            assert link.get_attribute("href") == "https://help.example.jp/returns?item=1&lang=ja"
            assert (link.get_attribute("target"), link.get_attribute("rel")) == ("_blank", "noopener noreferrer")
            assert frame.inner_text(".msg.dir-out .body") == AGENT_TEXT
            hrefs = frame.eval_on_selector_all(".msg.dir-out a", "as => as.map(a => a.href)")
            assert hrefs == ["https://help.example.jp/returns?item=1&lang=ja"]  # no javascript: link
            assert frame.query_selector(".msg.dir-out img") is None

            update_ticket(chat_ticket(), agent, status="resolved")
            frame.wait_for_selector(".quick-reply", timeout=10000)
            labels = frame.eval_on_selector_all(".quick-reply", "bs => bs.map(b => b.textContent)")
            assert labels == ["5 満足", "4", "3", "2", "1 不満"]
            survey_link = frame.query_selector(".msg.dir-out:last-child a.web-link")
            assert survey_link.get_attribute("href").startswith("https://desk.example.jp/survey/")

            # The agent has gone home and the visitor comes back later: the question is still
            # there, and answering it asks for no email.
            staff.close()
            deadline = time.monotonic() + 10
            while agents_online(inbox.id) and time.monotonic() < deadline:
                time.sleep(0.05)
            page.reload()
            _, frame = open_widget(page)
            frame.wait_for_selector(".quick-reply")
            assert frame.is_visible("#offline-email")
            frame.click(".quick-reply >> text='5 満足'")
            frame.wait_for_selector(".msg.dir-in:last-child .body:text-is('満足度: 5')", timeout=10000)
            assert frame.query_selector_all(".quick-reply") == []  # answered: the buttons go
            assert frame.is_hidden("#error")
            assert db.session.scalar(select(SurveyAnswer.score)) == 5
            assert chat_ticket().status is Status.resolved
            assert frame.evaluate("window.__xss") is None and page.evaluate("window.__xss") is None
            assert errors == []
