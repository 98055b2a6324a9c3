"""`flask risk ...`: the kill switch of an account (on, off) and its risk state, from the server's shell.
Switches are audited as "cli"."""

from __future__ import annotations

import click
from flask.cli import AppGroup, with_appcontext

from cli import ready
from services.accounts import users
from services.trading import approvals, risk

risk_cli = AppGroup("risk", help="Risk limits: the kill switch of an account and today's risk state.")


def _user_id(username: str) -> int:
    user = users.find_user(username)
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    return user.id


@risk_cli.command("kill")
@click.argument("username")
@with_appcontext
def kill_command(username: str) -> None:
    """Kill switch on: cancel open orders, close positions (both modes), block new entries."""
    ready()
    uid = _user_id(username)
    if risk.kill(uid, actor="cli"):
        click.echo(f"kill switch on for {username}: open orders cancelled, positions closed, entries blocked")
    else:
        click.echo(f"kill switch was already on for {username}: open orders cancelled and positions closed again")


@risk_cli.command("unkill")
@click.argument("username")
@with_appcontext
def unkill_command(username: str) -> None:
    """Kill switch off: the account may enter positions again."""
    ready()
    uid = _user_id(username)
    if risk.unkill(uid, actor="cli"):
        click.echo(f"kill switch off for {username}")
    else:
        click.echo(f"kill switch was already off for {username}")


@risk_cli.command("status")
@click.argument("username")
@with_appcontext
def status_command(username: str) -> None:
    """The kill switch, today's P&L and blocks per mode and scope, and the orders waiting for approval."""
    ready()
    uid = _user_id(username)
    state = risk.state(uid)
    click.echo(f"{username}: kill switch {'ON' if state['kill_switch'] else 'off'}"
               + (f" (since {state['killed_at']}, by {state['killed_by']})" if state["kill_switch"] else ""))
    click.echo(f"trading day {state['trading_day']}")
    for d in state["days"]:
        scope = "account" if d["scope_kind"] == "account" else f"{d['scope_kind']} {d['scope']}"
        block = f"BLOCKED ({d['blocked_reason']})" if d["blocked"] else "open"
        click.echo(f"  {d['mode']:<7} {scope:<30} P&L {d['last_pnl']:>12} peak {d['peak_pnl']:>12}  {block}")
    waiting = approvals.pending(uid)
    click.echo(f"approvals waiting: {len(waiting)}")
    for a in waiting:
        o = a.order
        click.echo(f"  #{a.id} {o.get('action')} {o.get('quantity')} {o.get('symbol')} ({a.strategy or '-'}) "
                   f"expires {a.expires_at:%Y-%m-%d %H:%M:%S} UTC")
