"""stored history: candles, their series and the days fetched (issue #14)

`candle_series`: one row per (source, exchange, symbol, interval), with its candle count and first and last
candle for the page that lists what is stored, and an etag that every write to the series changes. `candles`: a series' candles keyed by (series_id, ts), ts in
Unix seconds; WITHOUT ROWID on SQLite, so the primary key is the table and a range read is one index walk.
`candle_coverage`: day ranges of a series already fetched from its source, so that holidays and empty days
are not asked for again (database/history_db.py). All start empty; deleting a series deletes its candles and
coverage (ON DELETE CASCADE).

Revision ID: d5f464344ea8
Revises: d4e8a1c3b7f2
Create Date: 2026-12-07 00:52:45.949210

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'd5f464344ea8'
down_revision = 'd4e8a1c3b7f2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('candle_series',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('exchange', sa.Enum('NSE', 'BSE', 'NFO', 'BFO', 'CDS', 'BCD', 'MCX', 'NCDEX', 'NSE_INDEX', 'BSE_INDEX', name='exchange', native_enum=False, create_constraint=True, length=12), nullable=False),
    sa.Column('symbol', sa.String(length=64), nullable=False),
    sa.Column('interval', sa.String(length=4), nullable=False),
    sa.Column('candles', sa.Integer(), nullable=False),
    sa.Column('first_ts', sa.BigInteger(), nullable=True),
    sa.Column('last_ts', sa.BigInteger(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('etag', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_candle_series')),
    sa.UniqueConstraint('source', 'exchange', 'symbol', 'interval',
                        name='uq_candle_series_source_exchange_symbol_interval')
    )
    op.create_table('candle_coverage',
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['series_id'], ['candle_series.id'], name=op.f('fk_candle_coverage_series_id_candle_series'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('series_id', 'first_day', name=op.f('pk_candle_coverage'))
    )
    op.create_table('candles',
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('ts', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('open', sa.Double(), nullable=False),
    sa.Column('high', sa.Double(), nullable=False),
    sa.Column('low', sa.Double(), nullable=False),
    sa.Column('close', sa.Double(), nullable=False),
    sa.Column('volume', sa.BigInteger(), nullable=False),
    sa.Column('oi', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['series_id'], ['candle_series.id'], name=op.f('fk_candles_series_id_candle_series'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('series_id', 'ts', name=op.f('pk_candles')),
    sqlite_with_rowid=False
    )


def downgrade():
    op.drop_table('candles')
    op.drop_table('candle_coverage')
    op.drop_table('candle_series')
