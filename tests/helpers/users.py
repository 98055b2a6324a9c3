"""Small factories for tests: users with a password hashed once per process."""

from __future__ import annotations

import functools

from database import db
from database.user_db import User


@functools.lru_cache(maxsize=1)
def password_hash() -> str:
    from argon2 import PasswordHasher

    return PasswordHasher().hash("correct horse battery staple")


def make_user(username: str = "alice", role: str = "trader", **overrides) -> User:
    user = User(username=username, password_hash=password_hash(), role=role, **overrides)
    db.session.add(user)
    db.session.flush()
    return user
