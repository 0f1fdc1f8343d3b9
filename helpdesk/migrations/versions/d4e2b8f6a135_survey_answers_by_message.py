"""survey answers by message

Labelling reads which messages of its batch are recorded survey answers (a bare 「1」 is
labelled from the answer's score); without this index that read scanned the table.

Revision ID: d4e2b8f6a135
Revises: c3d1a7e5f024
Create Date: 2026-11-24 19:10:00

"""
from alembic import op

revision = 'd4e2b8f6a135'
down_revision = 'c3d1a7e5f024'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('survey_answers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_answers_message_id'), ['message_id'], unique=False)


def downgrade():
    with op.batch_alter_table('survey_answers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_answers_message_id'))
