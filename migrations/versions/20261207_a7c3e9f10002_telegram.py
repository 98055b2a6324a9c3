"""Telegram: linked chats, one-time link codes, the notifier's lease (issue #19)

`telegram_links`: one row per linked user (user and chat each unique), with a pending /closeall confirmation.
`telegram_link_codes`: the settings page's one-time codes, as SHA-256 only, with expiry and use.
`telegram_leases`: the lease that makes one process the bot's poller, with the alert mark and the last day
whose P&L summary was sent. All three start empty.

Revision ID: a7c3e9f10002
Revises: a7c3e9f10001
Create Date: 2026-12-07 04:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a7c3e9f10002'
down_revision = 'a7c3e9f10001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('telegram_leases',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('alert_mark', sa.Integer(), nullable=True),
    sa.Column('summary_day', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_telegram_leases'))
    )
    op.create_table('telegram_link_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_telegram_link_codes_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_telegram_link_codes')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_telegram_link_codes_code_hash'))
    )
    with op.batch_alter_table('telegram_link_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_telegram_link_codes_user_id'), ['user_id'], unique=False)

    op.create_table('telegram_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('chat_name', sa.String(length=64), nullable=True),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('pending_nonce', sa.String(length=32), nullable=True),
    sa.Column('pending_until', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_telegram_links_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_telegram_links')),
    sa.UniqueConstraint('chat_id', name=op.f('uq_telegram_links_chat_id')),
    sa.UniqueConstraint('user_id', name=op.f('uq_telegram_links_user_id'))
    )


def downgrade():
    op.drop_table('telegram_links')
    with op.batch_alter_table('telegram_link_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_telegram_link_codes_user_id'))
    op.drop_table('telegram_link_codes')
    op.drop_table('telegram_leases')
