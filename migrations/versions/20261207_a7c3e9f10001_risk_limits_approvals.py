"""risk limits per account and strategy, the trading day's risk state and kill switch, approvals (issue #19)

`risk_limits`: one row per user and scope (the account, a strategy by name, an API key by id); a NULL
limit is no limit; the account row carries the kill switch (`killed_at`, `killed_by`).
`risk_days`: per user, mode, scope and trading day: peak and last net P&L, and the block of new entries
once a loss or target limit was reached.
`approvals`: orders waiting for a person's approval (queued -> approved, rejected, expired, failed), with the
mode and broker they were queued in (placed only there).
All three start empty: no limit is set, nothing waits.

Revision ID: a7c3e9f10001
Revises: b7e4c2a91f3d
Create Date: 2026-12-07 04:10:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a7c3e9f10001'
down_revision = 'b7e4c2a91f3d'
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=18, scale=4)


def upgrade():
    op.create_table('risk_limits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('scope_kind', sa.String(length=10), nullable=False),
    sa.Column('scope', sa.String(length=100), nullable=False),
    sa.Column('max_loss', MONEY, nullable=True),
    sa.Column('target', MONEY, nullable=True),
    sa.Column('trail_trigger', MONEY, nullable=True),
    sa.Column('trail_gap', MONEY, nullable=True),
    sa.Column('max_orders_per_minute', sa.Integer(), nullable=True),
    sa.Column('max_orders_per_day', sa.Integer(), nullable=True),
    sa.Column('max_open_positions', sa.Integer(), nullable=True),
    sa.Column('max_order_quantity', sa.Integer(), nullable=True),
    sa.Column('max_order_value', MONEY, nullable=True),
    sa.Column('require_approval', sa.Boolean(), nullable=False),
    sa.Column('approval_ttl_seconds', sa.Integer(), nullable=False),
    sa.Column('killed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('killed_by', sa.String(length=64), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_risk_limits_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_limits')),
    sa.UniqueConstraint('user_id', 'scope_kind', 'scope', name='uq_risk_limits_user_id')
    )
    op.create_table('risk_days',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('scope_kind', sa.String(length=10), nullable=False),
    sa.Column('scope', sa.String(length=100), nullable=False),
    sa.Column('trading_day', sa.Date(), nullable=False),
    sa.Column('peak_pnl', MONEY, nullable=False),
    sa.Column('last_pnl', MONEY, nullable=False),
    sa.Column('blocked_reason', sa.String(length=32), nullable=True),
    sa.Column('blocked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_risk_days_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_days')),
    sa.UniqueConstraint('user_id', 'mode', 'scope_kind', 'scope', 'trading_day', name='uq_risk_days_user_id')
    )
    op.create_table('approvals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('order', sa.JSON(), nullable=False),
    sa.Column('strategy', sa.String(length=100), nullable=True),
    sa.Column('api_key_id', sa.Integer(), nullable=True),
    sa.Column('signal_id', sa.Integer(), nullable=True),
    sa.Column('mode', sa.String(length=8), nullable=True),
    sa.Column('broker', sa.String(length=32), nullable=True),
    sa.Column('alert', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('orderid', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_approvals_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_approvals'))
    )
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.create_index('ix_approvals_status_expires_at', ['status', 'expires_at'], unique=False)
        batch_op.create_index('ix_approvals_user_id_status', ['user_id', 'status'], unique=False)


def downgrade():
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.drop_index('ix_approvals_user_id_status')
        batch_op.drop_index('ix_approvals_status_expires_at')
    op.drop_table('approvals')
    op.drop_table('risk_days')
    op.drop_table('risk_limits')
