"""`flask users ...`: create, list, disable, enable accounts, reset a password, change a role, turn off
two-factor sign-in for a user who lost it.

Every change is audited with actor "cli". Passwords are prompted (hidden, asked twice) or read from
standard input with --password-stdin (for scripts); they are never taken as an argument, where they
would end up in the shell history and the process list.
"""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup, with_appcontext

from cli import ready
from database.enums import Role
from services.accounts import two_factor
from services.accounts import users as accounts
from services.accounts.users import AccountError

users_cli = AppGroup("users", help="Manage the accounts that can sign in to the web interface.")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on standard input")
        return password
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _run(action):
    try:
        return action()
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None


_password_stdin = click.option("--password-stdin", is_flag=True,
                               help="Read the password from the first line of standard input.")


@users_cli.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(Role.values()), default=Role.TRADER.value, show_default=True)
@_password_stdin
@with_appcontext
def create(username: str, role: str, password_stdin: bool) -> None:
    """Create a user."""
    ready()
    password = _read_password(password_stdin)
    had_users = accounts.any_user_exists()
    user = _run(lambda: accounts.create_user(username, password, role, actor=accounts.Actor.cli()))
    click.echo(f"created {user.username} ({user.role})")
    if not had_users and user.role != Role.ADMIN:
        click.echo("warning: there is no admin yet; create one with --role admin", err=True)


@users_cli.command("list")
@with_appcontext
def list_users() -> None:
    """List every user: username, role, status and last sign-in."""
    ready()
    rows = []
    after = None
    while True:
        page = accounts.list_users(after=after, limit=500)
        rows.extend(page.items)
        if page.next_cursor is None:
            break
        after = page.next_cursor
    if not rows:
        click.echo("no users yet: run `flask users create USERNAME --role admin` or open /setup")
        return
    click.echo(f"{'USERNAME':<24} {'ROLE':<8} {'STATUS':<9} LAST SIGN-IN (UTC)")
    for u in rows:
        last = u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "never"
        click.echo(f"{u.username:<24} {u.role:<8} {'active' if u.is_active else 'disabled':<9} {last}")


@users_cli.command("disable")
@click.argument("username")
@with_appcontext
def disable(username: str) -> None:
    """Disable a user: they cannot sign in, and their open sessions end."""
    ready()
    user = _run(lambda: accounts.set_active(username, False, actor=accounts.Actor.cli()))
    click.echo(f"disabled {user.username}")


@users_cli.command("enable")
@click.argument("username")
@with_appcontext
def enable(username: str) -> None:
    """Enable a disabled user."""
    ready()
    user = _run(lambda: accounts.set_active(username, True, actor=accounts.Actor.cli()))
    click.echo(f"enabled {user.username}")


@users_cli.command("reset-password")
@click.argument("username")
@_password_stdin
@with_appcontext
def reset_password(username: str, password_stdin: bool) -> None:
    """Set a new password for a user; their open sessions end."""
    ready()
    _run(lambda: accounts.get_user(username))  # say "no such user" before asking for a password
    password = _read_password(password_stdin)
    user = _run(lambda: accounts.reset_password(username, password, actor=accounts.Actor.cli()))
    click.echo(f"password of {user.username} reset")


@users_cli.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(Role.values()))
@with_appcontext
def set_role(username: str, role: str) -> None:
    """Change a user's role (admin, trader or viewer)."""
    ready()
    user = _run(lambda: accounts.change_role(username, role, actor=accounts.Actor.cli()))
    click.echo(f"{user.username} is now {user.role}")


@users_cli.command("reset-2fa")
@click.argument("username")
@with_appcontext
def reset_2fa(username: str) -> None:
    """Turn off a user's two-factor sign-in, when they lost both the phone and the recovery codes: the
    password alone signs them in again, and they can set it up anew."""
    ready()
    user = _run(lambda: accounts.get_user(username))
    if not two_factor.is_enrolled(user):
        click.echo(f"two-factor sign-in is not on for {user.username}: nothing to reset")
        return
    two_factor.reset(user.id, actor=accounts.Actor.cli())
    click.echo(f"two-factor sign-in of {user.username} turned off: the password alone signs in now")
