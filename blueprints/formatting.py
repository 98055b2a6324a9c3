"""How the pages write money and moments: the Jinja filters `inr`, `xtime` and `xdate`.

- `inr`: rupees with Indian digit grouping and two decimals, "₹1,23,45,678.90", "-₹1,234.50";
  `value|inr(sign=False)` without the rupee sign (prices in a table's rows), `value|inr(plus=True)`
  with "+" before a gain (P&L). None (and anything that is not a number) is "–".
- `xtime`: an aware datetime in the exchange's zone (EXCHANGE_TIMEZONE), 24-hour, labelled with the
  zone, "07 Dec 14:05:09 IST"; `xtime("full")` adds the year, `xtime("time")` is the time alone,
  `xtime("minute")` drops the seconds. A naive datetime is taken as UTC (the database's convention); a
  book's time string ("07-Dec-2026 14:05:09", exchange time: services.trading.shapes) is re-labelled.
- `xdate`: a date (or a datetime, in exchange time) as "07 Dec 2026"; `xdate("day")` adds the weekday.

static/js/format.js writes the same shapes in the browser (Intl.NumberFormat('en-IN') and the zone
of the page's `data-exchange-tz`).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from flask import Flask, Response, current_app, g, send_from_directory

from config import exchange_tz

NONE = "–"
_CENT = Decimal("0.01")

TIME_FORMATS = {
    "short": "%d %b %H:%M:%S",
    "full": "%d %b %Y %H:%M:%S",
    "minute": "%d %b %H:%M",
    "time": "%H:%M:%S",
    "hm": "%H:%M",
}
BOOK_TIME = "%d-%b-%Y %H:%M:%S"  # services.trading.shapes.TIME_FORMAT, in exchange time
DATE_FORMATS = {"date": "%d %b %Y", "day": "%a %d %b %Y"}


def group_indian(digits: str) -> str:
    """'12345678' -> '1,23,45,678': the last three digits, then pairs."""
    if len(digits) <= 3:
        return digits
    head, tail = digits[:-3], digits[-3:]
    pairs = []
    while len(head) > 2:
        pairs.insert(0, head[-2:])
        head = head[:-2]
    if head:
        pairs.insert(0, head)
    return ",".join(pairs) + "," + tail


def inr(value: object, sign: bool = True, plus: bool = False) -> str:
    """An amount in rupees: "₹1,23,45,678.90", "-₹1,234.50", "–" for none."""
    if value is None or isinstance(value, bool):
        return NONE
    try:
        amount = Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError, TypeError):
        return NONE
    if not amount.is_finite():
        return NONE
    negative = amount < 0
    whole, _, cents = f"{abs(amount):.2f}".partition(".")
    text = ("₹" if sign else "") + group_indian(whole) + "." + cents
    if negative:
        return "-" + text
    if plus and amount > 0:
        return "+" + text
    return text


def _zone() -> dt.tzinfo:
    """EXCHANGE_TIMEZONE, read once per request (the filters run for every row of a page)."""
    zone = g.get("_exchange_zone")
    if zone is None:
        zone = g._exchange_zone = exchange_tz(current_app.config)
    return zone


def xtime(value: dt.datetime | None, style: str = "short", zone: dt.tzinfo | None = None) -> str:
    """A moment in exchange time, 24-hour, with the zone's label: "07 Dec 14:05:09 IST"."""
    if value is None:
        return NONE
    if isinstance(value, str):
        try:  # the books' API shape: exchange time as "07-Dec-2026 14:05:09" (services.trading.shapes)
            value = dt.datetime.strptime(value, BOOK_TIME).replace(tzinfo=zone or _zone())
        except ValueError:
            return value or NONE
    if not isinstance(value, dt.datetime):
        if isinstance(value, dt.date):
            return xdate(value)
        return str(value)
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=dt.UTC)
    local = value.astimezone(zone or _zone())
    return f"{local.strftime(TIME_FORMATS.get(style, TIME_FORMATS['short']))} {local.strftime('%Z')}"


def xdate(value: dt.date | dt.datetime | None, style: str = "date", zone: dt.tzinfo | None = None) -> str:
    """A day: "07 Dec 2026" ("Mon 07 Dec 2026" with style="day"); a datetime is taken in exchange time."""
    if value is None:
        return NONE
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(zone or _zone())
    if not isinstance(value, dt.date):
        return str(value)
    return value.strftime(DATE_FORMATS.get(style, DATE_FORMATS["date"]))


def short_id(value: object, keep: int = 6) -> str:
    """A long id's last characters, for a narrow column ("…a1b2c3"); the page shows the whole in a title."""
    text = "" if value is None else str(value)
    return text if len(text) <= keep + 2 else "…" + text[-keep:]


def favicon() -> Response:
    """/favicon.ico: the SVG icon (browsers and tools ask for this path even when a page names its icon)."""
    resp = send_from_directory(current_app.static_folder or "static", "favicon.svg", mimetype="image/svg+xml",
                               max_age=86400)
    return resp


def register(app: Flask) -> None:
    """The filters and the icon; app.py calls this once."""
    app.add_url_rule("/favicon.ico", "favicon", favicon)
    app.jinja_env.filters["inr"] = inr
    app.jinja_env.filters["xtime"] = xtime
    app.jinja_env.filters["xdate"] = xdate
    app.jinja_env.filters["short_id"] = short_id
    app.jinja_env.globals["exchange_zone_name"] = lambda: str(exchange_tz(app.config))
    # The log pages' times, in the user's display zone (the `usertime` filter), in the same shape as xtime.
    app.jinja_env.globals["LOG_TIME"] = "%d %b %Y %H:%M:%S %Z"
    app.jinja_env.globals["LOG_MINUTE"] = "%d %b %H:%M %Z"
