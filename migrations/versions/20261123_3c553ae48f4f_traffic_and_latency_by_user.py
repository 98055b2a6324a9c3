"""traffic and latency rows by user

The log pages show a trader only their own rows, newest first, with keyset pagination
(`WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT n`). api_logs and audit_events had a
(user_id, id) index from the start; traffic_logs and order_latency get theirs here, so a trader's
page stays an index range read at a million rows instead of a scan of everyone's.

Building an index on a large log table holds writes to it for the duration (seconds at a million
rows); the background log writer retries meanwhile, nothing is lost.

Revision ID: 3c553ae48f4f
Revises: 104d3b42aebd
Create Date: 2026-11-23 15:01:30.940582

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '3c553ae48f4f'
down_revision = '104d3b42aebd'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_order_latency_user_id_id', 'order_latency', ['user_id', 'id'], unique=False)
    op.create_index('ix_traffic_logs_user_id_id', 'traffic_logs', ['user_id', 'id'], unique=False)


def downgrade():
    op.drop_index('ix_traffic_logs_user_id_id', table_name='traffic_logs')
    op.drop_index('ix_order_latency_user_id_id', table_name='order_latency')
