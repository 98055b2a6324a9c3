"""charges and realized P&L per analyze-mode fill (issue #13)

`fills.realized_pnl` (the P&L the fill realized, gross) and `fills.charges` (its brokerage, taxes and
fees: services.trading.paper.charges), and `positions.charges` (the position's fills' charges to date).
The funds' realized P&L is net of charges from now on. Rows already stored get 0: their charges were
never computed, and recomputing them would change balances traders have already seen.

The server default only fills the existing rows; the application always writes the columns.

Revision ID: d4e8a1c3b7f2
Revises: af93db0c512f
Create Date: 2026-12-06 23:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'd4e8a1c3b7f2'
down_revision = 'af93db0c512f'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.add_column(sa.Column('realized_pnl', sa.Numeric(precision=18, scale=4), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('charges', sa.Numeric(precision=18, scale=4), nullable=False,
                                      server_default='0'))
    with op.batch_alter_table('positions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('charges', sa.Numeric(precision=18, scale=4), nullable=False,
                                      server_default='0'))


def downgrade():
    with op.batch_alter_table('positions', schema=None) as batch_op:
        batch_op.drop_column('charges')
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.drop_column('charges')
        batch_op.drop_column('realized_pnl')
