"""`flask backup`: a consistent copy while the application writes, and the README's restore path works.

SQLite: restored by copying the file and opening it. PostgreSQL: restored with pg_restore into a fresh
database. Both: the row counts match the source, no transaction is torn (a writer commits rows in pairs
during the backup). The secrets stay out unless --with-secrets, which encrypts them with a passphrase
(restored by `flask backup restore-secrets`); every file is owner-only from its creation, whatever the umask.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import pathlib
import shutil
import sqlite3
import stat
import subprocess
import threading

import psycopg
import pytest
from sqlalchemy import func, select

from database import db
from database.auth_db import ApiKey
from database.settings_db import Setting
from database.user_db import User
from tests.helpers.accounts import make_user
from tests.helpers.api import load_symbols, post, raise_limits, user_with_key
from tests.helpers.databases import create_pg_database, drop_pg_database

PAIR_PREFIX = "backup-pair-"


@pytest.fixture
def data(app, client, monkeypatch):
    """Users, API keys and a few journaled orders; the counts the backup must hold at least."""
    raise_limits(app, monkeypatch)
    load_symbols(rows=200)
    user, _row, key = user_with_key("backer")
    for name in ("b1", "b2", "b3"):
        make_user(name)
    for action in ("BUY", "SELL", "BUY"):
        resp = post(client, "placeorder", {"apikey": key, "strategy": "Backup", "exchange": "NSE", "symbol": "INFY",
                                           "action": action, "quantity": 1})
        assert resp.status_code == 200, resp.get_json()
    db.session.rollback()
    return user.id


def _counts(conn_execute) -> dict[str, int]:
    return {t: conn_execute(f"SELECT count(*) FROM {t}") for t in ("users", "api_keys", "orders", "fills")}


class PairWriter(threading.Thread):
    """Commits two settings rows per transaction until stopped: a torn copy would hold an odd number."""

    def __init__(self, app, user_id: int):
        super().__init__(daemon=True)
        self.app, self.user_id, self.stop, self.commits = app, user_id, threading.Event(), 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.app.app_context():
                while not self.stop.is_set():
                    n = self.commits
                    db.session.add_all([Setting(user_id=self.user_id, key=f"{PAIR_PREFIX}{n}-{side}", value=n)
                                        for side in ("a", "b")])
                    db.session.commit()
                    self.commits += 1
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def __enter__(self):
        self.start()
        while self.commits < 5 and self.is_alive():  # writing before the backup starts
            self.stop.wait(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join(30)
        assert self.error is None, self.error


def _pairs(conn_execute) -> int:
    return conn_execute(f"SELECT count(*) FROM settings WHERE key LIKE '{PAIR_PREFIX}%'")  # noqa: S608


def _source_counts() -> dict[str, int]:
    db.session.rollback()
    return {"users": db.session.scalar(select(func.count()).select_from(User)),
            "api_keys": db.session.scalar(select(func.count()).select_from(ApiKey))}


def test_backup_while_writing_then_restore(app, runner, data, tmp_path):
    before = _source_counts()
    target = tmp_path / ("copy.db" if db.engine.dialect.name == "sqlite" else "copy.dump")
    with PairWriter(app, data) as writer:
        result = runner.invoke(args=["backup", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert f"backup written: {target}" in result.output
    assert writer.commits > 5
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert not os.path.exists(f"{target}.partial")

    if db.engine.dialect.name == "sqlite":
        assert "copying" in result.output
        assert "online backup" in result.output
        restored = tmp_path / "restored" / "algobridge.db"  # README: copy it into place, then start
        restored.parent.mkdir()
        shutil.copyfile(target, restored)
        conn = sqlite3.connect(restored)
        try:
            counts = _counts(lambda sql: conn.execute(sql).fetchone()[0])
            pairs = _pairs(lambda sql: conn.execute(sql).fetchone()[0])
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        finally:
            conn.close()
    else:
        assert "pg_dump -Fc" in result.output
        url = create_pg_database("algobridge_restore")
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        try:
            # README: createdb, then pg_restore --no-owner -d <url> <file>
            restore = subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", "-d", dsn, str(target)],
                                     capture_output=True, text=True, check=False)
            assert restore.returncode == 0, restore.stderr
            with psycopg.connect(dsn) as conn:
                counts = _counts(lambda sql: conn.execute(sql).fetchone()[0])
                pairs = _pairs(lambda sql: conn.execute(sql).fetchone()[0])
                revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        finally:
            drop_pg_database(url)

    from database import schema

    assert revision == schema.head_revision()
    assert counts["users"] == before["users"] == 4
    assert counts["api_keys"] == before["api_keys"] == 1
    assert counts["orders"] == 3
    assert counts["fills"] == 3
    assert pairs % 2 == 0, "a transaction was torn in the copy"
    assert 10 <= pairs <= 2 * writer.commits  # the writes before the backup are in it


@pytest.fixture
def permissive_umask():
    """umask 000: a file created with the default mode would be world-readable (and writable)."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _watch_creations(monkeypatch, folder) -> list[tuple[str, int]]:
    """The mode of every file the backup creates under `folder`, seen right after its creation:
    SQLite's connection to the copy, or pg_dump having written its file."""
    seen: list[tuple[str, int]] = []
    real_connect, real_run = sqlite3.connect, subprocess.run

    def connect(database, *args, **kwargs):
        conn = real_connect(database, *args, **kwargs)
        if str(database).startswith(str(folder)):
            seen.append((str(database), _mode(database)))
        return conn

    def run(args, *rest, **kwargs):
        result = real_run(args, *rest, **kwargs)
        if "--file" in args:
            path = args[args.index("--file") + 1]
            seen.append((path, _mode(path)))
        return result

    monkeypatch.setattr(sqlite3, "connect", connect)
    monkeypatch.setattr(subprocess, "run", run)
    return seen


