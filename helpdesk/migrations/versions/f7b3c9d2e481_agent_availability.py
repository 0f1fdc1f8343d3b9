"""an agent may be busy: automatic assignment gives them no new tickets meanwhile

``agents.availability`` ("available" or "busy"), set by the agent in the desk's top bar
(services/assign.py). Every agent is available at the upgrade, as every online agent was
before.

Revision ID: f7b3c9d2e481
Revises: 6959061a840b
Create Date: 2026-11-25 10:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = 'f7b3c9d2e481'
down_revision = '6959061a840b'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('agents', sa.Column('availability', sa.Enum('available', 'busy', name='availability',
                                                              native_enum=False, length=16),
                                      nullable=False, server_default='available'))


def downgrade():
    op.drop_column('agents', 'availability')
