"""`flask calendar ...`: list a year's market calendar; add a holiday, a special session or an `open` day
(a shipped holiday cancelled); remove an edit. Edits are audited as "cli"."""

from __future__ import annotations

import datetime as dt

import click
from flask.cli import AppGroup, with_appcontext

from cli import ready
from services.market import calendar

calendar_cli = AppGroup("calendar", help="The market calendar: holidays and special sessions per exchange, and "
                                         "admins' edits of the shipped data.")


def _day(_ctx, _param, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date written YYYY-MM-DD") from None


def _time(_ctx, param, value: str | None) -> dt.time | None:
    if value is None:
        return None
    try:
        return calendar.parse_time(value, param.name)
    except calendar.CalendarError as exc:
        raise click.BadParameter(str(exc)) from None


EXCHANGES_HELP = "Comma-separated exchanges, e.g. NSE,BSE,NFO,BFO (index exchanges follow NSE and BSE)."


def _add(day: dt.date, kind: str, exchanges: str, description: str, start=None, end=None) -> None:
    ready()
    try:
        entry = calendar.add_entry(day, kind, exchanges, description, start=start, end=end, actor="cli")
    except calendar.CalendarError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"added #{entry['id']}: {_entry_line(entry)}")


def _entry_line(entry: dict) -> str:
    hours = f" {entry['start_time']}-{entry['end_time']}" if entry["start_time"] else ""
    return (f"{entry['day'].isoformat()} {entry['kind']} {','.join(entry['exchanges'])}{hours}  "
            f"{entry['description']}")


@calendar_cli.command("list")
@click.option("--year", type=int, default=None, help="The year (default: the current year, exchange time).")
@with_appcontext
def list_command(year: int | None) -> None:
    """List the year's holidays and special sessions (shipped and edited) and the edits with their ids."""
    ready()
    year = year or calendar.current_year()
    try:
        days = calendar.calendar_days(year)
        edits = calendar.entries(year)
    except calendar.CalendarError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"market calendar {year} ({calendar.timezone_name()}); weekends closed")
    if not days:
        click.echo("  no holiday or special session: the regular week")
    for d in days:
        source = "+".join(s for s in ("shipped", "edited") if d[s])
        click.echo(f"{d['date'].isoformat()} {d['date']:%a}  {d['holiday_type']:<16} {d['description']}  [{source}]")
        if d["closed"]:
            click.echo(f"    closed: {', '.join(d['closed'])}")
        for o in d["open"]:
            click.echo(f"    open:   {o['exchange']} {o['start_time']}-{o['end_time']}")
    click.echo(f"edits ({len(edits)}):")
    for e in edits:
        who = e["created_by_name"] or "cli"
        click.echo(f"  #{e['id']} {_entry_line(e)}  (by {who}, {e['created_at']:%Y-%m-%d %H:%M} UTC)")


@calendar_cli.command("add-holiday")
@click.argument("day", metavar="DATE", callback=_day)
@click.option("--exchanges", required=True, help=EXCHANGES_HELP)
@click.option("--description", required=True, help="What the holiday is, e.g. 'Republic Day'.")
@with_appcontext
def add_holiday_command(day: dt.date, exchanges: str, description: str) -> None:
    """Close EXCHANGES all day on DATE (YYYY-MM-DD)."""
    _add(day, "holiday", exchanges, description)


@calendar_cli.command("add-session")
@click.argument("day", metavar="DATE", callback=_day)
@click.option("--exchanges", required=True, help=EXCHANGES_HELP)
@click.option("--start", required=True, callback=_time, help="Start, HH:MM exchange time.")
@click.option("--end", required=True, callback=_time, help="End, HH:MM exchange time (same day).")
@click.option("--description", required=True, help="What the session is, e.g. 'Muhurat trading'.")
@with_appcontext
def add_session_command(day: dt.date, exchanges: str, start: dt.time, end: dt.time, description: str) -> None:
    """A special session of EXCHANGES on DATE from --start to --end, instead of what the day had."""
    _add(day, "special_session", exchanges, description, start, end)


@calendar_cli.command("add-open")
@click.argument("day", metavar="DATE", callback=_day)
@click.option("--exchanges", required=True, help=EXCHANGES_HELP)
@click.option("--description", required=True, help="Why, e.g. 'holiday withdrawn by circular ...'.")
@with_appcontext
def add_open_command(day: dt.date, exchanges: str, description: str) -> None:
    """Give EXCHANGES their regular session on DATE, cancelling a shipped holiday."""
    _add(day, "open", exchanges, description)


@calendar_cli.command("remove")
@click.argument("entry_id", metavar="ID", type=int)
@with_appcontext
def remove_command(entry_id: int) -> None:
    """Remove the edit ID (see `flask calendar list`): the shipped data of its day applies again."""
    ready()
    try:
        entry = calendar.remove_entry(entry_id, actor="cli")
    except calendar.CalendarError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"removed #{entry_id}: {_entry_line(entry)}")
