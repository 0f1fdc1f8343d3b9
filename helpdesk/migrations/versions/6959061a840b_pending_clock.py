"""the resolution clock stops while a ticket waits for its customer

``tickets.pending_since`` and ``tickets.paused_seconds`` (business seconds of the waits that
ended): the SLA reports take the time a ticket was pending off its resolution time
(services/sla.py, SLA_PAUSE_WHEN_PENDING). A ticket pending at the upgrade waits since an agent
last set it pending (the audit log), else since its last update; earlier waits are not known
and still count, as they did before. The report index takes the new column, so the reports
still read tickets from the index alone.

Revision ID: 6959061a840b
Revises: 841ef24e5c35
Create Date: 2026-11-25 08:10:00

"""
from alembic import op
import sqlalchemy as sa

import helpdesk.models._types

revision = '6959061a840b'
down_revision = '841ef24e5c35'
branch_labels = None
depends_on = None

_REPORT = ['created_at', 'assignee_id', 'team_id', 'channel', 'inbox_id', 'first_response_at', 'resolved_at',
           'sentiment_first_score', 'sentiment_score']


def upgrade():
    # in place (no batch copy of tickets: on SQLite that would take the messages with it)
    op.add_column('tickets', sa.Column('pending_since', helpdesk.models._types.UTCDateTime(timezone=True),
                                       nullable=True))
    op.add_column('tickets', sa.Column('paused_seconds', sa.Integer(), nullable=False, server_default='0'))
    op.drop_index('ix_tickets_report', table_name='tickets')
    op.create_index('ix_tickets_report', 'tickets', _REPORT + ['paused_seconds'], unique=False)
    backfill_pending_since(op.get_bind())


def downgrade():
    op.drop_index('ix_tickets_report', table_name='tickets')
    op.create_index('ix_tickets_report', 'tickets', _REPORT, unique=False)
    op.drop_column('tickets', 'paused_seconds')
    op.drop_column('tickets', 'pending_since')


def backfill_pending_since(bind) -> None:
    utc = helpdesk.models._types.UTCDateTime(timezone=True)
    tickets = sa.table('tickets', sa.column('id', sa.Integer), sa.column('status', sa.String),
                       sa.column('updated_at', utc), sa.column('pending_since', utc))
    audit = sa.table('audit_log', sa.column('id', sa.Integer), sa.column('action', sa.String),
                     sa.column('object_id', sa.Integer), sa.column('changes', helpdesk.models._types.JSONType),
                     sa.column('created_at', utc))
    since = dict(bind.execute(sa.select(tickets.c.id, tickets.c.updated_at).where(tickets.c.status == 'pending')).all())
    if not since:
        return
    rows = bind.execute(sa.select(audit.c.object_id, audit.c.changes, audit.c.created_at)
                        .where(audit.c.action == 'ticket.update', audit.c.object_id.in_(list(since)))
                        .order_by(audit.c.id)).all()
    for ticket_id, changes, at in rows:
        status = changes.get('status') if isinstance(changes, dict) else None
        if isinstance(status, list) and status[-1:] == ['pending']:
            since[ticket_id] = at  # the last one wins
    for ticket_id, at in since.items():
        bind.execute(tickets.update().where(tickets.c.id == ticket_id).values(pending_since=at))
