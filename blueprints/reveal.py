"""Shown once, after a redirect: a secret a form has just made (a new API key, a new webhook URL), carried from
the POST that made it to the one GET it redirects to, then dropped.

Every form POST answers with a redirect (POST/redirect/GET), so that reloading the page the browser lands on
repeats a harmless GET, never the POST. A secret that is shown once still has to reach that GET: it is kept in
the session under `KEY`, encrypted with the token vault's key (the session is a signed cookie, readable by its
holder: the value in it is ciphertext only the server can read), bound to the user who made it, for at most
`MAX_AGE` seconds; `take()` removes it whether or not it is still good. A reload of the page that showed it
finds nothing: the page then says the secret was shown once.
"""

from __future__ import annotations

import time
from typing import Any

from flask import current_app, session
from flask_login import current_user

KEY = "_reveal"
MAX_AGE = 300  # seconds between the POST and the GET that shows its secret


def _vault() -> Any:
    return current_app.extensions["algobridge.vault"]


def keep(kind: str, value: str, **context: Any) -> None:
    """Keep `value` (a secret of `kind`, e.g. "apikey") for the next page that asks for that kind.
    `context`: plain values shown with it (a key's name, a strategy's id)."""
    session[KEY] = {"kind": kind, "user": current_user.id, "at": time.time(),
                    "value": _vault().encrypt(value), "context": context}


def take(kind: str, **match: Any) -> tuple[str, dict[str, Any]] | None:
    """The secret kept by `keep(kind, ...)` for this user and its context, once, when its context holds every
    item of `match` (e.g. strategy_id=7); None when there is none (a reload, another kind or context, another
    user, or kept longer than MAX_AGE ago)."""
    kept = session.get(KEY)
    if not isinstance(kept, dict) or kept.get("kind") != kind:
        return None
    context = kept.get("context") if isinstance(kept.get("context"), dict) else {}
    if any(context.get(k) != v for k, v in match.items()):
        return None
    session.pop(KEY, None)
    if kept.get("user") != current_user.id or not isinstance(kept.get("at"), int | float):
        return None
    if not 0 <= time.time() - kept["at"] <= MAX_AGE:
        return None
    try:
        value = _vault().decrypt(kept["value"])
    except Exception:  # noqa: BLE001 - a key rotated away since, or a value altered: nothing to show
        return None
    return value, context
