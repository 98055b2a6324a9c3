"""The Telegram Bot API over plain HTTP (`requests`): `<TELEGRAM_API_URL>/bot<token>/<method>`, JSON in and out.

Every answer is `{"ok": true, "result": ...}` or `{"ok": false, "error_code": N, "description": "...",
"parameters": {"retry_after": S}}` (429: flood control, wait S seconds). Failures become `TelegramError`, with
the code, the description and `retry_after`; a network failure has no code. The token is part of every URL,
so no message here ever carries a URL or a `requests` exception's text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

__all__ = ["MAX_TEXT", "TelegramApi", "TelegramError"]

MAX_TEXT = 4096  # characters of a message's text (sendMessage)


class TelegramError(Exception):
    def __init__(self, method: str, description: str, code: int | None = None, retry_after: float | None = None):
        super().__init__(f"Telegram {method}: {code or 'network'} {description}")
        self.method = method
        self.description = description
        self.code = code
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Worth trying again: flood control, the server's own failures, the network. Not a refusal of the
        request itself (400 chat not found, 403 the bot was blocked, 401 a wrong token)."""
        return self.code is None or self.code == 429 or self.code >= 500


class TelegramApi:
    def __init__(self, token: str, base_url: str = "https://api.telegram.org", *, timeout: float = 10.0,
                 session: requests.Session | None = None) -> None:
        if not token:
            raise ValueError("a bot token is needed")
        self._prefix = f"{base_url.rstrip('/')}/bot{token}/"
        self.timeout = timeout
        # requests is imported here, not with the module: an app without a bot token never loads it (memory)
        import requests

        self._errors = requests.RequestException
        self.http = session or requests.Session()

    def call(self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        try:
            resp = self.http.post(self._prefix + method, json=params or {}, timeout=timeout or self.timeout)
        except self._errors as exc:  # its text names the URL, and the URL the token
            raise TelegramError(method, type(exc).__name__) from None
        try:
            body = resp.json()
        except ValueError:
            raise TelegramError(method, f"not JSON (HTTP {resp.status_code})", resp.status_code) from None
        if not isinstance(body, dict):
            raise TelegramError(method, f"not an object (HTTP {resp.status_code})", resp.status_code)
        if body.get("ok") is True:
            return body.get("result")
        params_ = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
        retry_after = params_.get("retry_after")
        code = body.get("error_code") if isinstance(body.get("error_code"), int) else resp.status_code
        raise TelegramError(method, str(body.get("description") or "failed")[:200], code,
                            float(retry_after) if isinstance(retry_after, int | float) else None)

    # -- the method used directly (the rest go through the outbox's `call`) -------------------------------
    def get_updates(self, offset: int | None, timeout: int) -> list[dict]:
        """Long polling: waits up to `timeout` seconds for updates at or after `offset` (which confirms the ones
        before it)."""
        params: dict[str, Any] = {"timeout": timeout, "allowed_updates": ["message", "callback_query"]}
        if offset is not None:
            params["offset"] = offset
        result = self.call("getUpdates", params, timeout=timeout + self.timeout)
        return [u for u in result if isinstance(u, dict)] if isinstance(result, list) else []
