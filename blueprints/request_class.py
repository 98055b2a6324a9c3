"""The application's request class: JSON bodies that cannot be parsed are "not JSON", whatever the reason.

Werkzeug's `get_json(silent=True)` turns a ValueError of the parser into None, but a body nested deeper
than the interpreter's recursion limit (`[[[[...]]]]`, a few kilobytes are enough) raises RecursionError
from the parser, which nothing catches: a 500. Here the parser's RecursionError becomes a ValueError,
so every caller of `request.get_json()` gets Werkzeug's own behaviour for bad JSON: None with
`silent=True` (cached like any other result, so a deep body is parsed once per request), else
`on_json_loading_failed` (a 400).

It lives with the blueprints because it is HTTP parsing, which is theirs alone (docs/architecture.md: blueprints
are "HTTP only"; services never see a request); app.py installs it as `app.request_class`.
"""

from __future__ import annotations

from typing import Any

from flask import Request, json


class _SafeJson:
    """A JSON provider (flask.json, or the app's `app.json` that Flask sets on each request) whose
    loads() raises ValueError, never RecursionError."""

    __slots__ = ("_provider",)

    def __init__(self, provider: Any) -> None:
        self._provider = provider

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return self._provider.loads(s, **kwargs)
        except RecursionError:
            raise ValueError("the JSON document is nested too deeply") from None

    def __getattr__(self, name: str) -> Any:  # dumps, response, ... as the provider has them
        return getattr(self._provider, name)


class AppRequest(Request):
    """Flask's Request whose JSON parsing fails as a ValueError for too-deep documents."""

    _safe_json: _SafeJson | None = None

    @property  # type: ignore[override]
    def json_module(self) -> Any:
        return self._safe_json or _SafeJson(json)

    @json_module.setter
    def json_module(self, provider: Any) -> None:  # Flask assigns app.json when the request starts
        self._safe_json = _SafeJson(provider)
