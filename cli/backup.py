"""`flask backup`: a consistent copy of the database while the application keeps running.

SQLite: SQLite's online backup API (a snapshot at one point in time, taken in one step so that writers
in WAL mode do not restart it). PostgreSQL: `pg_dump -Fc` of DATABASE_URL (a single transaction, so it
is consistent too). The file goes to <instance>/backups/ with a UTC timestamp, or to --output.

Broker tokens in the database are encrypted with TOKEN_ENCRYPTION_KEYS: a backup without those keys
cannot give them back. For the embedded default the keys were generated into <instance>/secrets.json;
that file is copied next to the backup (owner-only). Elsewhere the keys live in the environment and
must be kept with the backup by whoever keeps the environment.

(`flask db ...` belongs to Flask-Migrate, whose group is resolved before the application is loaded,
so a command the application adds to it would not be found: hence a command of its own.)
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess

import click
from flask import current_app
from flask.cli import with_appcontext

from database import db

SECRETS_FILE = "secrets.json"


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _default_path(suffix: str) -> str:
    folder = os.path.join(current_app.instance_path, "backups")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return os.path.join(folder, f"algobridge-{_stamp()}{suffix}")


def _private(path: str) -> None:
    os.chmod(path, 0o600)


def _size(path: str) -> str:
    return f"{os.path.getsize(path) / 1_048_576:.1f} MB"


def backup_sqlite(source: str, target: str) -> int:
    """Copy the SQLite database at `source` into a new file `target`; the number of pages copied."""
    if not os.path.exists(source):
        raise click.ClickException(f"the database file {source} does not exist")
    partial = target + ".partial"
    if os.path.exists(partial):
        os.unlink(partial)
    src = sqlite3.connect(source, timeout=30)
    try:
        pages = src.execute("PRAGMA page_count").fetchone()[0]
        size = pages * src.execute("PRAGMA page_size").fetchone()[0] / 1_048_576
        click.echo(f"copying {pages} pages ({size:.1f} MB) with SQLite's online backup ...")
        dst = sqlite3.connect(partial)
        try:
            # pages=-1: the whole database in one step, under one read snapshot. In steps, every write
            # by the running application between two steps would restart the copy.
            src.backup(dst, pages=-1)
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise click.ClickException(f"the copy failed SQLite's quick_check: {check}")
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            dst.close()
    finally:
        src.close()
    _private(partial)
    os.replace(partial, target)
    return pages


def backup_postgresql(url, target: str) -> None:
    """`pg_dump -Fc` of the database at `url` (a SQLAlchemy URL) into `target`."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise click.ClickException(
            "pg_dump was not found on PATH: install the PostgreSQL client tools of the server's major version "
            "(Debian/Ubuntu: apt-get install postgresql-client) and run this again")
    env = dict(os.environ)
    if url.password:  # not on the command line, where `ps` would show it
        env["PGPASSWORD"] = url.password
    dsn = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    click.echo(f"running pg_dump -Fc of {url.render_as_string(hide_password=True)} ...")
    partial = target + ".partial"
    result = subprocess.run(  # noqa: S603 - a fixed program; the URL is the operator's own setting
        [pg_dump, "-Fc", "--no-owner", "--file", partial, "--dbname", dsn], env=env,
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        if os.path.exists(partial):
            os.unlink(partial)
        raise click.ClickException(f"pg_dump failed: {result.stderr.strip() or result.returncode}")
    _private(partial)
    os.replace(partial, target)


def _copy_secrets(target: str) -> str | None:
    source = os.path.join(current_app.instance_path, SECRETS_FILE)
    if not os.path.exists(source):
        return None
    copy = f"{target}.{SECRETS_FILE}"
    with open(source, "rb") as fh:
        data = fh.read()
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    _private(copy)
    return copy


@click.command("backup")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write the backup here (default: <instance>/backups/algobridge-<UTC time>.db or .dump).")
@with_appcontext
def backup_cli(output: str | None) -> None:
    """Back up the database while the application runs (SQLite online backup, or pg_dump -Fc).

    Restore: see "Backup and restore" in the README.
    """
    url = db.engine.url
    backend = db.engine.dialect.name
    if backend == "sqlite":
        target = os.path.abspath(output or _default_path(".db"))
        pages = backup_sqlite(url.database, target)
        click.echo(f"copied {pages} pages")
    elif backend == "postgresql":
        target = os.path.abspath(output or _default_path(".dump"))
        backup_postgresql(url, target)
    else:
        raise click.ClickException(f"backups of a {backend} database are not supported")
    click.echo(f"backup written: {target} ({_size(target)})")
    secrets_copy = _copy_secrets(target)
    if secrets_copy:
        click.echo(f"the generated secrets were copied to {secrets_copy} (owner-only): keep it with the backup; "
                   "without it the stored broker tokens cannot be decrypted")
    else:
        click.echo("note: broker tokens in the backup are encrypted with TOKEN_ENCRYPTION_KEYS: keep those keys "
                   "with the backup, or the tokens cannot be decrypted after a restore")
