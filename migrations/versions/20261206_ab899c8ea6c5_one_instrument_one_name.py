"""one instrument, one name: fold rows stored under another spelling of a symbol (issue #13)

Before issue #13 an order for `reliance` found RELIANCE in the master contract (the lookup ignores
case) but was journaled as the caller spelt it, so one instrument could sit under two names: a
`reliance` position beside `RELIANCE`, each holding half of the book. Symbols are now normalised at
the API and webhook boundary and journaled in the master contract's own spelling; this revision
rewrites what was stored before that.

Every symbol in `orders`, `positions`, `holdings`, `strategy_symbol_mappings` and `quotes` becomes
the contract's spelling where `sym_tokens` has a case-insensitive match on the same exchange, else
UPPER(TRIM(symbol)); exchanges likewise become UPPER(TRIM(exchange)) (their CHECK constraint keeps
them canonical already). `fills` follow their order (by order_id) and need nothing. `signals` keep
what the alert said: they record what arrived.

Rows that collide once folded are merged into one:
- positions (user, mode, symbol, exchange, product): buy/sell quantities and values add, realized
  P&L adds; the open quantities are netted as the paper engine nets a fill (engine.apply_fill): the
  same side averages (open value / open quantity), opposite sides close against each other at the
  kept side's average, realizing the difference, and a reversal opens the rest at the other row's
  average. quantity stays buy_quantity - sell_quantity. margin_blocked adds when nothing was netted;
  when open quantities netted, the margin of what stays open is kept (the same leverage applies to
  both rows: same product) and the margin released, with the realized P&L of the netting, goes to
  the account's `funds` row (used_margin, realized_pnl, available_cash), as a fill would have done.
- holdings (user, mode, symbol, exchange): quantities add, the average is the value-weighted one.
- strategy_symbol_mappings (strategy, symbol, exchange): one is kept (the one already spelt as the
  contract spells it, else the oldest); the others are deleted.
- quotes (symbol, exchange): the most recently updated is kept; the others are deleted.

Works on SQLite and PostgreSQL (plain SQL through the connection, arithmetic in Python on Decimals,
rounded as the journal stores money: 4 places, half up). The work is proportional to the rows of
these tables, read once each; nothing is written where nothing differs.

Downgrade does nothing: a fold cannot be undone (which spelling a merged row had is gone).

Revision ID: ab899c8ea6c5
Revises: 3c553ae48f4f
Create Date: 2026-12-06 20:55:00.000000

"""
from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'ab899c8ea6c5'
down_revision = '3c553ae48f4f'
branch_labels = None
depends_on = None

ZERO = Decimal(0)
STEP = Decimal("0.0001")
QTY = sa.Numeric(18, 0)
MONEY = sa.Numeric(18, 4)
WHEN = sa.DateTime(timezone=True)

sym_tokens = sa.table("sym_tokens", sa.column("symbol", sa.String), sa.column("exchange", sa.String))
orders = sa.table("orders", sa.column("id", sa.Integer), sa.column("symbol", sa.String),
                  sa.column("exchange", sa.String))
positions = sa.table(
    "positions", sa.column("id", sa.Integer), sa.column("user_id", sa.Integer), sa.column("mode", sa.String),
    sa.column("symbol", sa.String), sa.column("exchange", sa.String), sa.column("product", sa.String),
    sa.column("quantity", QTY), sa.column("average_price", MONEY), sa.column("buy_quantity", QTY),
    sa.column("buy_value", MONEY), sa.column("sell_quantity", QTY), sa.column("sell_value", MONEY),
    sa.column("realized_pnl", MONEY), sa.column("margin_blocked", MONEY), sa.column("updated_at", WHEN))
holdings = sa.table(
    "holdings", sa.column("id", sa.Integer), sa.column("user_id", sa.Integer), sa.column("mode", sa.String),
    sa.column("symbol", sa.String), sa.column("exchange", sa.String), sa.column("quantity", QTY),
    sa.column("average_price", MONEY), sa.column("updated_at", WHEN))
funds = sa.table(
    "funds", sa.column("id", sa.Integer), sa.column("user_id", sa.Integer), sa.column("mode", sa.String),
    sa.column("opening_balance", MONEY), sa.column("available_cash", MONEY), sa.column("used_margin", MONEY),
    sa.column("realized_pnl", MONEY))
