"""LINE one-to-one tickets keyed by their chat

A LINE message now finds its ticket by its chat's key alone (``line-user:<id>`` for a
one-to-one chat, ``line-group:``/``line-room:`` for the others) and never falls back to the
customer's latest ticket, which could be another chat's: a private message joined a group's
ticket and the agent's answer went to the whole group. One-to-one tickets made before had no
key (their reply address is the user's id, ``U...``); they get theirs here, so each customer's
next message continues their open conversation instead of opening a second one.

Revision ID: e5a9c2d7f310
Revises: d4e2b8f6a135
Create Date: 2026-11-24 22:40:00

"""
from alembic import op

revision = 'e5a9c2d7f310'
down_revision = 'd4e2b8f6a135'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("UPDATE tickets SET thread_key = 'line-user:' || reply_to "
               "WHERE channel = 'line' AND thread_key IS NULL AND reply_to LIKE 'U%'")


def downgrade():
    op.execute("UPDATE tickets SET thread_key = NULL WHERE channel = 'line' AND thread_key LIKE 'line-user:%'")