def test_by_default_no_secrets_and_every_file_owner_only_from_its_creation(
        app, runner, tmp_path, monkeypatch, permissive_umask):
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    (tmp_path / "secrets.json").write_text('{"SECRET_KEY": "x"}')
    (tmp_path / "backups").mkdir(mode=0o755)  # left by an older version, or made by hand
    seen = _watch_creations(monkeypatch, tmp_path)
    result = runner.invoke(args=["backup"])
    assert result.exit_code == 0, result.output
    suffix = ".db" if db.engine.dialect.name == "sqlite" else ".dump"
    (backup,) = glob.glob(str(tmp_path / "backups" / f"algobridge-*{suffix}"))
    assert f"backup written: {backup}" in result.output
    assert os.listdir(tmp_path / "backups") == [os.path.basename(backup)]  # no secrets, no partial left
    assert f"not in this backup: they are in the generated secrets in {tmp_path / 'secrets.json'}" in result.output
    assert "cannot be decrypted" in result.output
    assert [path for path, _ in seen] == [f"{backup}.partial"]
    assert {mode for _, mode in seen} == {0o600}
    assert _mode(backup) == 0o600
    assert _mode(tmp_path / "backups") == 0o700


def test_with_secrets_they_are_encrypted_and_restore_with_the_passphrase(
        app, runner, tmp_path, monkeypatch, permissive_umask):
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    monkeypatch.setenv("BACKUP_PASSPHRASE", "correct horse battery staple")
    target = tmp_path / "b.bak"
    result = runner.invoke(args=["backup", "--with-secrets", "-o", str(target)])
    assert result.exit_code == 0, result.output
    encrypted = tmp_path / "b.bak.secrets.enc"
    assert f"secrets written, encrypted with the passphrase: {encrypted}" in result.output
    assert _mode(encrypted) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["b.bak", "b.bak.secrets.enc"]
    blob = encrypted.read_bytes()
    for name in ("SECRET_KEY", "API_KEY_PEPPER", "TOKEN_ENCRYPTION_KEYS"):
        assert app.config[name].encode() not in blob
    header = json.loads(blob.split(b"\n", 1)[0])
    assert (header["kdf"], header["cipher"]) == ("scrypt", "AES-256-GCM")
    assert header["n"] >= 2**17
    assert len(base64.b64decode(header["salt"])) == 16

    # a new machine: the first `flask` command generated secrets of its own, which are kept aside
    (tmp_path / "secrets.json").write_text('{"SECRET_KEY": "generated on the new machine"}')
    monkeypatch.delenv("BACKUP_PASSPHRASE")
    result = runner.invoke(args=["backup", "restore-secrets", str(encrypted)],
                           input="correct horse battery staple\n")
    assert result.exit_code == 0, result.output
    restored = tmp_path / "secrets.json"
    assert json.loads(restored.read_text()) == {n: app.config[n] for n in
                                                ("SECRET_KEY", "API_KEY_PEPPER", "TOKEN_ENCRYPTION_KEYS")}
    assert _mode(restored) == 0o600
    (aside,) = glob.glob(str(tmp_path / "secrets.json.replaced-*"))
    assert json.loads(pathlib.Path(aside).read_text()) == {"SECRET_KEY": "generated on the new machine"}
    assert f"secrets restored to {restored}" in result.output

    again = runner.invoke(args=["backup", "restore-secrets", str(encrypted)], input="correct horse battery staple\n")
    assert again.exit_code == 0, again.output
    assert "already holds these secrets" in again.output