mappings = sa.table(
    "strategy_symbol_mappings", sa.column("id", sa.Integer), sa.column("strategy_id", sa.Integer),
    sa.column("symbol", sa.String), sa.column("exchange", sa.String))
quotes = sa.table(
    "quotes", sa.column("id", sa.Integer), sa.column("symbol", sa.String), sa.column("exchange", sa.String),
    sa.column("updated_at", WHEN))


def q4(value: Decimal) -> Decimal:
    return value.quantize(STEP, rounding=ROUND_HALF_UP)


class _Names:
    """The contract's spelling of (symbol, exchange): a case-insensitive match in sym_tokens on the
    same exchange (the exact upper-case spelling first, else the first in order), else UPPER(TRIM())."""

    def __init__(self, conn) -> None:
        self.known: dict[tuple[str, str], str] = {}
        for symbol, exchange in conn.execute(sa.select(sym_tokens.c.symbol, sym_tokens.c.exchange)
                                             .order_by(sym_tokens.c.exchange, sym_tokens.c.symbol)):
            key = (exchange.strip().upper(), symbol.strip().upper())
            if key not in self.known or symbol == key[1]:
                self.known[key] = symbol

    def __call__(self, symbol: str, exchange: str) -> tuple[str, str]:
        ex, sym = exchange.strip().upper(), symbol.strip().upper()
        return self.known.get((ex, sym), sym), ex


def _rename(conn, table, row_id: int, symbol: str, exchange: str) -> None:
    conn.execute(table.update().where(table.c.id == row_id).values(symbol=symbol, exchange=exchange))


def _delete(conn, table, ids: list[int]) -> None:
    if ids:
        conn.execute(table.delete().where(table.c.id.in_(ids)))


def _fold_orders(conn, name) -> None:
    pairs = conn.execute(sa.select(orders.c.symbol, orders.c.exchange).distinct()).all()
    for symbol, exchange in pairs:
        new_symbol, new_exchange = name(symbol, exchange)
        if (new_symbol, new_exchange) != (symbol, exchange):
            conn.execute(orders.update().where(orders.c.symbol == symbol, orders.c.exchange == exchange)
                         .values(symbol=new_symbol, exchange=new_exchange))


def _groups(rows, key) -> dict:
    out: dict = defaultdict(list)
    for row in rows:
        out[key(row)].append(row)
    return out


def _keeper(rows, symbol: str):
    """The row that stays: the one spelt as the contract spells it, else the oldest (lowest id)."""
    return min(rows, key=lambda r: (r.symbol != symbol, r.id))


