"""`flask backup`: a consistent copy of the database while the application keeps running, and the
optional passphrase-encrypted copy of the secrets that goes with it (`flask backup restore-secrets`).

SQLite: SQLite's online backup API (a snapshot at one point in time, taken in one step so that writers
in WAL mode do not restart it). PostgreSQL: `pg_dump -Fc` of DATABASE_URL (a single transaction, so it
is consistent too). The file goes to <instance>/backups/ (0700) with a UTC timestamp, or to --output.
Every file the command writes is created owner-only (0600), whatever the umask.

Broker tokens in the database are encrypted with TOKEN_ENCRYPTION_KEYS and API keys are stored as an
HMAC under API_KEY_PEPPER: a backup without those secrets is not whole, and a backup with them in the
clear hands every broker session to whoever reads it. So the secrets stay out unless --with-secrets,
which writes them to `<backup>.secrets.enc`: AES-256-GCM under a key derived from a passphrase with
scrypt; the first line of the file is a JSON header (format, scrypt parameters, salt, nonce) that is
authenticated with the ciphertext.

(`flask db ...` belongs to Flask-Migrate, whose group is resolved before the application is loaded,
so a command the application adds to it would not be found: hence a command of its own.)
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess

import click
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from config import SECRET_NAMES
from database import db

SECRETS_FILE = "secrets.json"
SECRETS_SUFFIX = ".secrets.enc"
PASSPHRASE_ENV = "BACKUP_PASSPHRASE"  # noqa: S105 - the variable's name, not a value
MIN_PASSPHRASE = 12
FORMAT = "algobridge-secrets/1"
# scrypt at OWASP's recommended cost (128 MiB, about 0.4 s here). A file may ask for more, up to the
# caps, so that a later version can raise the cost; beyond them it is refused rather than run.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
MAX_SCRYPT_N, MAX_SCRYPT_R, MAX_SCRYPT_P = 2**20, 16, 4


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _default_path(suffix: str) -> str:
    folder = os.path.join(current_app.instance_path, "backups")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)  # makedirs' mode passes through the umask, and an existing folder keeps its own
    return os.path.join(folder, f"algobridge-{_stamp()}{suffix}")


def _create_private(path: str) -> int:
    """A new, empty file at `path` (a leftover is replaced), 0600 from its creation: its descriptor."""
    if os.path.lexists(path):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)  # the umask may have taken bits off 0600, never added any: set it exactly
    return fd


def _write_private(path: str, data: bytes) -> None:
    """Write `data` to `path` through an owner-only partial file renamed into place."""
    partial = path + ".partial"
    with os.fdopen(_create_private(partial), "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)


def _size(path: str) -> str:
    return f"{os.path.getsize(path) / 1_048_576:.1f} MB"


def backup_sqlite(source: str, target: str) -> int:
    """Copy the SQLite database at `source` into a new file `target` (0600); the number of pages copied."""
    if not os.path.exists(source):
        raise click.ClickException(f"the database file {source} does not exist")
    partial = target + ".partial"
    # SQLite takes an empty file for an empty database and gives its journal the file's mode.
    os.close(_create_private(partial))
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
    os.replace(partial, target)
    return pages


def backup_postgresql(url, target: str) -> None:
    """`pg_dump -Fc` of the database at `url` (a SQLAlchemy URL) into `target` (0600)."""
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
    os.close(_create_private(partial))  # pg_dump truncates it and keeps its mode
    result = subprocess.run(  # noqa: S603 - a fixed program; the URL is the operator's own setting
        [pg_dump, "-Fc", "--no-owner", "--file", partial, "--dbname", dsn], env=env, umask=0o077,
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        if os.path.exists(partial):
            os.unlink(partial)
        raise click.ClickException(f"pg_dump failed: {result.stderr.strip() or result.returncode}")
    os.replace(partial, target)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(salt: bytes, n: int, r: int, p: int) -> Scrypt:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p)


def encrypt_secrets(values: dict[str, str], passphrase: str) -> bytes:
    """The bytes of a secrets file: a JSON header line, then the base64 of the AES-GCM ciphertext."""
    salt, nonce = os.urandom(16), os.urandom(12)
    header = json.dumps({"format": FORMAT, "kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
                         "salt": _b64(salt), "cipher": "AES-256-GCM", "nonce": _b64(nonce)},
                        sort_keys=True).encode("ascii")
    key = _scrypt(salt, SCRYPT_N, SCRYPT_R, SCRYPT_P).derive(passphrase.encode("utf-8"))
    ciphertext = AESGCM(key).encrypt(nonce, json.dumps(values).encode("utf-8"), header)
    return header + b"\n" + _b64(ciphertext).encode("ascii") + b"\n"


def decrypt_secrets(blob: bytes, passphrase: str) -> dict[str, str]:
    """The secrets in a file written by encrypt_secrets; click.ClickException when it cannot be read."""
    header_line, _, body = blob.partition(b"\n")
    try:
        header = json.loads(header_line)
        if header.get("format") != FORMAT or header.get("kdf") != "scrypt" or header.get("cipher") != "AES-256-GCM":
            raise ValueError
        n, r, p = int(header["n"]), int(header["r"]), int(header["p"])
        salt, nonce = base64.b64decode(header["salt"]), base64.b64decode(header["nonce"])
        ciphertext = base64.b64decode(body.strip(), validate=True)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise click.ClickException("this is not a secrets file written by `flask backup --with-secrets`") from None
    if not (1 < n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 0 < r <= MAX_SCRYPT_R and 0 < p <= MAX_SCRYPT_P):
        raise click.ClickException(f"the file asks for scrypt parameters beyond the limits (n={n}, r={r}, p={p})")
    key = _scrypt(salt, n, r, p).derive(passphrase.encode("utf-8"))
    try:
        plain = AESGCM(key).decrypt(nonce, ciphertext, header_line)
    except InvalidTag:
        raise click.ClickException("wrong passphrase, or the file was altered: nothing was written") from None
    values = json.loads(plain)
    if not isinstance(values, dict) or not all(isinstance(values.get(n), str) for n in SECRET_NAMES):
        raise click.ClickException("the decrypted file does not hold the secrets: nothing was written")
    return values


def _passphrase(new: bool) -> str:
    """From BACKUP_PASSPHRASE (scripts), else asked for (twice for a new file)."""
    value = os.environ.get(PASSPHRASE_ENV) or click.prompt(
        "Passphrase for the secrets file", hide_input=True, confirmation_prompt=new)
    if new and len(value) < MIN_PASSPHRASE:
        raise click.ClickException(f"the passphrase must have at least {MIN_PASSPHRASE} characters")
    return value


def _secrets_note(instance_path: str) -> str:
    where = os.path.join(instance_path, SECRETS_FILE)
    if os.path.exists(where):
        place = f"the generated secrets in {where}"
    else:
        place = f"the environment ({', '.join(SECRET_NAMES)})"
    return (f"the secrets are not in this backup: they are in {place}. Keep a copy of them separately "
            "(or back up with --with-secrets): without them the broker tokens in the backup (encrypted "
            "with TOKEN_ENCRYPTION_KEYS) cannot be decrypted and its API keys do not verify")


@click.group("backup", cls=AppGroup, invoke_without_command=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write the backup here (default: <instance>/backups/algobridge-<UTC time>.db or .dump).")
@click.option("--with-secrets", is_flag=True,
              help=f"Also write the secrets to <backup>{SECRETS_SUFFIX}, encrypted with a passphrase "
                   f"(asked for, or ${PASSPHRASE_ENV}).")
@with_appcontext
@click.pass_context
def backup_cli(ctx: click.Context, output: str | None, with_secrets: bool) -> None:
    """Back up the database while the application runs (SQLite online backup, or pg_dump -Fc).

    The secrets stay out of the backup unless --with-secrets. Restore: see "Backup and restore" in
    the README.
    """
    if ctx.invoked_subcommand is not None:
        return
    passphrase = _passphrase(new=True) if with_secrets else None  # asked before a long dump, not after
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
    if passphrase is None:
        click.echo(_secrets_note(current_app.instance_path))
        return
    secrets_path = target + SECRETS_SUFFIX
    values = {n: current_app.config[n] for n in SECRET_NAMES}  # what this server runs with, wherever from
    _write_private(secrets_path, encrypt_secrets(values, passphrase))
    click.echo(f"secrets written, encrypted with the passphrase: {secrets_path} (owner-only). Keep it with the "
               "backup and the passphrase apart from both; restore with `flask backup restore-secrets`")


@backup_cli.command("restore-secrets")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help=f"Write the secrets here (default: <instance>/{SECRETS_FILE}, which the embedded default reads).")
def restore_secrets(file: str, output: str | None) -> None:
    """Decrypt a secrets file written by `flask backup --with-secrets` into the instance folder.

    The passphrase is asked for, or read from $BACKUP_PASSPHRASE. A different secrets file already
    in place is kept beside it (secrets.json.replaced-<UTC time>). Stop the server first; start it after.
    """
    with open(file, "rb") as fh:
        values = decrypt_secrets(fh.read(), _passphrase(new=False))
    target = os.path.abspath(output or os.path.join(current_app.instance_path, SECRETS_FILE))
    if os.path.exists(target):
        with open(target, "rb") as fh:
            try:
                if json.load(fh) == values:
                    click.echo(f"{target} already holds these secrets: nothing to do")
                    return
            except ValueError:
                pass  # not JSON: kept aside below like any other
        aside = f"{target}.replaced-{_stamp()}"
        os.replace(target, aside)
        click.echo(f"the secrets that were in {target} are kept in {aside}")
    _write_private(target, json.dumps(values, indent=2).encode("utf-8"))
    click.echo(f"secrets restored to {target} (owner-only); start the server with the restored database")
    if output is None and not current_app.config.get("EMBEDDED_DATABASE"):
        click.echo("note: with DATABASE_URL set the secrets come from the environment, not from this file: "
                   f"set {', '.join(SECRET_NAMES)} from it")
