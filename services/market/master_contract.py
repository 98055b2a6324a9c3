"""Master contract import: broker rows -> OpenAlgo symbols -> `sym_tokens`, replaced atomically.

This module owns
- the mapping of a broker's instrument rows to OpenAlgo symbols (docs/api.md, Symbols and quotes); Zerodha's
  instruments CSV columns are the input format (`map_zerodha_row`), shared by the broker adapter's
  `instruments()` iterator and by a file import, so both paths run the same code;
- the atomic replace: the old contract is deleted and the new one loaded in ONE transaction
  (PostgreSQL: DELETE + COPY, SQLite: DELETE + executemany under BEGIN IMMEDIATE). Readers keep
  seeing the previous contract until the commit (MVCC on PostgreSQL, WAL snapshots on SQLite), and a
  failure anywhere rolls the whole unit back, leaving the previous contract in place;
- the import status row (`master_contract_status`) that the dashboard polls, and the in-process
  progress of a running import;
- the embedded default: `ensure_sample_contract()` loads the generated sample contract when the
  table is empty, so search and analyze-mode orders work offline on a fresh install, and
  `refresh_sample_contract()` (a daily job) generates it again for each new exchange date, with that
  day's weekly expiries and its option chains centred on the simulator's prices.

After a successful import it invalidates the "symbols" cache namespace, which makes every process's
symbol index rebuild from the new contract.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select, text

from database import cache, db, write_unit
from database.enums import Exchange, ImportState, InstrumentType, Mode
from database.order_db import Order
from database.portfolio_db import Position
from database.symbol import MasterContractStatus, SymToken
from database.types import utcnow
from database.unit import unit_of_work
from services.market import quotes, sample_contract, symbol_index
from vocabulary import OPEN_STATUSES

log = logging.getLogger("algobridge.symbols")

# The columns written by a load, in COPY / INSERT order. `id` is left to the database.
COLUMNS = (
    "symbol",
    "brsymbol",
    "name",
    "exchange",
    "brexchange",
    "token",
    "expiry",
    "strike",
    "lotsize",
    "instrumenttype",
    "tick_size",
    "freeze_qty",
)

ZERODHA_COLUMNS = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)
# Not one of Kite's columns: Kite's instruments file (Kite Connect v3, market quotes: instruments)
# publishes no freeze quantity, and Kite has no API for it, so a Zerodha import leaves `freeze_qty`
# NULL ("not known: not checked"). The generated sample contract adds this column (empty where it
# has none), and a CSV that carries it (`flask symbols sample --out`) imports it.
FREEZE_COLUMN = "freeze_qty"

# Zerodha's index tradingsymbols whose OpenAlgo names are not the tradingsymbol without spaces.
INDEX_NAMES = {
    "NIFTY 50": "NIFTY",
    "NIFTY BANK": "BANKNIFTY",
    "NIFTY FIN SERVICE": "FINNIFTY",
    "NIFTY MID SELECT": "MIDCPNIFTY",
    "NIFTY NEXT 50": "NIFTYNXT50",
    "INDIA VIX": "INDIAVIX",
    "SENSEX": "SENSEX",
    "BANKEX": "BANKEX",
    "SNSX50": "SENSEX50",
    "SENSEX50": "SENSEX50",
}

# Zerodha exchange -> OpenAlgo exchange for tradable instruments. NCO is Zerodha's NCDEX code.
EXCHANGES = {
    "NSE": Exchange.NSE,
    "BSE": Exchange.BSE,
    "NFO": Exchange.NFO,
    "BFO": Exchange.BFO,
    "CDS": Exchange.CDS,
    "BCD": Exchange.BCD,
    "MCX": Exchange.MCX,
    "NCO": Exchange.NCDEX,
    "NCDEX": Exchange.NCDEX,
}
INDEX_EXCHANGES = {"NSE": Exchange.NSE_INDEX, "BSE": Exchange.BSE_INDEX}

# Equity series suffixes that Zerodha appends to the tradingsymbol; OpenAlgo's equity symbol is the
# base symbol. Other suffixes (bonds, gold bonds, SME) name different instruments and are kept.
EQUITY_SUFFIXES = ("-EQ", "-BE")

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DEFAULT_TICK = Decimal("0.05")

# Progress is published every this many rows (status row on PostgreSQL, memory everywhere).
PROGRESS_EVERY = 10_000


class ContractImportError(RuntimeError):
    """An import that could not run or failed; the previous contract is still in place."""


class ImportBusyError(ContractImportError):
    """Another import for the same broker is running."""


# A mapped row: the values of COLUMNS, in order, with Python types (date, Decimal, str enums).
MappedRow = tuple[str, str, str | None, str, str, str, dt.date | None, Decimal | None, int, str, Decimal, int | None]


class Skip(Exception):  # noqa: N818 - control flow, not an error the caller sees
    """A row that cannot be mapped; the message is the reason, counted in the import report."""


@dataclass
class ImportResult:
    broker: str
    source: str
    rows_total: int = 0
    rows_mapped: int = 0
    rows_skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped_by_reason.items()))
        return (
            f"{self.rows_mapped} symbols imported, {self.rows_skipped} rows skipped"
            + (f" ({reasons})" if reasons else "")
            + f" in {self.seconds:.2f} s"
        )


# --------------------------------------------------------------------------------------------
# Mapping


def format_strike(strike: Decimal) -> str:
    """Strike as OpenAlgo writes it in a symbol: 20800 (not 20800.0), 292.5, 83.25."""
    if strike == strike.to_integral_value():
        return str(int(strike))
    return format(strike.normalize(), "f")


def format_expiry(expiry: dt.date) -> str:
    """DDMMMYY, e.g. 28MAR24."""
    return f"{expiry.day:02d}{MONTHS[expiry.month - 1]}{expiry.year % 100:02d}"


def index_symbol(tradingsymbol: str) -> str:
    return INDEX_NAMES.get(tradingsymbol.strip().upper()) or tradingsymbol.replace(" ", "").upper()


class _Mapper:
    """Maps Zerodha rows. Memoizes the parse of values that repeat across rows (expiry dates,
    strikes, tick and lot sizes): a contract has ~100 distinct expiries and a few thousand strikes
    over 150,000 rows, and parsing them once is what keeps the import near the raw load speed."""

    def __init__(self) -> None:
        self._dates: dict[str, dt.date | None] = {"": None}
        self._decimals: dict[str, Decimal] = {}
        self._ints: dict[str, int] = {}
        self._freezes: dict[Any, int | None] = {None: None, "": None}
        self._expiry_texts: dict[dt.date, str] = {}
        self._strike_texts: dict[Decimal, str] = {}

    def date(self, value: str) -> dt.date | None:
        try:
            return self._dates[value]
        except KeyError:
            pass
        try:
            parsed = dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            raise Skip("bad expiry") from None
        self._dates[value] = parsed
        return parsed

    def decimal(self, value: str, what: str) -> Decimal:
        try:
            return self._decimals[value]
        except KeyError:
            pass
        try:
            parsed = Decimal(value.strip() or "0")
        except InvalidOperation:
            raise Skip(f"bad {what}") from None
        if not parsed.is_finite():
            raise Skip(f"bad {what}")
        self._decimals[value] = parsed
        return parsed

    def integer(self, value: str) -> int:
        try:
            return self._ints[value]
        except KeyError:
            pass
        try:
            parsed = int(Decimal(value.strip() or "1"))
        except (InvalidOperation, ValueError):
            raise Skip("bad lot_size") from None
        self._ints[value] = parsed
        return parsed

    def freeze(self, value: Any) -> int | None:
        """The row's freeze quantity: None when the row has none (every Kite row), else a positive integer."""
        try:
            return self._freezes[value]
        except (KeyError, TypeError):
            pass
        try:
            parsed: int | None = int(Decimal(_s(value).strip()))
        except (InvalidOperation, ValueError):
            raise Skip("bad freeze_qty") from None
        if parsed <= 0:
            parsed = None
        self._freezes[value] = parsed
        return parsed

    def map(self, row: Mapping[str, Any]) -> MappedRow:
        get = row.get
        tradingsymbol = _s(get("tradingsymbol"))
        token = _s(get("instrument_token"))
        brexchange = _s(get("exchange")).upper()
        if not tradingsymbol or not token:
            raise Skip("missing tradingsymbol or token")
        segment = _s(get("segment")).upper()
        itype = _s(get("instrument_type")).upper()
        name = _s(get("name")) or None
        tick = self.decimal(_s(get("tick_size")), "tick_size") or DEFAULT_TICK
        lot = self.integer(_s(get("lot_size")))
        lot = lot if lot > 0 else 1
        freeze = self.freeze(get(FREEZE_COLUMN))

        if segment == "INDICES":
            exchange = INDEX_EXCHANGES.get(brexchange)
            if exchange is None:
                raise Skip("index on unknown exchange")
            symbol = index_symbol(tradingsymbol)
            return (symbol, tradingsymbol, name, exchange.value, brexchange, token, None, None, lot,
                    InstrumentType.INDEX.value, tick, freeze)

        exchange = EXCHANGES.get(brexchange)
        if exchange is None:
            raise Skip(f"unknown exchange {brexchange or '(empty)'}")

        if itype == "EQ":
            symbol = tradingsymbol
            for suffix in EQUITY_SUFFIXES:
                if symbol.endswith(suffix):
                    symbol = symbol[: -len(suffix)]
                    break
            return (symbol, tradingsymbol, name, exchange.value, brexchange, token, None, None, lot,
                    InstrumentType.EQ.value, tick, freeze)

        if itype not in ("FUT", "CE", "PE"):
            raise Skip(f"unknown instrument_type {itype or '(empty)'}")
        # Derivatives are named by their underlying (Zerodha's `name`), never by the tradingsymbol,
        # whose weekly/monthly formats differ.
        if not name:
            raise Skip("derivative without underlying name")
        expiry = self.date(_s(get("expiry")))
        if expiry is None:
            raise Skip("derivative without expiry")
        base = name.replace(" ", "").upper()
        exp_text = self._expiry_texts.get(expiry)
        if exp_text is None:
            exp_text = self._expiry_texts[expiry] = format_expiry(expiry)
        if itype == "FUT":
            symbol = f"{base}{exp_text}FUT"
            return (symbol, tradingsymbol, name, exchange.value, brexchange, token, expiry, None, lot,
                    InstrumentType.FUT.value, tick, freeze)
        strike = self.decimal(_s(get("strike")), "strike")
        if strike <= 0:
            raise Skip("option without strike")
        strike_text = self._strike_texts.get(strike)
        if strike_text is None:
            strike_text = self._strike_texts[strike] = format_strike(strike)
        symbol = f"{base}{exp_text}{strike_text}{itype}"
        return (symbol, tradingsymbol, name, exchange.value, brexchange, token, expiry, strike, lot, itype, tick,
                freeze)


