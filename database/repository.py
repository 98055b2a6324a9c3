"""A small generic repository over one model, and the errors of the data layer.

`Repository[Model]` covers the common queries (get, add, list with filters and keyset paging,
count, exists, delete). Database errors become `DuplicateError`, `ValidationError` or
`NotFoundError`, with a message a person can act on, on SQLite and PostgreSQL alike. Like every
function in `database/`, it adds and flushes; the caller's unit of work commits.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.exc import DataError, IntegrityError, StatementError
from sqlalchemy.orm import Session

from database import Base, db

M = TypeVar("M", bound=Base)


class RepositoryError(Exception):
    """Base of the data layer's errors."""


class NotFoundError(RepositoryError):
    pass


class DuplicateError(RepositoryError):
    pass


class ValidationError(RepositoryError):
    pass


# SQLSTATE classes (PostgreSQL) and message prefixes (SQLite) of constraint violations.
_PG_DUPLICATE = {"23505"}
_PG_INVALID = {"23502", "23503", "23514", "22001", "22003", "22007", "22P02"}
_SQLITE_DUPLICATE = ("UNIQUE constraint failed",)


def translate_error(exc: Exception) -> RepositoryError:
    """Map a database error to the repository's errors; the message keeps the constraint name."""
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    text = str(orig if orig is not None else exc).splitlines()[0]
    if isinstance(exc, StatementError) and isinstance(orig, LookupError | ValueError | TypeError):
        return ValidationError(text)
    if sqlstate in _PG_DUPLICATE or text.startswith(_SQLITE_DUPLICATE):
        return DuplicateError(text)
    if sqlstate in _PG_INVALID or isinstance(exc, IntegrityError | DataError):
        return ValidationError(text)
    return RepositoryError(text)


@dataclass(frozen=True)
class Page(Generic[M]):
    items: list[M]
    next_cursor: str | None  # pass back as `after` for the next page; None on the last page


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([v if isinstance(v, int | str | float) or v is None else str(v) for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError("invalid page cursor") from exc
    if not isinstance(values, list):
        raise ValidationError("invalid page cursor")
    return values


class Repository(Generic[M]):
    def __init__(self, model: type[M], session: Session | None = None):
        self.model = model
        self._session = session
        pk = list(model.__table__.primary_key.columns)
        if len(pk) != 1:
            raise TypeError(f"{model.__name__}: the repository needs a single-column primary key")
        self.pk = pk[0]

    @property
    def session(self) -> Session:
        return self._session if self._session is not None else db.session

    # -- reads ---------------------------------------------------------------------------------
    def _where(self, query: Select, filters: Mapping[str, Any] | None) -> Select:
        for name, value in (filters or {}).items():
            column = self.model.__table__.columns.get(name)
            if column is None:
                raise ValidationError(f"{self.model.__name__} has no field {name!r}")
            if isinstance(value, list | tuple | set | frozenset):
                query = query.where(column.in_(list(value)))
            elif value is None:
                query = query.where(column.is_(None))
            else:
                query = query.where(column == value)
        return query

    def get(self, ident: Any) -> M:
        obj = self.session.get(self.model, ident)
        if obj is None:
            raise NotFoundError(f"{self.model.__name__} {ident} not found")
        return obj

    def find(self, **filters: Any) -> M | None:
        return self.session.scalars(self._where(select(self.model), filters).limit(1)).first()

    def list(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        order_by: str | None = None,
        descending: bool = True,
        limit: int = 50,
        after: str | None = None,
    ) -> Page[M]:
        """One page ordered by `order_by` (default: the primary key), then the primary key.

        Keyset paging: `after` is the cursor of the previous page, so a deep page costs the same as
        the first one (an index seek, no OFFSET).
        """
        if limit < 1 or limit > 1000:
            raise ValidationError("limit must be between 1 and 1000")
        table = self.model.__table__
        key = self.pk if order_by is None else table.columns.get(order_by)
        if key is None:
            raise ValidationError(f"{self.model.__name__} has no field {order_by!r}")
        if key.nullable:
            # Keyset comparisons with NULL match nothing: paging would silently stop early.
            raise ValidationError(f"cannot page {self.model.__name__} by {order_by!r}: it may be empty")
        keys = [key] if key is self.pk else [key, self.pk]
        q = self._where(select(self.model), filters)
        if after is not None:
            values = decode_cursor(after)
            if len(values) != len(keys):
                raise ValidationError("invalid page cursor")
            values = [_coerce(k, v) for k, v in zip(keys, values, strict=True)]
            q = q.where(_keyset_after(keys, values, descending))
        q = q.order_by(*[k.desc() if descending else k.asc() for k in keys]).limit(limit + 1)
        rows = list(self.session.scalars(q))
        nxt = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            nxt = encode_cursor([getattr(last, k.key) for k in keys])
        return Page(rows, nxt)

    def count(self, filters: Mapping[str, Any] | None = None) -> int:
        q = self._where(select(func.count()).select_from(self.model), filters)
        return int(self.session.scalar(q) or 0)

    def exists(self, filters: Mapping[str, Any] | None = None) -> bool:
        q = self._where(select(self.pk), filters).limit(1)
        return self.session.execute(q).first() is not None

    # -- writes --------------------------------------------------------------------------------
    def add(self, obj: M) -> M:
        """Add and flush inside a savepoint, so a constraint error leaves the unit of work usable."""
        try:
            with self.session.begin_nested():
                self.session.add(obj)
        except (IntegrityError, DataError, StatementError) as exc:
            raise translate_error(exc) from exc
        return obj

    def create(self, **values: Any) -> M:
        return self.add(self.model(**values))

    def delete(self, obj_or_ident: Any) -> None:
        obj = obj_or_ident if isinstance(obj_or_ident, self.model) else self.get(obj_or_ident)
        try:
            with self.session.begin_nested():
                self.session.delete(obj)
        except (IntegrityError, DataError) as exc:
            raise translate_error(exc) from exc


def _coerce(column: Any, value: Any) -> Any:
    """Turn a cursor value back into the column's Python type (datetimes travel as ISO text)."""
    if value is None:
        return None

    python_type = None
    try:
        python_type = getattr(column.type, "impl", column.type).python_type
    except NotImplementedError:
        pass

    if python_type is dt.datetime and isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValidationError("invalid page cursor") from exc
    if python_type is int and not isinstance(value, int):
        raise ValidationError("invalid page cursor")
    return value


def _keyset_after(keys: list[Any], values: list[Any], descending: bool) -> Any:
    """(k1, k2) < (v1, v2) written out, which both SQLite and PostgreSQL plan as an index range."""
    clauses = []
    for i, key in enumerate(keys):
        eqs = [keys[j] == values[j] for j in range(i)]
        cmp = key < values[i] if descending else key > values[i]
        clauses.append(and_(*eqs, cmp))
    return or_(*clauses)
