"""reply send claims and merged tickets

``messages.send_claimed_until``: a worker sending a reply claims it, commits, and only then
calls the provider, so no transaction stays open across a slow send (PostgreSQL ended such a
session after a minute, the send's result was lost and the sweep sent the reply again).

``tickets.merged_into_id``: the ticket a merged duplicate's conversation went to, so its page
points there and a reply on it is refused; tickets merged before get theirs from the audit log
(each merge recorded ``ticket.merge`` on the kept ticket with ``{"merged": <the other's id>}``).

Revision ID: 841ef24e5c35
Revises: e5a9c2d7f310
Create Date: 2026-11-25 01:08:14

"""
from alembic import op
import sqlalchemy as sa

import helpdesk.models._types

revision = '841ef24e5c35'
down_revision = 'e5a9c2d7f310'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('messages', sa.Column('send_claimed_until', helpdesk.models._types.UTCDateTime(timezone=True),
                                        nullable=True))
    op.add_column('tickets', sa.Column('merged_into_id', sa.Integer(), nullable=True))
    backfill_merged_into(op.get_bind())


def downgrade():
    op.drop_column('tickets', 'merged_into_id')
    op.drop_column('messages', 'send_claimed_until')


def backfill_merged_into(bind) -> None:
    """Tickets merged before this column: their keeper, from the audit log."""
    audit = sa.table('audit_log', sa.column('id', sa.Integer), sa.column('action', sa.String),
                     sa.column('object_id', sa.Integer), sa.column('changes', helpdesk.models._types.JSONType))
    tickets = sa.table('tickets', sa.column('id', sa.Integer), sa.column('merged_into_id', sa.Integer))
    rows = bind.execute(sa.select(audit.c.object_id, audit.c.changes)
                        .where(audit.c.action == 'ticket.merge').order_by(audit.c.id)).all()
    for kept, changes in rows:
        merged = changes.get('merged') if isinstance(changes, dict) else None
        if isinstance(merged, int):
            bind.execute(tickets.update().where(tickets.c.id == merged).values(merged_into_id=kept))
