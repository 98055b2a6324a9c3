"""Who may see a view: the signed-in user's role, checked on the request.

`role_required(*roles)` decorates a view; `check_role(roles)` does the same from a blueprint's
`before_request`. Anonymous users go to the sign-in page; signed-in users without one of the roles get
a 403. The roles themselves are the accounts domain's (services.accounts.users.TRADE_ROLES, ...).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from flask import abort, current_app, request
from flask_login import current_user
from flask_login.config import EXEMPT_METHODS

from database.enums import Role

__all__ = ["check_role", "role_required"]

F = TypeVar("F", bound=Callable[..., Any])


def role_required(*roles: Role | str) -> Callable[[F], F]:
    """Allow a view to signed-in users with one of `roles`: anonymous users go to the sign-in page,
    others get 403. Trading and settings views use `role_required("admin", "trader")`."""
    if not roles:
        raise TypeError("role_required needs at least one role")
    allowed = frozenset(Role(r) for r in roles)

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            denied = check_role(allowed)
            if denied is not None:
                return denied
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def check_role(allowed: Collection[Role]) -> Any:
    """None when the current user may go on; otherwise the response to return (redirect to sign-in),
    or a 403 raised. Usable in a blueprint's before_request."""
    if request.method in EXEMPT_METHODS or current_app.config.get("LOGIN_DISABLED"):
        return None
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
    if current_user.role not in allowed:
        abort(403)
    return None
