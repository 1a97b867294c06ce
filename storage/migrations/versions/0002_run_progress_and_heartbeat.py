"""run progress and heartbeat

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 21:57:17.892712
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('batches', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('heartbeat', sa.DateTime(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('heartbeat')
        batch_op.drop_column('batches')
        batch_op.drop_column('batch')

