"""the contract's freeze quantity (issue #13)

`sym_tokens.freeze_qty`: the most one order may carry on the exchange (its quantity freeze), beyond
which an order is refused with a pointer to splitorder (services.trading.rules). Nullable: a contract
whose source does not publish it (Kite's instruments file has no such column) keeps NULL, meaning
"not known: not checked". Rows already stored get NULL; the next import fills what its source knows.

On SQLite the column is added in place; the downgrade drops it (a table rebuild under batch mode).

Revision ID: c1f7e2a9d4b3
Revises: ab899c8ea6c5
Create Date: 2026-12-06 22:10:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c1f7e2a9d4b3'
down_revision = 'ab899c8ea6c5'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sym_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('freeze_qty', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('sym_tokens', schema=None) as batch_op:
        batch_op.drop_column('freeze_qty')
