"""initial schema

Revision ID: 104d3b42aebd
Revises: 
Create Date: 2026-11-23 12:59:23.831993

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '104d3b42aebd'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('api_logs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('api_type', sa.String(length=32), nullable=False),
    sa.Column('mode', sa.Enum('live', 'analyze', name='mode', native_enum=False, create_constraint=True, length=8), nullable=True),
    sa.Column('request', sa.JSON(), nullable=True),
    sa.Column('response', sa.JSON(), nullable=True),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.Column('client_ip', sa.String(length=45), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_logs'))
    )
    with op.batch_alter_table('api_logs', schema=None) as batch_op:
        batch_op.create_index('ix_api_logs_api_type_id', ['api_type', 'id'], unique=False)
        batch_op.create_index('ix_api_logs_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_api_logs_user_id_id', ['user_id', 'id'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target_type', sa.String(length=32), nullable=True),
    sa.Column('target_id', sa.String(length=64), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_audit_events_target_type_target_id', ['target_type', 'target_id'], unique=False)
        batch_op.create_index('ix_audit_events_user_id_id', ['user_id', 'id'], unique=False)

    op.create_table('cache_generations',
    sa.Column('namespace', sa.String(length=64), nullable=False),
    sa.Column('generation', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('namespace', name=op.f('pk_cache_generations'))
    )
    op.create_table('ip_bans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=True),
    sa.Column('ban_count', sa.Integer(), nullable=False),
    sa.Column('is_permanent', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ip_bans')),
    sa.UniqueConstraint('ip', name=op.f('uq_ip_bans_ip'))
    )
    op.create_table('master_contract_status',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('broker', sa.String(length=32), nullable=False),
    sa.Column('state', sa.Enum('idle', 'running', 'done', 'failed', name='state', native_enum=False, create_constraint=True, length=10), nullable=False),
    sa.Column('rows_done', sa.Integer(), nullable=False),
    sa.Column('rows_total', sa.Integer(), nullable=False),
    sa.Column('rows_skipped', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=255), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_master_contract_status')),
    sa.UniqueConstraint('broker', name=op.f('uq_master_contract_status_broker'))
    )
    op.create_table('order_latency',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('orderid', sa.String(length=64), nullable=True),
    sa.Column('broker', sa.String(length=32), nullable=False),
    sa.Column('endpoint', sa.String(length=32), nullable=False),
    sa.Column('mode', sa.Enum('live', 'analyze', name='mode', native_enum=False, create_constraint=True, length=8), nullable=False),
    sa.Column('symbol', sa.String(length=64), nullable=True),
    sa.Column('validation_ms', sa.Float(), nullable=False),
    sa.Column('broker_ms', sa.Float(), nullable=False),
    sa.Column('response_ms', sa.Float(), nullable=False),
    sa.Column('overhead_ms', sa.Float(), nullable=False),
    sa.Column('total_ms', sa.Float(), nullable=False),
    sa.Column('is_success', sa.Boolean(), nullable=False),
    sa.Column('error', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_latency'))
    )
    with op.batch_alter_table('order_latency', schema=None) as batch_op:
        batch_op.create_index('ix_order_latency_broker_id', ['broker', 'id'], unique=False)
        batch_op.create_index('ix_order_latency_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_order_latency_endpoint_id', ['endpoint', 'id'], unique=False)

    op.create_table('quotes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('symbol', sa.String(length=64), nullable=False),
    sa.Column('exchange', sa.Enum('NSE', 'BSE', 'NFO', 'BFO', 'CDS', 'BCD', 'MCX', 'NCDEX', 'NSE_INDEX', 'BSE_INDEX', name='exchange', native_enum=False, create_constraint=True, length=12), nullable=False),
    sa.Column('ltp', sa.Numeric(precision=14, scale=4), nullable=False),
    sa.Column('bid', sa.Numeric(precision=14, scale=4), nullable=False),
    sa.Column('ask', sa.Numeric(precision=14, scale=4), nullable=False),
    sa.Column('open', sa.Numeric(precision=14, scale=4), nullable=False),
    sa.Column('high', sa.Numeric(precision=14, scale=4), nullable=False),
    sa.Column('low', sa.Numeric(precision=14, scale=4), nullable=False),
    sa.Column('prev_close', sa.Numeric(precision=14, scale=4), nullable=False),
    sa.Column('volume', sa.BigInteger(), nullable=False),
    sa.Column('oi', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quotes')),
    sa.UniqueConstraint('exchange', 'symbol', name='uq_quotes_exchange_symbol')
    )
    op.create_table('sym_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('symbol', sa.String(length=64), nullable=False),
    sa.Column('brsymbol', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=True),
    sa.Column('exchange', sa.Enum('NSE', 'BSE', 'NFO', 'BFO', 'CDS', 'BCD', 'MCX', 'NCDEX', 'NSE_INDEX', 'BSE_INDEX', name='exchange', native_enum=False, create_constraint=True, length=12), nullable=False),
    sa.Column('brexchange', sa.String(length=16), nullable=False),
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.Column('expiry', sa.Date(), nullable=True),
    sa.Column('strike', sa.Numeric(precision=14, scale=4), nullable=True),
    sa.Column('lotsize', sa.Integer(), nullable=False),
    sa.Column('instrumenttype', sa.Enum('EQ', 'FUT', 'CE', 'PE', 'INDEX', name='instrumenttype', native_enum=False, create_constraint=True, length=8), nullable=False),
    sa.Column('tick_size', sa.Numeric(precision=12, scale=4), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sym_tokens')),
    sa.UniqueConstraint('exchange', 'symbol', name='uq_sym_tokens_exchange_symbol')
    )
    with op.batch_alter_table('sym_tokens', schema=None) as batch_op:
        batch_op.create_index('ix_sym_tokens_brexchange_brsymbol', ['brexchange', 'brsymbol'], unique=False)
        batch_op.create_index('ix_sym_tokens_brexchange_token', ['brexchange', 'token'], unique=False)

    op.create_table('system_logs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('level', sa.String(length=10), nullable=False),
    sa.Column('logger', sa.String(length=100), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('traceback', sa.Text(), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_system_logs'))
    )
    with op.batch_alter_table('system_logs', schema=None) as batch_op:
        batch_op.create_index('ix_system_logs_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_system_logs_level_id', ['level', 'id'], unique=False)

    op.create_table('traffic_logs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('client_ip', sa.String(length=45), nullable=True),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('path', sa.String(length=512), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('duration_ms', sa.Float(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('user_agent', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_traffic_logs'))
    )
    with op.batch_alter_table('traffic_logs', schema=None) as batch_op:
        batch_op.create_index('ix_traffic_logs_client_ip_id', ['client_ip', 'id'], unique=False)
        batch_op.create_index('ix_traffic_logs_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_traffic_logs_status_code_id', ['status_code', 'id'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.Enum('admin', 'trader', 'viewer', name='role', native_enum=False, create_constraint=True, length=10), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('totp_secret', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('severity', sa.Enum('info', 'warning', 'critical', name='severity', native_enum=False, create_constraint=True, length=10), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('is_acknowledged', sa.Boolean(), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['acknowledged_by'], ['users.id'], name=op.f('fk_alerts_acknowledged_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_alerts_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_user_id_is_acknowledged_id', ['user_id', 'is_acknowledged', 'id'], unique=False)

    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=12), nullable=False),
    sa.Column('scopes', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_keys_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index('ix_api_keys_user_id', ['user_id'], unique=False)

    op.create_table('broker_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('broker', sa.String(length=32), nullable=False),
    sa.Column('broker_user_id', sa.String(length=64), nullable=True),
    sa.Column('access_token', sa.Text(), nullable=False),
    sa.Column('refresh_token', sa.Text(), nullable=True),
    sa.Column('feed_token', sa.Text(), nullable=True),
    sa.Column('status', sa.Enum('active', 'expired', 'revoked', name='status', native_enum=False, create_constraint=True, length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_broker_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broker_sessions'))
    )
    with op.batch_alter_table('broker_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_broker_sessions_user_id_broker_status', ['user_id', 'broker', 'status'], unique=False)

    op.create_table('config_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('snapshot', sa.JSON(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_config_versions_created_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_config_versions')),
    sa.UniqueConstraint('version', name=op.f('uq_config_versions_version'))
    )
    op.create_table('funds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.Enum('live', 'analyze', name='mode', native_enum=False, create_constraint=True, length=8), nullable=False),
    sa.Column('opening_balance', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('available_cash', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('collateral', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('used_margin', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('realized_pnl', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('unrealized_pnl', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_funds_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_funds')),
    sa.UniqueConstraint('user_id', 'mode', name='uq_funds_user_id_mode')
    )
    op.create_table('holdings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.Enum('live', 'analyze', name='mode', native_enum=False, create_constraint=True, length=8), nullable=False),
    sa.Column('symbol', sa.String(length=64), nullable=False),
    sa.Column('exchange', sa.Enum('NSE', 'BSE', 'NFO', 'BFO', 'CDS', 'BCD', 'MCX', 'NCDEX', 'NSE_INDEX', 'BSE_INDEX', name='exchange', native_enum=False, create_constraint=True, length=12), nullable=False),
    sa.Column('quantity', sa.Numeric(precision=18, scale=0), nullable=False),
    sa.Column('average_price', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_holdings_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holdings')),
    sa.UniqueConstraint('user_id', 'mode', 'symbol', 'exchange', name='uq_holdings_user_id')
    )
    op.create_table('login_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('user_agent', sa.String(length=255), nullable=True),
    sa.Column('is_success', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_login_attempts_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_attempts'))
    )
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_login_attempts_ip_created_at', ['ip', 'created_at'], unique=False)
        batch_op.create_index('ix_login_attempts_username_created_at', ['username', 'created_at'], unique=False)

    op.create_table('portfolio_snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.Enum('live', 'analyze', name='mode', native_enum=False, create_constraint=True, length=8), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('equity', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('cash', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('realized_pnl', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('unrealized_pnl', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('reason', sa.Enum('scheduled', 'squareoff', 'manual', name='reason', native_enum=False, create_constraint=True, length=10), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_portfolio_snapshots_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portfolio_snapshots'))
    )
    with op.batch_alter_table('portfolio_snapshots', schema=None) as batch_op:
        batch_op.create_index('ix_portfolio_snapshots_user_id_mode_taken_at', ['user_id', 'mode', 'taken_at'], unique=False)

    op.create_table('positions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.Enum('live', 'analyze', name='mode', native_enum=False, create_constraint=True, length=8), nullable=False),
    sa.Column('symbol', sa.String(length=64), nullable=False),
    sa.Column('exchange', sa.Enum('NSE', 'BSE', 'NFO', 'BFO', 'CDS', 'BCD', 'MCX', 'NCDEX', 'NSE_INDEX', 'BSE_INDEX', name='exchange', native_enum=False, create_constraint=True, length=12), nullable=False),
    sa.Column('product', sa.Enum('MIS', 'NRML', 'CNC', name='product', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('quantity', sa.Numeric(precision=18, scale=0), nullable=False),
    sa.Column('average_price', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('buy_quantity', sa.Numeric(precision=18, scale=0), nullable=False),
    sa.Column('buy_value', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('sell_quantity', sa.Numeric(precision=18, scale=0), nullable=False),
    sa.Column('sell_value', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('realized_pnl', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('margin_blocked', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_positions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_positions')),
    sa.UniqueConstraint('user_id', 'mode', 'symbol', 'exchange', 'product', name='uq_positions_user_id')
    )
    op.create_table('settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by'], ['users.id'], name=op.f('fk_settings_updated_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_settings_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settings')),
    sa.UniqueConstraint('user_id', 'key', name='uq_settings_user_id_key')
    )
    with op.batch_alter_table('settings', schema=None) as batch_op:
        batch_op.create_index('uq_settings_global_key', ['key'], unique=True, sqlite_where=sa.text('user_id IS NULL'), postgresql_where=sa.text('user_id IS NULL'))

    op.create_table('strategies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('webhook_id', sa.String(length=36), nullable=False),
    sa.Column('platform', sa.Enum('tradingview', 'chartink', 'amibroker', 'python', name='platform', native_enum=False, create_constraint=True, length=12), nullable=False),
    sa.Column('mode', sa.Enum('LONG', 'SHORT', 'BOTH', name='mode', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('is_intraday', sa.Boolean(), nullable=False),
    sa.Column('start_time', sa.Time(), nullable=True),
    sa.Column('end_time', sa.Time(), nullable=True),
    sa.Column('squareoff_time', sa.Time(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_strategies_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_strategies')),
    sa.UniqueConstraint('user_id', 'name', name='uq_strategies_user_id_name'),
    sa.UniqueConstraint('webhook_id', name=op.f('uq_strategies_webhook_id'))
    )
    op.create_table('signals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('strategy_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.Enum('api', 'strategy', 'chartink', name='source', native_enum=False, create_constraint=True, length=10), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('symbol', sa.String(length=64), nullable=True),
    sa.Column('exchange', sa.Enum('NSE', 'BSE', 'NFO', 'BFO', 'CDS', 'BCD', 'MCX', 'NCDEX', 'NSE_INDEX', 'BSE_INDEX', name='exchange', native_enum=False, create_constraint=True, length=12), nullable=True),
    sa.Column('action', sa.Enum('BUY', 'SELL', name='action', native_enum=False, create_constraint=True), nullable=True),
    sa.Column('position_size', sa.Numeric(precision=18, scale=0), nullable=True),
    sa.Column('status', sa.Enum('received', 'accepted', 'rejected', name='status', native_enum=False, create_constraint=True, length=10), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['strategy_id'], ['strategies.id'], name=op.f('fk_signals_strategy_id_strategies'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_signals_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signals'))
    )
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signals_strategy_id'), ['strategy_id'], unique=False)
        batch_op.create_index('ix_signals_user_id_received_at', ['user_id', 'received_at'], unique=False)

    op.create_table('strategy_symbol_mappings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('strategy_id', sa.Integer(), nullable=False),
    sa.Column('symbol', sa.String(length=64), nullable=False),
    sa.Column('exchange', sa.Enum('NSE', 'BSE', 'NFO', 'BFO', 'CDS', 'BCD', 'MCX', 'NCDEX', 'NSE_INDEX', 'BSE_INDEX', name='exchange', native_enum=False, create_constraint=True, length=12), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('product', sa.Enum('MIS', 'NRML', 'CNC', name='product', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['strategy_id'], ['strategies.id'], name=op.f('fk_strategy_symbol_mappings_strategy_id_strategies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_strategy_symbol_mappings')),
    sa.UniqueConstraint('strategy_id', 'symbol', 'exchange', name='uq_strategy_symbol_mappings_strategy_id')
    )
    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('signal_id', sa.Integer(), nullable=True),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('orderid', sa.String(length=64), nullable=False),
    sa.Column('broker', sa.String(length=32), nullable=False),
    sa.Column('mode', sa.Enum('live', 'analyze', name='mode', native_enum=False, create_constraint=True, length=8), nullable=False),
    sa.Column('strategy', sa.String(length=100), nullable=True),
    sa.Column('symbol', sa.String(length=64), nullable=False),
    sa.Column('exchange', sa.Enum('NSE', 'BSE', 'NFO', 'BFO', 'CDS', 'BCD', 'MCX', 'NCDEX', 'NSE_INDEX', 'BSE_INDEX', name='exchange', native_enum=False, create_constraint=True, length=12), nullable=False),
    sa.Column('action', sa.Enum('BUY', 'SELL', name='action', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('pricetype', sa.Enum('MARKET', 'LIMIT', 'SL', 'SL-M', name='pricetype', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('product', sa.Enum('MIS', 'NRML', 'CNC', name='product', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('quantity', sa.Numeric(precision=18, scale=0), nullable=False),
    sa.Column('filled_quantity', sa.Numeric(precision=18, scale=0), nullable=False),
    sa.Column('price', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('trigger_price', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('disclosed_quantity', sa.Numeric(precision=18, scale=0), nullable=False),
    sa.Column('average_price', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('status', sa.Enum('open', 'complete', 'cancelled', 'rejected', 'trigger pending', name='status', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('status_message', sa.Text(), nullable=True),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['orders.id'], name=op.f('fk_orders_parent_id_orders'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['signal_id'], ['signals.id'], name=op.f('fk_orders_signal_id_signals'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_orders_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('broker', 'orderid', name='uq_orders_broker_orderid')
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orders_signal_id'), ['signal_id'], unique=False)
        batch_op.create_index('ix_orders_user_id_placed_at', ['user_id', 'placed_at'], unique=False)
        batch_op.create_index('ix_orders_user_id_status', ['user_id', 'status'], unique=False)
        batch_op.create_index('ix_orders_user_id_symbol_exchange', ['user_id', 'symbol', 'exchange'], unique=False)

    op.create_table('fills',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('tradeid', sa.String(length=64), nullable=False),
    sa.Column('quantity', sa.Numeric(precision=18, scale=0), nullable=False),
    sa.Column('price', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('filled_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_fills_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fills')),
    sa.UniqueConstraint('order_id', 'tradeid', name='uq_fills_order_id_tradeid')
    )
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fills_filled_at'), ['filled_at'], unique=False)



def downgrade():
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fills_filled_at'))

    op.drop_table('fills')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_user_id_symbol_exchange')
        batch_op.drop_index('ix_orders_user_id_status')
        batch_op.drop_index('ix_orders_user_id_placed_at')
        batch_op.drop_index(batch_op.f('ix_orders_signal_id'))

    op.drop_table('orders')
    op.drop_table('strategy_symbol_mappings')
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.drop_index('ix_signals_user_id_received_at')
        batch_op.drop_index(batch_op.f('ix_signals_strategy_id'))

    op.drop_table('signals')
    op.drop_table('strategies')
    with op.batch_alter_table('settings', schema=None) as batch_op:
        batch_op.drop_index('uq_settings_global_key', sqlite_where=sa.text('user_id IS NULL'), postgresql_where=sa.text('user_id IS NULL'))

    op.drop_table('settings')
    op.drop_table('positions')
    with op.batch_alter_table('portfolio_snapshots', schema=None) as batch_op:
        batch_op.drop_index('ix_portfolio_snapshots_user_id_mode_taken_at')

    op.drop_table('portfolio_snapshots')
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_login_attempts_username_created_at')
        batch_op.drop_index('ix_login_attempts_ip_created_at')

    op.drop_table('login_attempts')
    op.drop_table('holdings')
    op.drop_table('funds')
    op.drop_table('config_versions')
    with op.batch_alter_table('broker_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_broker_sessions_user_id_broker_status')

    op.drop_table('broker_sessions')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_api_keys_user_id')

    op.drop_table('api_keys')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_user_id_is_acknowledged_id')

    op.drop_table('alerts')
    op.drop_table('users')
    with op.batch_alter_table('traffic_logs', schema=None) as batch_op:
        batch_op.drop_index('ix_traffic_logs_status_code_id')
        batch_op.drop_index('ix_traffic_logs_created_at')
        batch_op.drop_index('ix_traffic_logs_client_ip_id')

    op.drop_table('traffic_logs')
    with op.batch_alter_table('system_logs', schema=None) as batch_op:
        batch_op.drop_index('ix_system_logs_level_id')
        batch_op.drop_index('ix_system_logs_created_at')

    op.drop_table('system_logs')
    with op.batch_alter_table('sym_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_sym_tokens_brexchange_token')
        batch_op.drop_index('ix_sym_tokens_brexchange_brsymbol')

    op.drop_table('sym_tokens')
    op.drop_table('quotes')
    with op.batch_alter_table('order_latency', schema=None) as batch_op:
        batch_op.drop_index('ix_order_latency_endpoint_id')
        batch_op.drop_index('ix_order_latency_created_at')
        batch_op.drop_index('ix_order_latency_broker_id')

    op.drop_table('order_latency')
    op.drop_table('master_contract_status')
    op.drop_table('ip_bans')
    op.drop_table('cache_generations')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_user_id_id')
        batch_op.drop_index('ix_audit_events_target_type_target_id')
        batch_op.drop_index('ix_audit_events_created_at')

    op.drop_table('audit_events')
    with op.batch_alter_table('api_logs', schema=None) as batch_op:
        batch_op.drop_index('ix_api_logs_user_id_id')
        batch_op.drop_index('ix_api_logs_created_at')
        batch_op.drop_index('ix_api_logs_api_type_id')

    op.drop_table('api_logs')
