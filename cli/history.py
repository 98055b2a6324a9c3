"""`flask history ...`: fill the candle store for some symbols over a range of days (with a progress bar), and
list what it holds. A download goes through the simulator, or with `--user` through that user's venue (their
live broker session in live mode), and skips the days already stored."""

from __future__ import annotations

import datetime as dt

import click
from flask.cli import AppGroup, with_appcontext

from cli import ready
from database.types import utcnow
from services.accounts import users
from services.market import calendar
from services.market import history as store
from services.market.quotes import UnknownSymbolError
from services.trading import history, venues
from services.trading.errors import OrderError
from vocabulary import EXCHANGES

history_cli = AppGroup("history", help="Stored history: candles kept in the database for the `history` API.")


def _day(_ctx, param, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date written YYYY-MM-DD", param=param) from None


def _instruments(symbols: tuple[str, ...], exchange: str) -> list[tuple[str, str]]:
    """SYMBOLS as (symbol, exchange): INFY, or NSE:INFY for another exchange than --exchange; commas split too."""
    out = []
    for part in (p.strip().upper() for arg in symbols for p in arg.split(",")):
        if not part:
            continue
        ex, _, symbol = part.rpartition(":")
        ex = ex or exchange
        if ex not in EXCHANGES:
            raise click.BadParameter(f"{ex} is not an exchange ({', '.join(EXCHANGES)})", param_hint="SYMBOLS")
        out.append((symbol, ex))
    if not out:
        raise click.BadParameter("name at least one symbol", param_hint="SYMBOLS")
    return list(dict.fromkeys(out))


@history_cli.command("download")
@click.argument("symbols", nargs=-1, required=True)
@click.option("--exchange", default="NSE", show_default=True, type=click.Choice(EXCHANGES, case_sensitive=False),
              help="The exchange of SYMBOLS written without one (NSE:INFY names its own).")
@click.option("--interval", default="D", show_default=True, type=click.Choice(store.INTERVALS),
              help="The interval wanted; the store keeps what it is built from (5m: 1m candles, W: D).")
@click.option("--from", "start", required=True, callback=_day, help="First day, YYYY-MM-DD (exchange time).")
@click.option("--to", "end", default=None, callback=_day, help="Last day, YYYY-MM-DD (default: today).")
@click.option("--user", default=None, help="Download through this user's venue: their live broker session in live "
                                           "mode, the simulator in analyze mode (default: the simulator).")
@with_appcontext
def download_command(symbols: tuple[str, ...], exchange: str, interval: str, start: dt.date, end: dt.date | None,
                     user: str | None) -> None:
    """Fill the store with SYMBOLS' candles from --from to --to; days already stored are skipped."""
    ready()
    instruments = _instruments(symbols, exchange.upper())
    end = end or calendar.local_date(utcnow())
    if start > end:
        raise click.BadParameter("--from must not be after --to", param_hint="--from")
    venue = None
    if user:
        found = users.find_user(user)
        if found is None:
            raise click.ClickException(f"no user named {user!r}")
        try:
            venue = venues.venue_for(found.id)
        except OrderError as exc:
            raise click.ClickException(f"{found.username}: {exc.message}") from None
    first, last = store.span(interval, start, end)  # W, M, Q, Y: whole periods
    span = (last - first).days + 1
    failed, total = [], 0
    with click.progressbar(length=span * len(instruments), label=f"{interval} {start} to {end}",
                           show_pos=True) as bar:
        for symbol, ex in instruments:
            done = [0]

            def advance(days: int, done=done) -> None:
                done[0] += days
                bar.update(days)

            try:
                total += history.fill(venue, symbol, ex, interval, start, end, progress=advance)
            except (UnknownSymbolError, store.HistoryError, OrderError) as exc:
                failed.append(f"{ex}:{symbol}: {getattr(exc, 'message', None) or exc}")
                bar.update(span - done[0])  # the bar goes on to the next instrument
    click.echo(f"stored {total:,} candles for {len(instruments) - len(failed)} of {len(instruments)} instruments")
    for line in failed:
        click.echo(f"  failed {line}", err=True)
    if failed:
        raise SystemExit(1)


@history_cli.command("list")
@click.option("--symbol", default=None, help="Only series whose symbol starts with this.")
@with_appcontext
def list_command(symbol: str | None) -> None:
    """List the stored series: source, instrument, interval, first and last candle, count."""
    ready()
    after, shown = None, 0
    while True:
        rows = store.series(prefix=symbol.strip().upper() if symbol else None, after=after, limit=500)
        for r in rows:
            first, last = store.moment_text(r["first"], r["intraday"]), store.moment_text(r["last"], r["intraday"])
            click.echo(f"{r['source']:<12} {r['exchange']:<9} {r['symbol']:<24} {r['interval']:<4} "
                       f"{first} .. {last}  {r['candles']:,} candles")
        shown += len(rows)
        if len(rows) < 500:
            break
        after = (rows[-1]["symbol"], rows[-1]["id"])
    if not shown:
        click.echo("nothing stored")
