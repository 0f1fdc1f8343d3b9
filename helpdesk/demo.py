"""Demo data: a small Japanese support team and conversations on every channel.

Everything enters through ``services.ingest`` and ``services.replies``, like real
traffic, so the demo also exercises the real paths (and the sentiment worker).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from channels.base import Inbound

from .extensions import db
from .models import Agent, CannedReply, Inbox, Role, Team
from .services.ingest import ingest
from .services.replies import post_reply
from .services.tickets import update_ticket

DEMO_LOGIN = ("admin@example.com", "helpdesk-demo")

AGENTS = [
    ("admin@example.com", "管理者 山田", Role.admin),
    ("supervisor@example.com", "佐藤 恵子", Role.supervisor),
    ("tanaka@example.com", "田中 翔", Role.agent),
    ("suzuki@example.com", "鈴木 美咲", Role.agent),
]

INBOXES = [
    ("サポートメール", "email", {"address": "support@example.com",
                                "signature": "──────────\n株式会社サンプル カスタマーサポート\n"
                                             "担当: {agent}\nsupport@example.com\n──────────"}),
    ("サイトチャット", "chat", {"greeting": "こんにちは！ご質問をどうぞ。"}),
    ("LINE公式アカウント", "line", {}),
    ("Facebookページ", "messenger", {}),
    ("X / Instagram", "social", {}),
]

# (inbox index, user id, name, [(minutes ago, text)], agent reply or None, final status)
CONVERSATIONS = [
    (0, "kimura@example.jp", "木村 直子", [
        (300, "お世話になっております。先週注文した商品（注文番号 A-10234）がまだ届いておりません。"
              "お手数ですが、配送状況をご確認いただけますでしょうか。"),
        (120, "再度のご連絡失礼いたします。本日中にご回答いただけない場合、注文をキャンセルさせていただきます。"),
    ], "木村様、ご迷惑をおかけし申し訳ございません。配送業者に確認し、本日中にご連絡いたします。", "open"),
    (0, "h.ito@example.co.jp", "伊藤 浩", [
        (1440, "請求書の宛名を「株式会社イトウ商事」に変更していただくことは可能でしょうか。"),
    ], "伊藤様、承知いたしました。変更後の請求書を添付にてお送りいたします。", "resolved"),
    (0, "m.kato@example.ne.jp", "加藤 真理", [
        (50, "三回目の問い合わせです。返金はいつになるのでしょうか。いい加減にしてください。"),
    ], None, "new"),
    (1, "visitor-7f3a", "ゲスト", [
        (15, "すみません、パスワードを忘れてしまいました。どうすればいいですか？"),
    ], None, "new"),
    (1, "visitor-91bc", "小林", [
        (200, "ログインするとエラーが出ます（E-403）。"),
        (190, "ありがとうございます！ログインできました、助かりました😊"),
    ], "キャッシュを削除して再度お試しいただけますか？", "resolved"),
    (2, "U4af4980629d5c1f0", "ゆか🌸", [
        (90, "注文したやつまだ来ないんですけど😭"),
        (80, "明日使う予定だったのに…もう最悪です"),
    ], None, "open"),
    (2, "U9c2b7e1d3f4a5b60", "たけし", [
        (30, "神対応ありがとうございました🙏✨ また利用します！"),
    ], None, "new"),
    (2, "U1b2c3d4e5f6a7b80", "まさき", [
        (60, "営業時間って何時までですか？"),
    ], None, "new"),
    (3, "6543210987654321", "Yamamoto Ken", [
        (400, "予約の変更をお願いしたいです。6月12日から6月19日に変更できますか？"),
    ], "山本様、6月19日に変更いたしました。ご確認ください。", "pending"),
    (3, "1234567890123456", "中村 さくら", [
        (45, "素晴らしい対応ですね。電話は繋がらないし、メールは無視。どうなってるんですか？"),
    ], None, "new"),
    (4, "@sato_hanako", "佐藤花子", [
        (25, "@example_support アプリが朝から落ちまくってて仕事にならない…早く直して"),
    ], None, "new"),
    (4, "@tanuki_99", "たぬき", [
        (500, "@example_support 昨日のサポートの方、本当に丁寧でした。ありがとうございます！"),
    ], "温かいお言葉ありがとうございます！担当者にも共有いたします。", "resolved"),
]

CANNED = [
    ("thanks", "お礼", "{customer} 様\nお問い合わせいただきありがとうございます。担当の{agent}です。"),
    ("sorry", "お詫び", "ご迷惑をおかけしておりますこと、心よりお詫び申し上げます。"),
    ("check", "確認中", "ただいま確認しております。少々お待ちくださいませ。"),
]


def load_demo(force: bool = False) -> bool:
    if not force and db.session.scalar(select(Agent).where(Agent.email == DEMO_LOGIN[0])):
        return False
    team = db.session.scalar(select(Team).where(Team.name == "一次対応")) or Team(name="一次対応")
    db.session.add(team)
    agents = []
    for email, name, role in AGENTS:
        agent = db.session.scalar(select(Agent).where(Agent.email == email)) or Agent(email=email, name=name)
        agent.role = role
        agent.set_password(DEMO_LOGIN[1])
        db.session.add(agent)
        agents.append(agent)
    team.members = [a for a in agents if a.role is Role.agent]
    for shortcut, title, body in CANNED:
        if not db.session.scalar(select(CannedReply).where(CannedReply.shortcut == shortcut)):
            db.session.add(CannedReply(shortcut=shortcut, title=title, body=body))
    db.session.flush()
    inboxes = []
    for name, kind, settings in INBOXES:
        inbox = db.session.scalar(select(Inbox).where(Inbox.name == name))
        if inbox is None:
            # Demo customers are fictional: no survey is sent to them on resolve.
            inbox = Inbox(name=name, kind=kind, settings={**settings, "survey": "none"}, team_id=team.id,
                          secrets={"demo": "not-a-real-secret"})
            db.session.add(inbox)
        inboxes.append(inbox)
    db.session.commit()
    now = datetime.now(timezone.utc)
    stamp = now.strftime("%Y%m%d%H%M%S")
    for n, (ix, user_id, name, texts, reply, status) in enumerate(CONVERSATIONS):
        inbox = inboxes[ix]
        result = None
        for k, (minutes, text) in enumerate(texts):
            result = ingest(inbox, Inbound(
                external_id=f"demo-{stamp}-{n}-{k}", user_id=user_id, display_name=name, text=text,
                email=user_id if inbox.kind == "email" else None,
                subject="配送状況について" if inbox.kind == "email" and n == 0 else "",
                sent_at=now - timedelta(minutes=minutes),
                meta={"public": True} if inbox.kind == "social" else {},
            ))
        ticket = result.message.ticket
        # The conversation began back then, not when the demo was loaded: the dashboard's
        # response and resolution times, and the SLA clocks, count from here.
        ticket.created_at = now - timedelta(minutes=texts[0][0])
        agent = agents[2 + n % 2]
        last = now - timedelta(minutes=texts[-1][0])
        if reply:
            # Past conversations: the answer was delivered back then, so record it only.
            post_reply(ticket, agent, reply, sent_at=last + timedelta(minutes=5), record_only=True)
        if status != ticket.status.value and status != "new":
            update_ticket(ticket, agent, status=status)
            if ticket.resolved_at is not None:
                ticket.resolved_at = last + timedelta(minutes=10)
        if n == 2:
            post_reply(ticket, agents[1], "返金処理の状況を経理に確認中。今日中に回答すること。", private=True)
    db.session.commit()
    return True
