"""the market calendar's admin edits (issue #13)

`market_calendar_entries`: a day's change of the shipped market calendar for some exchanges, made on
/calendar or with `flask calendar` (database/calendar_db.py): a holiday, a special session with its
hours, or `open` (a shipped holiday cancelled). The shipped data stays in the code
(services/market/calendar_data/); the table starts empty.

Revision ID: af93db0c512f
Revises: c1f7e2a9d4b3
Create Date: 2026-12-06 22:40:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'af93db0c512f'
down_revision = 'c1f7e2a9d4b3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('market_calendar_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('kind', sa.Enum('holiday', 'special_session', 'open', name='kind', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('exchanges', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('start_time', sa.Time(), nullable=True),
    sa.Column('end_time', sa.Time(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_market_calendar_entries_created_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_market_calendar_entries'))
    )
    with op.batch_alter_table('market_calendar_entries', schema=None) as batch_op:
        batch_op.create_index('ix_market_calendar_entries_day', ['day'], unique=False)


def downgrade():
    with op.batch_alter_table('market_calendar_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_market_calendar_entries_day')

    op.drop_table('market_calendar_entries')