def _s(value: Any) -> str:
    if value.__class__ is str:  # the common case first: CSV and adapter rows are strings
        return value
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def map_zerodha_row(row: Mapping[str, Any]) -> MappedRow:
    """Map one Zerodha instruments row to a `sym_tokens` row (values in COLUMNS order).

    Raises `Skip` with the reason when the row cannot be mapped.
    """
    return _Mapper().map(row)


def map_rows(rows: Iterable[Mapping[str, Any]], on_row: Callable[[int], None] | None = None,
             ) -> tuple[list[MappedRow], Counter[str], int]:
    """Map every row; returns (mapped rows, skipped reasons, rows read).

    A later row whose (exchange, symbol) was already mapped is skipped as a duplicate: the table
    has a unique key on it, and the first row the broker lists wins.
    """
    skipped: Counter[str] = Counter()
    read = [0]
    mapped = list(_iter_mapped(rows, skipped, read, on_row))
    return mapped, skipped, read[0]


def _iter_mapped(rows: Iterable[Mapping[str, Any]], skipped: Counter[str], read: list[int],
                 on_row: Callable[[int], None] | None = None) -> Iterator[MappedRow]:
    """The mapped rows, as they are mapped (map_rows, and the PostgreSQL load streams them into
    COPY); skipped reasons are counted into `skipped` and the rows read into `read[0]`."""
    mapper = _Mapper()
    seen: set[tuple[str, str]] = set()
    n = 0
    for n, row in enumerate(rows, 1):  # noqa: B007 - n is the count afterwards
        try:
            out = mapper.map(row)
        except Skip as exc:
            skipped[str(exc)] += 1
        else:
            key = (out[3], out[0])
            if key in seen:
                skipped["duplicate symbol"] += 1
            else:
                seen.add(key)
                yield out
        if n % PROGRESS_EVERY == 0:
            read[0] = n
            if on_row is not None:
                on_row(n)
    read[0] = n


