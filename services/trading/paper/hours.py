"""When analyze mode's exchange trades, and when it squares off intraday positions.

`ANALYZE_MARKET_HOURS=exchange` (the default) follows the market calendar (services.market.calendar):
each exchange's regular session, its holidays and special sessions. `always` is a practice market open
around the clock, so a strategy can be tried at night or on a Sunday; its MIS positions are still
squared off every day at each exchange's square-off time.

Outside the session, analyze mode does what the exchange does: a MARKET order is refused with the next
open in the message; LIMIT and SL orders are taken and rest until the session, where they match as any
open order; nothing fills while the exchange is closed.

`MIS_SQUAREOFF_TIME`, when set, is one square-off time for every exchange instead of each exchange's own.
"""

from __future__ import annotations

import datetime as dt

from flask import current_app

import config as config_module
from services.accounts.users import last_expiry_boundary
from services.market import calendar
from vocabulary import TRADABLE_EXCHANGES

EXCHANGE, ALWAYS = "exchange", "always"
CHOICES = (EXCHANGE, ALWAYS)
NEVER = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # the cutoff of "never squared off": before any position


def setting() -> str:
    return current_app.config["ANALYZE_MARKET_HOURS"]


def always() -> bool:
    return setting() == ALWAYS


def is_open(exchange: str, now: dt.datetime) -> bool:
    return always() or calendar.is_open(exchange, now)


def _local(moment: dt.datetime) -> str:
    tz = config_module.exchange_tz(current_app.config)
    return moment.astimezone(tz).strftime("%a %d %b %Y %H:%M")


def closed_message(exchange: str, now: dt.datetime) -> str:
    """Why a MARKET order is refused now, with the next open (exchange time)."""
    try:
        when = f"it opens next {_local(calendar.next_open(exchange, now))} (exchange time)"
    except calendar.CalendarError as exc:
        when = str(exc)
    return (f"Market closed: {exchange} takes MARKET orders during its session; {when}. LIMIT and SL orders "
            f"placed now wait for the open.")


def _override() -> dt.time | None:
    raw = current_app.config.get("MIS_SQUAREOFF_TIME") or ""
    return config_module.parse_hhmm("MIS_SQUAREOFF_TIME", raw) if raw.strip() else None


def _cutoff(exchange: str, now: dt.datetime) -> dt.datetime:
    at = _override()
    if always():
        at = at or calendar.regular_squareoff(exchange)
        # every calendar day: the arithmetic of the daily session expiry
        return last_expiry_boundary(now, at, config_module.exchange_tz(current_app.config)) if at else NEVER
    if at is None:
        return calendar.last_squareoff(exchange, now) or NEVER
    # One time for every exchange, on the exchange's trading days; on a day whose session does not hold
    # it (a Muhurat evening, MCX's evening-only holidays) the session's own square-off.
    tz = config_module.exchange_tz(current_app.config)
    today = calendar.local_date(now)
    for offset in range(calendar.SEARCH_DAYS + 1):
        day = today - dt.timedelta(days=offset)
        found = calendar.session(exchange, day)
        if found is None:
            continue
        moment = dt.datetime.combine(day, at, tzinfo=tz).astimezone(dt.UTC)
        if not found.open < moment <= found.close:
            moment = found.squareoff
        if moment is not None and moment <= now:
            return moment
    return NEVER


# Every exchange's cutoff, for the minute of `now`: square-off moments are whole minutes, so the latest
# one at or before `now` is the latest at or before the start of its minute, and the dict computed once
# serves every order and read of that minute (a dozen calendar walks cost ~0.4 ms). Kept while the
# settings and the calendar's year (an edit gives a new one: calendar.token) are the same.
_memo: list = [None, None, None]  # [key, calendar tokens, cutoffs]


def cutoffs(now: dt.datetime) -> dict[str, dt.datetime]:
    """{exchange: its latest MIS square-off moment at or before `now`} for every tradable exchange (UTC)."""
    cfg = current_app.config
    minute = now.replace(second=0, microsecond=0)
    key = (minute, cfg["ANALYZE_MARKET_HOURS"], cfg.get("MIS_SQUAREOFF_TIME") or "", cfg.get("EXCHANGE_TIMEZONE"))
    tokens: tuple = ()
    if not always():
        local = calendar.local_date(now)
        years = (local.year - 1, local.year) if local.timetuple().tm_yday <= calendar.SEARCH_DAYS + 1 \
            else (local.year,)
        tokens = tuple(calendar.token(y) for y in years)
    memo = _memo
    if memo[0] == key and len(memo[1]) == len(tokens) and all(a is b for a, b in zip(memo[1], tokens, strict=True)):
        return memo[2]
    found = {e: _cutoff(e, minute) for e in TRADABLE_EXCHANGES}
    _memo[:] = [key, tokens, found]  # one list assignment: readers see the old entry or the new one
    return found


def squareoff_cutoff(exchange: str, now: dt.datetime) -> dt.datetime:
    """The latest MIS square-off moment of `exchange` at or before `now`, in UTC: an MIS position of the
    exchange last traded before it is due. A practice market (`always`) squares off every day; the
    exchange calendar on the exchange's trading days only."""
    found = cutoffs(now).get(exchange)
    return found if found is not None else _cutoff(exchange, now.replace(second=0, microsecond=0))


def latest_squareoff(now: dt.datetime) -> dt.datetime:
    """The latest square-off moment of any exchange at or before `now` (for the square-off snapshots)."""
    return max(cutoffs(now).values())


def takes_mis(exchange: str, now: dt.datetime) -> bool:
    """Does the exchange take new MIS orders now? Not between its square-off and its close (brokers stop
    intraday orders at the square-off: a position opened then would live to the next day's). A practice
    market takes them at any hour."""
    if always():
        return True
    today = calendar.session(exchange, calendar.local_date(now))
    return today is None or today.squareoff is None or not today.squareoff <= now < today.close


def mis_closed_message(exchange: str, now: dt.datetime) -> str:
    today = calendar.session(exchange, calendar.local_date(now))
    at = _local(today.squareoff).rsplit(" ", 1)[-1] if today is not None and today.squareoff else "the square-off"
    return (f"MIS orders are not taken after the intraday square-off ({exchange}: {at} exchange time) until the "
            f"close: use CNC or NRML, or trade MIS from the next session")
