"""webhook ids kept as an HMAC; two-factor sign-in's recovery codes and replay guard (issue #18)

`strategies.webhook_id`, a credential that places orders, was stored in plain text. It becomes
`webhook_hash`, the HMAC-SHA256 of the id under API_KEY_PEPPER (as API keys are kept: unique, looked
up by it), and `webhook_prefix`, its first 6 characters (to recognise the URL on the strategy's page).

Existing rows keep their URL: the hash of each existing id is computed here, with the pepper of the
application that runs the migration (Flask-Migrate runs every revision inside the application's
context, at `flask db upgrade` or AUTO_MIGRATE at start, after config.load_config has read or
generated the pepper: it is always there). The plaintext column is then dropped. An offline run
(`flask db upgrade --sql`) cannot read the rows it would hash, and is refused.

`users` gains `totp_recovery_hashes` (JSON: the HMACs of the unused recovery codes) and
`totp_last_step` (the last TOTP time step accepted: a code is good once); `totp_secret` existed.

Downgrade cannot give back the old ids (only their hashes are kept): every strategy gets a new random
id, so its webhook URLs stop working and must be shown again (a new `webhook_id` is in the table).

Revision ID: e3c9a5d7b1f2
Revises: d5f464344ea8
Create Date: 2026-12-07 01:20:00.000000

"""
import hashlib
import hmac
import uuid

import sqlalchemy as sa
from alembic import context, op
from flask import current_app

# revision identifiers, used by Alembic.
revision = 'e3c9a5d7b1f2'
down_revision = 'd5f464344ea8'
branch_labels = None
depends_on = None

PREFIX = 6
strategies = sa.table("strategies", sa.column("id", sa.Integer), sa.column("webhook_id", sa.String),
                      sa.column("webhook_hash", sa.String), sa.column("webhook_prefix", sa.String))


def _pepper() -> bytes:
    pepper = current_app.config.get("API_KEY_PEPPER")
    if not pepper:
        raise RuntimeError("API_KEY_PEPPER is needed to hash the existing webhook ids: set it and run again")
    return pepper.encode()


def upgrade():
    if context.is_offline_mode():
        raise RuntimeError("e3c9a5d7b1f2 hashes the existing webhook ids: run it online (flask db upgrade)")
    with op.batch_alter_table('strategies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('webhook_prefix', sa.String(length=8), nullable=True))

    conn = op.get_bind()
    pepper = _pepper()
    rows = conn.execute(sa.select(strategies.c.id, strategies.c.webhook_id)).all()
    for row_id, webhook_id in rows:
        digest = hmac.new(pepper, webhook_id.encode(), hashlib.sha256).hexdigest()
        conn.execute(strategies.update().where(strategies.c.id == row_id)
                     .values(webhook_hash=digest, webhook_prefix=webhook_id[:PREFIX]))

    with op.batch_alter_table('strategies', schema=None) as batch_op:
        batch_op.alter_column('webhook_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('webhook_prefix', existing_type=sa.String(length=8), nullable=False)
        batch_op.drop_constraint('uq_strategies_webhook_id', type_='unique')
        batch_op.create_unique_constraint('uq_strategies_webhook_hash', ['webhook_hash'])
        batch_op.drop_column('webhook_id')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_recovery_hashes', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_recovery_hashes')

    with op.batch_alter_table('strategies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_id', sa.String(length=36), nullable=True))
    conn = op.get_bind()
    for (row_id,) in conn.execute(sa.select(strategies.c.id)).all():
        conn.execute(strategies.update().where(strategies.c.id == row_id).values(webhook_id=uuid.uuid4().hex))
    with op.batch_alter_table('strategies', schema=None) as batch_op:
        batch_op.alter_column('webhook_id', existing_type=sa.String(length=36), nullable=False)
        batch_op.drop_constraint('uq_strategies_webhook_hash', type_='unique')
        batch_op.create_unique_constraint('uq_strategies_webhook_id', ['webhook_id'])
        batch_op.drop_column('webhook_prefix')
        batch_op.drop_column('webhook_hash')