def read_zerodha_csv(fileobj: Iterable[str]) -> Iterator[dict[str, str]]:
    """Rows of a Zerodha instruments CSV (as the adapter's instruments() yields them)."""
    reader = csv.DictReader(fileobj)
    missing = [c for c in ("instrument_token", "tradingsymbol", "exchange") if c not in (reader.fieldnames or ())]
    if missing:
        raise ContractImportError(f"not a Zerodha instruments CSV: missing columns {', '.join(missing)}")
    return iter(reader)


def write_zerodha_csv(rows: Iterable[Mapping[str, Any]], fileobj: io.TextIOBase | Any) -> int:
    # Kite's columns, and the freeze quantity that the sample contract carries (empty for rows without).
    writer = csv.DictWriter(fileobj, fieldnames=(*ZERODHA_COLUMNS, FREEZE_COLUMN), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    n = 0
    for n, row in enumerate(rows, 1):  # noqa: B007
        writer.writerow(row)
    return n


# --------------------------------------------------------------------------------------------
# Progress and status

_progress: dict[str, dict[str, Any]] = {}
_progress_lock = threading.Lock()


def _set_progress(broker: str, **values: Any) -> None:
    with _progress_lock:
        _progress.setdefault(broker, {}).update(values)


def get_status(broker: str = "zerodha") -> dict[str, Any]:
    """The import status for the dashboard: state, rows_done, rows_total, rows_skipped, source,
    error, started_at, finished_at, updated_at (datetimes as aware UTC).

    The status row is the shared truth; while an import runs in this process its live progress
    overrides the row (on SQLite the row cannot be updated mid-import: the import holds the only
    write lock).
    """
    row = db.session.execute(select(MasterContractStatus).where(MasterContractStatus.broker == broker)).scalar()
    status: dict[str, Any] = {
        "broker": broker,
        "state": ImportState.IDLE.value,
        "rows_done": 0,
        "rows_total": 0,
        "rows_skipped": 0,
        "source": None,
        "error": None,
        "started_at": None,
        "finished_at": None,
        "updated_at": None,
    }
    if row is not None:
        status.update(
            state=row.state.value,
            rows_done=row.rows_done,
            rows_total=row.rows_total,
            rows_skipped=row.rows_skipped,
            source=row.source,
            error=row.error,
            started_at=row.started_at,
            finished_at=row.finished_at,
            updated_at=row.updated_at,
        )
    with _progress_lock:
        live = dict(_progress.get(broker, {}))
    if live.get("state") == ImportState.RUNNING.value:
        status.update(live)
    return status


def symbol_count() -> int:
    return db.session.execute(select(func.count()).select_from(SymToken)).scalar_one()


def _write_status(broker: str, **values: Any) -> None:
    """Write the status row in a unit of its own, before the import's unit opens or after it ended,
    so that it is visible to pollers at once and is never part of (or rolled back with) the import."""
    values["updated_at"] = utcnow()
    with unit_of_work() as session:
        _upsert_status(session.connection(), broker, values)


def _upsert_status(conn: Any, broker: str, values: dict[str, Any]) -> None:
    table = MasterContractStatus.__table__
    if not conn.execute(table.update().where(table.c.broker == broker).values(**values)).rowcount:
        conn.execute(table.insert().values(broker=broker, **values))


# --------------------------------------------------------------------------------------------
# Import


def import_rows(
    rows: Iterable[Mapping[str, Any]],
    broker: str = "zerodha",
    source: str = "broker",
    *,
    rows_total: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    force: bool = False,
    rebuild_index: bool = True,
    _fail_after: int | None = None,
) -> ImportResult:
    """Import a master contract from broker rows (Zerodha columns) and replace `sym_tokens` atomically.

    `rows` is any iterable of row dicts: the adapter's `instruments()` or `read_zerodha_csv(f)`.
    `progress(done, total)` is called as rows are mapped and loaded (CLI progress bar).
    `rebuild_index=False` leaves this process's index to rebuild on its next lookup, like the
    other processes' (the benchmark times the two apart).
    Raises ImportBusyError when an import for `broker` is already running (unless `force`), and
    ContractImportError when the import fails; in both cases the previous contract stays in place.

    Three units of work: the "running" status, then the load with the final status (committed
    together, or rolled back together), or else the "failed" status. Call it outside any unit, with
    no pending changes in `db.session`. `_fail_after` is a test hook that fails the load after that
    many rows have been written, inside the transaction.
    """
    if not force:
        current = get_status(broker)
        started = current.get("started_at")
        # A "running" row older than an hour is a crashed import, not a live one.
        if (
            current["state"] == ImportState.RUNNING.value
            and started is not None
            and utcnow() - started < dt.timedelta(hours=1)
        ):
            raise ImportBusyError(f"an import for {broker} is already running (started {started:%H:%M:%S} UTC)")

    t0 = time.perf_counter()
    started_at = utcnow()
    result = ImportResult(broker=broker, source=source)
    total_hint = rows_total or 0
    _set_progress(broker, state=ImportState.RUNNING.value, rows_done=0, rows_total=total_hint, rows_skipped=0,
                  source=source, error=None, started_at=started_at, finished_at=None, updated_at=started_at)
    _write_status(broker, state=ImportState.RUNNING, rows_done=0, rows_total=total_hint, rows_skipped=0,
                  source=source[:255], error=None, started_at=started_at, finished_at=None)

    def report(done: int, total: int) -> None:
        _set_progress(broker, rows_done=done, rows_total=total, updated_at=utcnow())
        if progress is not None:
            progress(done, total)

    try:
        with unit_of_work() as session:
            mapped_count = _import_unit(session, rows, broker, source, result, total_hint, started_at, report,
                                        _fail_after)
    except BaseException as exc:
        message = str(exc) or type(exc).__name__
        log.error("master contract import for %s from %s failed: %s", broker, source, message)
        _set_progress(broker, state=ImportState.FAILED.value, error=message, finished_at=utcnow())
        try:
            _write_status(broker, state=ImportState.FAILED, error=message[:2000], finished_at=utcnow(),
                          rows_skipped=result.rows_skipped)
        except Exception:  # the original failure is the one worth raising
            log.exception("could not record the failed import status for %s", broker)
        if isinstance(exc, ContractImportError):
            raise
        if isinstance(exc, Exception):
            raise ContractImportError(f"import failed, the previous contract is kept: {message}") from exc
        raise
    result.seconds = time.perf_counter() - t0
    _set_progress(broker, state=ImportState.DONE.value, rows_done=mapped_count, finished_at=utcnow())
    log.info("master contract for %s from %s: %s", broker, source, result.summary())
    invalidate_symbols(rebuild=rebuild_index)
    return result


def _import_unit(session: Any, rows: Iterable[Mapping[str, Any]], broker: str, source: str, result: ImportResult,
                 total_hint: int, started_at: dt.datetime, report: Callable[[int, int], None],
                 fail_after: int | None) -> int:
    """Inside the import's unit: map the rows, replace `sym_tokens`, and write the final status in the
    same transaction (data and status appear together). Returns the rows mapped."""
    if session.get_bind().dialect.name == "postgresql":
        # Mapping streams into COPY, so that the server parses and indexes rows while Python maps
        # the next ones. Readers are not held up (MVCC), and a malformed row or a failure rolls
        # the whole unit back, as before.
        # The progress total is the rows to read: the hint, or the length of a list of rows.
        total = total_hint or (len(rows) if isinstance(rows, Sized) else 0)
        skipped: Counter[str] = Counter()
        read = [0]
        try:
            rows_mapped = _load_postgresql(
                session, _iter_mapped(rows, skipped, read), lambda n, _t: report(n, max(total, n)),
                fail_after, read)
        finally:
            result.rows_skipped = sum(skipped.values())  # what the failed status reports, as before
        _mapping_result(result, rows_mapped, skipped, read[0])
        report(read[0], read[0])
    else:
        # Mapping runs before the transaction opens: a malformed file fails here without ever
        # taking SQLite's write lock, and the load below is as short as it can be.
        mapped, skipped, read = map_rows(rows, on_row=lambda n: report(n, max(total_hint, n)))
        _mapping_result(result, len(mapped), skipped, read)
        report(read, read)
        _load(session, mapped, report, fail_after)
    finished_at = utcnow()
    _upsert_status(session.connection(), broker, dict(
        state=ImportState.DONE, rows_done=result.rows_mapped, rows_total=result.rows_total,
        rows_skipped=result.rows_skipped, source=source[:255], error=None, started_at=started_at,
        finished_at=finished_at, updated_at=finished_at))
    return result.rows_mapped


def _mapping_result(result: ImportResult, mapped: int, skipped: Counter[str], read: int) -> None:
    result.rows_total = read
    result.rows_mapped = mapped
    result.rows_skipped = sum(skipped.values())
    result.skipped_by_reason = dict(skipped)
    if not mapped:
        raise ContractImportError(f"no row of {read} could be mapped; the previous contract is kept")


def import_file(path: str, broker: str = "zerodha", **kwargs: Any) -> ImportResult:
    """Import a broker instruments CSV file (Zerodha format)."""
    if broker != "zerodha":
        raise ContractImportError(f"file import supports the zerodha CSV format, not {broker!r}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        lines = f.read().splitlines()
    # Reading the file whole gives the progress bar its total; 150,000 rows are ~15 MB.
    total = max(len(lines) - 1, 0)
    return import_rows(read_zerodha_csv(lines), broker=broker, source=path, rows_total=total, **kwargs)


def import_from_broker(adapter: Any, broker: str | None = None, **kwargs: Any) -> ImportResult:
    """Import the master contract from a broker adapter's `instruments()` iterator."""
    name = broker or getattr(adapter, "name", None) or "zerodha"
    return import_rows(adapter.instruments(), broker=name, source=f"{name} instruments()", **kwargs)


def _load(session: Any, mapped: list[MappedRow], report: Callable[[int, int], None], fail_after: int | None) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        _load_postgresql(session, mapped, report, fail_after)
    elif dialect == "sqlite":
        _load_sqlite(session, mapped, report, fail_after)
    else:  # pragma: no cover - the supported databases are the two above
        raise ContractImportError(f"unsupported database {dialect}")


def _load_postgresql(session: Any, mapped: Iterable[MappedRow], report: Callable[[int, int], None],
                     fail_after: int | None, read: list[int] | None = None) -> int:
    """COPY the rows (a list, or the mapping as it runs); returns how many were written."""
    conn = session.connection()
    # One import at a time across processes; the lock is released at commit or rollback.
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('algobridge.sym_tokens'))"))
    # DELETE, not TRUNCATE: TRUNCATE takes an ACCESS EXCLUSIVE lock that would block every reader
    # until commit, whereas under MVCC readers keep seeing the old rows.
    conn.execute(text("DELETE FROM sym_tokens"))
    raw = conn.connection.driver_connection
    total = len(mapped) if isinstance(mapped, list) else 0
    i = 0
    with raw.cursor() as cur, cur.copy(f"COPY sym_tokens ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        write = copy.write_row
        for i, row in enumerate(mapped, 1):  # noqa: B007 - i is the count afterwards
            write(row)
            if i % PROGRESS_EVERY == 0:
                report(read[0] if read else i, total)
                if fail_after is not None and i >= fail_after:
                    raise ContractImportError(f"injected failure after {i} rows")
    report(read[0] if read else i, total or i)
    return i


def _load_sqlite(session: Any, mapped: list[MappedRow], report: Callable[[int, int], None],
                 fail_after: int | None) -> None:
    write_unit(session)  # the unit takes SQLite's write lock only now, once the rows are mapped
    conn = session.connection()
    conn.execute(text("DELETE FROM sym_tokens"))
    raw = conn.connection.driver_connection
    sql = f"INSERT INTO sym_tokens ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"  # noqa: S608
    total = len(mapped)
    memo: dict[Any, Any] = {None: None}
    cur = raw.cursor()
    try:
        for start in range(0, total, PROGRESS_EVERY):
            chunk = mapped[start : start + PROGRESS_EVERY]
            cur.executemany(sql, [_sqlite_values(r, memo) for r in chunk])
            done = start + len(chunk)
            report(done, total)
            if fail_after is not None and done >= fail_after:
                raise ContractImportError(f"injected failure after {done} rows")
    finally:
        cur.close()


def _sqlite_values(r: MappedRow, memo: dict[Any, Any] | None = None) -> tuple[Any, ...]:
    # sqlite3 has no adapters for date/Decimal; store them as SQLAlchemy's Date and Numeric do
    # (ISO text, and a number in the NUMERIC-affinity column). `memo` ({None: None} to start) keeps
    # the conversion of each distinct date and Decimal: a contract repeats a few thousand of them.
    if memo is None:
        e, s = r[6], r[7]
        return (r[0], r[1], r[2], r[3], r[4], r[5], e.isoformat() if e is not None else None,
                float(s) if s is not None else None, r[8], r[9], float(r[10]), r[11])
    try:
        e = memo[r[6]]
    except KeyError:
        e = memo[r[6]] = r[6].isoformat()
    try:
        s = memo[r[7]]
    except KeyError:
        s = memo[r[7]] = float(r[7])
    try:
        t = memo[r[10]]
    except KeyError:
        t = memo[r[10]] = float(r[10])
    return (r[0], r[1], r[2], r[3], r[4], r[5], e, s, r[8], r[9], t, r[11])


def invalidate_symbols(rebuild: bool = True) -> None:
    """Tell every process that the contract changed: their symbol indexes go stale and rebuild on
    their next lookup. This process rebuilds now, so the importer's next lookup is fast."""

    symbol_index.invalidate()
    try:
        cache.invalidate("symbols")
    except Exception:  # the contract is committed; other processes catch up on the next invalidation
        log.exception("could not broadcast the symbols invalidation")
    if not rebuild:
        return
    try:
        symbol_index.reload()
    except Exception:  # the import itself succeeded; the next lookup retries the rebuild
        log.exception("rebuilding the symbol index after the import failed")


# --------------------------------------------------------------------------------------------
# The embedded default

SAMPLE_ROWS = 20_000
SAMPLE_BROKER = "sample"
# The source of a generated sample: "embedded sample contract (size N) of YYYY-MM-DD", N the `rows` it was generated
# with (a refresh keeps it; the contract may be larger by the strikes it keeps listed), then the exchange date it
# was generated for. Samples loaded before the size was recorded read "embedded sample contract of YYYY-MM-DD".
_SAMPLE_SOURCE = "embedded sample contract"
_SAMPLE_SIZE = re.compile(r" \(size (\d+)\) of ")
_DERIVATIVES = (InstrumentType.FUT, InstrumentType.CE, InstrumentType.PE)


def sample_rows(rows: int | None = SAMPLE_ROWS, today: dt.date | None = None,
                keep: Iterable[Mapping[str, str]] = ()) -> Iterator[dict[str, str]]:
    """The sample contract for the exchange date `today` (default: the current one), each option chain
    centred on the simulator's price of its underlying at that day's open (sample_contract.generate).
    `keep` (listed_derivatives()) are the contracts listed until now: the unexpired ones stay listed."""
    sim = quotes.simulator()
    day = today or utcnow().astimezone(sim.tz).date()
    return sample_contract.generate(rows, day, spot=lambda name: sim.session_open(name, day), keep=keep)


def listed_derivatives(today: dt.date) -> list[dict[str, str]]:
    """The loaded contract's futures and options that expire on `today` or later, as Zerodha rows with
    the sample's columns: what a sample contract generated for `today` must keep listing."""
    stmt = (select(SymToken.brsymbol, SymToken.name, SymToken.brexchange, SymToken.token, SymToken.expiry,
                   SymToken.strike, SymToken.lotsize, SymToken.instrumenttype, SymToken.tick_size, SymToken.freeze_qty)
            .where(SymToken.instrumenttype.in_(_DERIVATIVES), SymToken.expiry >= today).order_by(SymToken.id))
    out = []
    listed = db.session.connection().execute(stmt)  # Core rows: the ORM's loading would double the time
    for brsymbol, name, brexchange, token, expiry, strike, lot, itype, tick, freeze in listed:
        kind = InstrumentType(itype).value
        out.append({
            "instrument_token": token,
            "exchange_token": str(int(token) >> 8) if token.isdigit() else "",
            "tradingsymbol": brsymbol,
            "name": name or "",
            "last_price": "0",
            "expiry": expiry.isoformat(),
            "strike": format_strike(Decimal(strike)) if strike else "0",
            "tick_size": format(Decimal(tick).normalize(), "f"),
            "lot_size": str(lot),
            "instrument_type": kind,
            "segment": f"{brexchange}-{'FUT' if kind == 'FUT' else 'OPT'}",
            "exchange": brexchange,
            FREEZE_COLUMN: str(freeze) if freeze else "",
        })
    return out


def unlisted_in_use() -> list[str]:
    """Analyze-mode open positions and working orders on an instrument the loaded contract does not list
    (nothing can quote or close them): "EXCHANGE:SYMBOL position PRODUCT of user N" or "... order ID of user N"."""
    out = []
    for kind, model, alive, what in (("position", Position, Position.quantity != 0, Position.product),
                                     ("order", Order, Order.status.in_(OPEN_STATUSES), Order.orderid)):
        listed = select(SymToken.id).where(SymToken.exchange == model.exchange, SymToken.symbol == model.symbol)
        stmt = (select(model.exchange, model.symbol, what, model.user_id)
                .where(model.mode == Mode.ANALYZE, alive, ~listed.exists()).order_by(model.id))
        out += [f"{getattr(ex, 'value', ex)}:{sym} {kind} {getattr(w, 'value', w)} of user {uid}"
                for ex, sym, w, uid in db.session.execute(stmt)]
    return out


def ensure_sample_contract(rows: int = SAMPLE_ROWS, now: dt.datetime | None = None) -> ImportResult | None:
    """Load the generated sample contract (for `now`'s exchange date) when `sym_tokens` is empty; otherwise
    do nothing.

    Idempotent: a second call (or a second worker racing the first) finds rows and returns None.
    """

    if symbol_count():
        return None
    today = _exchange_date(now)
    try:
        return import_rows(sample_rows(rows, today), broker=SAMPLE_BROKER, source=_sample_source(today, rows))
    except ImportBusyError:
        return None


def loaded_status(statuses: Iterable[MasterContractStatus] | None = None) -> MasterContractStatus | None:
    """The import status row of the contract in `sym_tokens`: the last import that succeeded (None before the
    first). `statuses`: the status rows, when the caller has read them already."""
    if statuses is None:
        statuses = db.session.execute(select(MasterContractStatus)).scalars().all()
    done = [r for r in statuses if r.state == ImportState.DONE and r.finished_at is not None]
    return max(done, key=lambda r: r.finished_at, default=None)


def refresh_sample_contract(now: dt.datetime | None = None) -> ImportResult | None:
    """Generate the sample contract again, at the size it was generated with, when it is the loaded contract
    and was made for an exchange date before `now`'s: the day's weekly expiries, chains centred on the day's
    prices, and, as an exchange does, every future and option listed until now that has not expired, unchanged
    (symbol, tokens, lot, tick, freeze): positions and orders on them keep their instrument.

    Returns None when there is nothing to do: the contract is a broker's (the last import to succeed
    was not the sample's), or is current, or an import is running (here or in another worker, which
    then does it: ImportBusyError). A scheduled job, also run at start-up; safe in every worker at once.
    Logs a warning naming the analyze-mode positions and working orders whose instrument the new contract
    does not list (only expired ones can be).
    """
    today = _exchange_date(now)
    statuses = db.session.execute(select(MasterContractStatus)).scalars().all()
    if any(r.state == ImportState.RUNNING and r.started_at and utcnow() - r.started_at < dt.timedelta(hours=1)
           for r in statuses):
        return None  # another broker's import may be about to replace the contract: never race it
    loaded = loaded_status(statuses)
    if loaded is None or loaded.broker != SAMPLE_BROKER or _generated_on(loaded) >= today:
        return None
    # The size it was generated with, not its row count: that includes the strikes it kept, and would grow.
    rows = _generated_size(loaded) or symbol_count()
    if not rows:
        return None
    keep = listed_derivatives(today)
    try:
        result = import_rows(sample_rows(rows, today, keep), broker=SAMPLE_BROKER,
                             source=_sample_source(today, rows), rows_total=rows)
    except ImportBusyError:
        return None
    log.info("sample contract generated again for %s: %d rows, keeping the %d unexpired contracts listed before",
             today, result.rows_mapped, len(keep))
    unlisted = unlisted_in_use()
    if unlisted:
        log.warning("the sample contract of %s does not list the instrument of %d open position(s)/order(s): %s",
                    today, len(unlisted), "; ".join(unlisted))
    return result


def _sample_source(day: dt.date, rows: int) -> str:
    return f"{_SAMPLE_SOURCE} (size {rows}) of {day.isoformat()}"


def _exchange_date(now: dt.datetime | None) -> dt.date:
    return (now or utcnow()).astimezone(quotes.simulator().tz).date()


def _generated_on(status: MasterContractStatus) -> dt.date:
    """The exchange date a loaded sample contract was generated for: named in its source, else the day its
    import started (a sample loaded by `flask symbols sample` or the symbols page)."""
    source = status.source or ""
    if source.startswith(_SAMPLE_SOURCE):
        try:
            return dt.date.fromisoformat(source[-10:])
        except ValueError:
            pass
    return _exchange_date(status.started_at or status.finished_at)


def _generated_size(status: MasterContractStatus) -> int | None:
    """The `rows` a loaded sample contract was generated with, when its source names it (else: no kept
    rows were added to it, and its row count is that size)."""
    source = status.source or ""
    size = _SAMPLE_SIZE.search(source) if source.startswith(_SAMPLE_SOURCE) else None
    return int(size.group(1)) if size else None