def test_a_wrong_passphrase_or_an_altered_file_writes_nothing(app, runner, tmp_path, monkeypatch):
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    monkeypatch.setenv("BACKUP_PASSPHRASE", "the right passphrase")
    assert runner.invoke(args=["backup", "--with-secrets", "-o", str(tmp_path / "b.bak")]).exit_code == 0
    encrypted = tmp_path / "b.bak.secrets.enc"
    before = sorted(os.listdir(tmp_path))

    monkeypatch.setenv("BACKUP_PASSPHRASE", "a wrong passphrase")
    result = runner.invoke(args=["backup", "restore-secrets", str(encrypted)])
    assert result.exit_code != 0
    assert "wrong passphrase" in result.output
    assert sorted(os.listdir(tmp_path)) == before

    # the header is authenticated: lowering the scrypt cost in it is noticed, even with the right passphrase
    monkeypatch.setenv("BACKUP_PASSPHRASE", "the right passphrase")
    header, body = encrypted.read_bytes().split(b"\n", 1)
    altered = tmp_path / "altered.enc"
    altered.write_bytes(json.dumps({**json.loads(header), "n": 2**14}, sort_keys=True).encode() + b"\n" + body)
    result = runner.invoke(args=["backup", "restore-secrets", str(altered)])
    assert result.exit_code != 0
    assert "the file was altered" in result.output
    assert not (tmp_path / "secrets.json").exists()

    result = runner.invoke(args=["backup", "restore-secrets", str(tmp_path / "b.bak")])
    assert result.exit_code != 0
    assert "not a secrets file" in result.output


def test_the_passphrase_is_asked_twice_and_must_be_long_enough(app, runner, tmp_path, monkeypatch):
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    monkeypatch.delenv("BACKUP_PASSPHRASE", raising=False)
    result = runner.invoke(args=["backup", "--with-secrets", "-o", str(tmp_path / "b.bak")],
                           input="a long passphrase\na different one\n")
    assert result.exit_code != 0
    assert "do not match" in result.output
    assert os.listdir(tmp_path) == []  # asked before the backup: nothing half done

    result = runner.invoke(args=["backup", "--with-secrets", "-o", str(tmp_path / "b.bak")], input="short\nshort\n")
    assert result.exit_code != 0
    assert "at least 12 characters" in result.output
    assert os.listdir(tmp_path) == []

    result = runner.invoke(args=["backup", "--with-secrets", "-o", str(tmp_path / "b.bak")],
                           input="a long passphrase\na long passphrase\n")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path)) == ["b.bak", "b.bak.secrets.enc"]


def test_without_a_generated_secrets_file_the_note_names_the_keys(app, runner, tmp_path, monkeypatch):
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    result = runner.invoke(args=["backup", "-o", str(tmp_path / "b.bak")])
    assert result.exit_code == 0, result.output
    assert "not in this backup: they are in the environment (SECRET_KEY, API_KEY_PEPPER, TOKEN_ENCRYPTION_KEYS)" \
        in result.output
    assert os.listdir(tmp_path) == ["b.bak"]


def test_a_missing_pg_dump_is_a_clear_error(app, runner, tmp_path, monkeypatch):
    if db.engine.dialect.name != "postgresql":
        result = runner.invoke(args=["backup", "-o", str(tmp_path / "b.db")])
        assert result.exit_code == 0  # SQLite needs no external tool
        return
    from cli import backup

    monkeypatch.setattr(backup.shutil, "which", lambda _name: None)
    result = runner.invoke(args=["backup", "-o", str(tmp_path / "b.dump")])
    assert result.exit_code != 0
    assert "pg_dump was not found" in result.output
    assert "postgresql-client" in result.output
    assert not os.path.exists(tmp_path / "b.dump")
