"""Kept for the tests that import `make_user` from here: the one factory is tests.helpers.accounts."""

from tests.helpers.accounts import make_user, password_hash

__all__ = ["make_user", "password_hash"]
