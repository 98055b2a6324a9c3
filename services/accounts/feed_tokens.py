"""Short-lived tokens with which a signed-in page authenticates to the WebSocket feed.

A browser has a session cookie, not an API key, and the feed runs in another process (often on another
port, so the cookie does not reach it). A page asks the web server for a token (GET /feed/token) and
sends it as `{"action": "authenticate", "session_token": ...}`. The token is the user's id signed with
SECRET_KEY under its own salt, so it is good for nothing else (a session cookie or a CSRF token cannot be
passed off as one, nor the other way round) and it expires within a minute: it only has to last until the
socket opens.
"""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeTimedSerializer

SALT = "algobridge-feed"


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def issue(user_id: int, secret_key: str) -> str:
    """A token naming `user_id`, for the feed's `authenticate`."""
    return _serializer(secret_key).dumps({"u": int(user_id)})


def verify(token: str, secret_key: str, max_age: int = 60) -> int | None:
    """The user id of a token issued at most `max_age` seconds ago, else None (forged, expired, malformed).

    Whether that user may still sign in (not disabled) is the caller's question."""
    if not isinstance(token, str) or not token or len(token) > 512:
        return None
    try:
        data = _serializer(secret_key).loads(token, max_age=max_age)
    except BadSignature:  # SignatureExpired is one
        return None
    user_id = data.get("u") if isinstance(data, dict) else None
    return user_id if isinstance(user_id, int) and not isinstance(user_id, bool) and user_id > 0 else None