def _net(q: Decimal, avg: Decimal, other_q: Decimal, other_avg: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """(quantity, average, realized) once an open quantity `other_q` at `other_avg` joins `q` at `avg`:
    the paper engine's apply_fill, the other row's open quantity taken as a fill at its average."""
    if other_q == 0:
        return q, avg, ZERO
    if q == 0 or (q > 0) == (other_q > 0):
        new_q = q + other_q
        return new_q, q4((abs(q) * avg + abs(other_q) * other_avg) / abs(new_q)), ZERO
    closed = min(abs(q), abs(other_q))
    direction = 1 if q > 0 else -1
    realized = q4(closed * (other_avg - avg) * direction)
    new_q = q + other_q
    if new_q == 0:
        return new_q, ZERO, realized
    if (new_q > 0) == (q > 0):
        return new_q, avg, realized
    return new_q, other_avg, realized  # reversed through zero: the rest is the other row's


def _fold_positions(conn, name) -> None:
    rows = conn.execute(sa.select(positions).order_by(positions.c.id)).all()
    by_key = _groups(rows, lambda r: (r.user_id, r.mode, *name(r.symbol, r.exchange), r.product))
    released: dict[tuple[int, str], tuple[Decimal, Decimal]] = defaultdict(lambda: (ZERO, ZERO))
    for (user_id, mode, symbol, exchange, _product), group in by_key.items():
        keep = _keeper(group, symbol)
        if len(group) == 1:
            if (keep.symbol, keep.exchange) != (symbol, exchange):
                _rename(conn, positions, keep.id, symbol, exchange)
            continue
        others = [r for r in group if r.id != keep.id]
        q, avg, realized = keep.quantity, keep.average_price, keep.realized_pnl
        buy_q, buy_v, sell_q, sell_v = keep.buy_quantity, keep.buy_value, keep.sell_quantity, keep.sell_value
        margin, updated, netted, gained = keep.margin_blocked, keep.updated_at, False, ZERO
        value = abs(keep.quantity) * keep.average_price  # the open value the blocked margin is on
        for r in others:
            netted = netted or (q != 0 and r.quantity != 0 and (q > 0) != (r.quantity > 0))
            q, avg, crossing = _net(q, avg, r.quantity, r.average_price)
            realized += r.realized_pnl + crossing
            gained += crossing
            buy_q, buy_v = buy_q + r.buy_quantity, buy_v + r.buy_value
            sell_q, sell_v = sell_q + r.sell_quantity, sell_v + r.sell_value
            margin += r.margin_blocked
            value += abs(r.quantity) * r.average_price
            updated = max(updated, r.updated_at)
        if netted:
            # Margin is linear in the open value (one product, one leverage): keep the share of what stays open.
            kept = q4(margin * abs(q) * avg / value) if value > 0 else ZERO
            before_margin, before_pnl = released[(user_id, mode)]
            released[(user_id, mode)] = (before_margin + margin - kept, before_pnl + gained)
            margin = kept
        _delete(conn, positions, [r.id for r in others])
        conn.execute(positions.update().where(positions.c.id == keep.id).values(
            symbol=symbol, exchange=exchange, quantity=q, average_price=avg, buy_quantity=buy_q, buy_value=buy_v,
            sell_quantity=sell_q, sell_value=sell_v, realized_pnl=realized, margin_blocked=margin,
            updated_at=updated))
    for (user_id, mode), (margin, pnl) in released.items():
        row = conn.execute(sa.select(funds).where(funds.c.user_id == user_id, funds.c.mode == mode)).first()
        if row is None:
            continue
        used, booked = row.used_margin - margin, row.realized_pnl + pnl
        conn.execute(funds.update().where(funds.c.id == row.id).values(
            used_margin=used, realized_pnl=booked, available_cash=row.opening_balance + booked - used))


def _fold_holdings(conn, name) -> None:
    rows = conn.execute(sa.select(holdings).order_by(holdings.c.id)).all()
    for (_user_id, _mode, symbol, exchange), group in _groups(
            rows, lambda r: (r.user_id, r.mode, *name(r.symbol, r.exchange))).items():
        keep = _keeper(group, symbol)
        if len(group) == 1:
            if (keep.symbol, keep.exchange) != (symbol, exchange):
                _rename(conn, holdings, keep.id, symbol, exchange)
            continue
        quantity = sum((r.quantity for r in group), ZERO)
        value = sum((r.quantity * r.average_price for r in group), ZERO)
        average = q4(value / quantity) if quantity else ZERO
        _delete(conn, holdings, [r.id for r in group if r.id != keep.id])
        conn.execute(holdings.update().where(holdings.c.id == keep.id).values(
            symbol=symbol, exchange=exchange, quantity=quantity, average_price=average,
            updated_at=max(r.updated_at for r in group)))


def _fold_keeping_one(conn, name, table, owner, pick) -> None:
    """Rows of `table` by (owner, symbol, exchange): one kept (`pick`), the rest deleted."""
    rows = conn.execute(sa.select(table).order_by(table.c.id)).all()
    for (_owner, symbol, exchange), group in _groups(
            rows, lambda r: (getattr(r, owner) if owner else None, *name(r.symbol, r.exchange))).items():
        keep = pick(group, symbol)
        _delete(conn, table, [r.id for r in group if r.id != keep.id])
        if (keep.symbol, keep.exchange) != (symbol, exchange):
            _rename(conn, table, keep.id, symbol, exchange)


def _latest(rows, _symbol: str):
    return max(rows, key=lambda r: (r.updated_at, r.id))


def upgrade():
    conn = op.get_bind()
    name = _Names(conn)
    _fold_orders(conn, name)
    _fold_positions(conn, name)
    _fold_holdings(conn, name)
    _fold_keeping_one(conn, name, mappings, "strategy_id", _keeper)
    _fold_keeping_one(conn, name, quotes, None, _latest)


def downgrade():
    # Nothing to undo: a fold cannot be undone (which spelling a merged row had, and its own figures,
    # are gone), and the folded rows are valid under the previous revision as they are.
    pass
