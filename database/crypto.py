"""The token vault: encryption of broker tokens and other secrets at rest.

A `MultiFernet` built from `TOKEN_ENCRYPTION_KEYS` (comma-separated Fernet keys): the first key
encrypts, every key decrypts, so a key is rotated without downtime by putting a new key first,
running `flask secrets rotate` (which re-encrypts every `EncryptedText` column), then removing the
old key.

`EncryptedText`, the column type that encrypts with the vault, lives here beside it (database.types
exports it with the other column types): the type needs the vault, and key rotation needs the type.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Table, select, type_coerce, update
from sqlalchemy.engine import Connection
from sqlalchemy.types import Text, TypeDecorator

log = logging.getLogger("algobridge.crypto")


class VaultError(RuntimeError):
    """The vault is not configured, or a key is malformed."""


class TokenDecryptionError(VaultError):
    """A stored value cannot be decrypted with any configured key."""


def parse_keys(raw: str) -> list[bytes]:
    """Split and validate TOKEN_ENCRYPTION_KEYS; the message names the bad key by position."""
    keys = [k.strip() for k in (raw or "").split(",") if k.strip()]
    if not keys:
        raise VaultError("TOKEN_ENCRYPTION_KEYS is empty: set at least one Fernet key")
    for i, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError) as exc:
            raise VaultError(
                f"TOKEN_ENCRYPTION_KEYS key #{i} is not a Fernet key (32 url-safe base64-encoded bytes); "
                "generate one with `flask secrets generate-key`"
            ) from exc
    return [k.encode() for k in keys]


class Vault:
    def __init__(self, keys: list[bytes]):
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self.key_count = len(keys)

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeEncodeError) as exc:
            raise TokenDecryptionError(
                "a stored secret cannot be decrypted with any key in TOKEN_ENCRYPTION_KEYS; "
                "was a key removed before `flask secrets rotate` ran? Put the old key back (after the new one)."
            ) from exc

    def rotate(self, token: str) -> str:
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken as exc:
            raise TokenDecryptionError(
                "a stored secret cannot be decrypted with any key in TOKEN_ENCRYPTION_KEYS; rotation stopped"
            ) from exc


_vault: Vault | None = None
_lock = threading.Lock()


def configure(raw_keys: str) -> Vault:
    """Install the process-wide vault from a TOKEN_ENCRYPTION_KEYS value."""
    global _vault
    v = Vault(parse_keys(raw_keys))
    with _lock:
        _vault = v
    return v


def vault() -> Vault:
    if _vault is None:
        raise VaultError("the token vault is not configured (TOKEN_ENCRYPTION_KEYS); create the app first")
    return _vault


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


class EncryptedText(TypeDecorator):
    """Text encrypted with the token vault on write, decrypted on read.

    The database only ever holds Fernet tokens. Reading a value that no configured key can decrypt
    raises `TokenDecryptionError` with a message that says what to do.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return vault().encrypt(str(value))

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return vault().decrypt(value)


def encrypted_columns(tables: list[Table]) -> Iterator[tuple[Table, list[str]]]:
    """Every table with EncryptedText columns, and the names of those columns."""
    for table in tables:
        cols = [c.name for c in table.columns if isinstance(c.type, EncryptedText)]
        if cols:
            yield table, cols


def rotate_all(conn: Connection, tables: list[Table], batch: int = 500) -> dict[str, int]:
    """Re-encrypt every EncryptedText value under the first key. Returns rows rotated per table.

    Works on the raw ciphertext (type-coerced to Text) so plaintext never leaves this function.
    Runs inside the caller's transaction: either every value is rotated or none is.
    """
    v = vault()
    counts: dict[str, int] = {}
    for table, cols in encrypted_columns(tables):
        pk = list(table.primary_key.columns)[0]
        raw_cols = [type_coerce(table.c[c], Text).label(c) for c in cols]
        last: Any = None
        n = 0
        while True:
            q = select(pk, *raw_cols).order_by(pk).limit(batch)
            if last is not None:
                q = q.where(pk > last)
            rows = conn.execute(q).all()
            if not rows:
                break
            for row in rows:
                values = {c: v.rotate(getattr(row, c)) for c in cols if getattr(row, c) is not None}
                if values:
                    stmt = update(table).where(pk == row[0]).values(
                        {table.c[c]: type_coerce(val, Text) for c, val in values.items()}
                    )
                    conn.execute(stmt)
                    n += 1
            last = rows[-1][0]
        counts[table.name] = n
        log.info("rotated %s rows of %s", n, table.name)
    return counts
