"""messages by contact, direction, label and time

A customer's newest labelled messages are read by this index; on SQLite without
planner statistics the contact_id index alone lost to the report index.

Revision ID: c3d1a7e5f024
Revises: b9b76e103696
Create Date: 2026-11-24 08:10:00

"""
from alembic import op

revision = 'c3d1a7e5f024'
down_revision = 'b9b76e103696'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_contact', ['contact_id', 'direction', 'sentiment_label', 'sent_at'],
                              unique=False)
        batch_op.drop_index(batch_op.f('ix_messages_contact_id'))


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_messages_contact_id'), ['contact_id'], unique=False)
        batch_op.drop_index('ix_messages_contact')
