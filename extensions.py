"""Flask extensions, created once and bound to the application in create_app() (init_app)."""

from __future__ import annotations

from flask import request
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_wtf import CSRFProtect


def client_address() -> str:
    """The client's address for rate limits and logs. Proxy headers are trusted only when
    TRUST_PROXY_HEADERS is on (ProxyFix is then installed and request.remote_addr is the client)."""
    return request.remote_addr or "unknown"


login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=client_address, default_limits=[], headers_enabled=True)
