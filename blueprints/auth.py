"""`/` (to the dashboard), `/setup` (first run), `/auth/login`, `/auth/logout`.

Also the web session's rules for the whole application, installed when this blueprint is
registered: Flask-Login's user loader (a disabled or re-passworded user loads as nobody, and so does
a cookie whose server-side session has ended: services.accounts.sessions), the daily session end at
SESSION_EXPIRY_TIME (exchange time), and a session cookie marked Secure whenever the request came
over HTTPS. Sign-in is limited per address and locked per username by services.accounts.login_guard,
in the database, so every worker shares the counts.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from blueprints import traffic, two_factor
from blueprints.access import role_required
from config import ConfigError
from database.types import utcnow
from extensions import client_address, limiter, login_manager
from services.accounts import broker_login, login_guard, sessions
from services.accounts import users as accounts
from services.accounts.users import AccountError, SetupClosedError

__all__ = ["PASSWORD_LENGTH", "auth_bp", "current_session_token", "login_address", "render_error",
           "resume_broker_session", "role_required", "start_session"]

log = logging.getLogger("algobridge.auth")

auth_bp = Blueprint("auth", __name__)

LOGIN_AT = "login_at"  # session key: when this web session signed in (ISO, UTC)
SESSION_TOKEN = "sid"  # noqa: S105 - session key: the token of the server-side session (accounts.sessions)


# -- application-wide session rules ------------------------------------------------------------------
class HttpsAwareSessionInterface(SecureCookieSessionInterface):
    """Mark the session cookie Secure when the request came over HTTPS (directly, or through a
    trusted proxy with TRUST_PROXY_HEADERS), or always when SESSION_COOKIE_SECURE is set; and
    SameSite=Lax unless configured otherwise.

    A global SESSION_COOKIE_SECURE=True would break the embedded default served on
    http://127.0.0.1 (the browser would drop the cookie), and False leaks it over plain HTTP when
    the same deployment is also reachable over HTTPS; deciding per request gets both right.
    """

    def get_cookie_samesite(self, app: Flask) -> str:
        # Flask's own default is None (no attribute), so a config.setdefault() cannot set it.
        return app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.config.get("SESSION_COOKIE_SECURE"):
            return True
        return has_request_context() and request.is_secure


@auth_bp.record_once
def _configure(state) -> None:
    app = state.app
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.user_loader(_load_principal)
    app.session_interface = HttpsAwareSessionInterface()
    _check_sign_in_settings(app)


def _check_sign_in_settings(app: Flask) -> None:
    try:
        login_guard.parse_limits(app.config["LOGIN_RATE_LIMIT"])
    except ValueError as exc:
        raise ConfigError(f"LOGIN_RATE_LIMIT={app.config['LOGIN_RATE_LIMIT']!r} is not a rate limit "
                          f"(e.g. '5 per minute;25 per hour'): {exc}") from None
    if app.config.get("TRUST_PROXY_HEADERS") and not app.config.get("TRUSTED_PROXIES"):
        log.warning("TRUST_PROXY_HEADERS is on without TRUSTED_PROXIES: X-Forwarded-For is believed from any "
                    "client that reaches this server directly; list your proxies in TRUSTED_PROXIES")


def _load_principal(session_id: str) -> accounts.AccountPrincipal | None:
    """Flask-Login's user loader: the account's principal, reported to the traffic log; nobody when the
    cookie's server-side session has ended (signed out, a new password, disabled) or never existed."""
    principal = accounts.load_principal(session_id)
    if principal is None or not sessions.is_live(session.get(SESSION_TOKEN), principal.id):
        return None
    traffic.note_signed_in(principal.id)
    return principal


def login_address() -> str:
    """The client's address for sign-in: its limits, lockout and records. X-Forwarded-For counts only from
    TRUSTED_PROXIES (or from anyone with TRUST_PROXY_HEADERS alone, as before), read from the connection's
    own peer even where ProxyFix already rewrote REMOTE_ADDR."""
    environ, config = request.environ, current_app.config
    peer = (environ.get("werkzeug.proxy_fix.orig") or {}).get("REMOTE_ADDR") or environ.get("REMOTE_ADDR")
    return login_guard.client_ip(peer, environ.get("HTTP_X_FORWARDED_FOR"), config["TRUSTED_PROXIES"],
                                 trust_any_peer=bool(config["TRUST_PROXY_HEADERS"]))


def current_session_token() -> str | None:
    """The token of this request's server-side session (for a use case that keeps it, e.g. a new password)."""
    token = session.get(SESSION_TOKEN)
    return token if isinstance(token, str) else None


@auth_bp.before_app_request
def _end_expired_session():
    """End a web session that is no longer valid: its user was disabled or given a new password, or
    it began before the last daily expiry (SESSION_EXPIRY_TIME, exchange time)."""
    if "_user_id" not in session or request.endpoint == "static":
        return None
    if not current_user.is_authenticated:
        logout_user()
        session.pop(LOGIN_AT, None)
        session.pop(SESSION_TOKEN, None)
        return None
    expiry_time, zone = accounts.expiry_settings()
    if accounts.session_expired(_login_at(), utcnow(), expiry_time, zone):
        log.info("session of %s ended at the daily expiry", current_user.username)
        sessions.end(session.pop(SESSION_TOKEN, None), sessions.EXPIRED)
        logout_user()
        session.pop(LOGIN_AT, None)
        flash(f"Your session ended at {expiry_time:%H:%M} ({zone}) as it does every day. Please sign in again.",
              "info")
        return None
    sessions.touch(session.get(SESSION_TOKEN))
    return None


def _login_at() -> dt.datetime | None:
    raw = session.get(LOGIN_AT)
    try:
        value = dt.datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    if value is None or value.tzinfo is None:
        return None
    return value


def start_session(user, *, keep_login_time: bool = False) -> None:
    """Sign `user` in to a fresh session (nothing from before sign-in is carried over).
    `keep_login_time` re-issues the current session (after a change of the user's own password)
    without moving its start, so it still ends at the same daily expiry, and keeps its server-side
    session; otherwise a new server-side session begins."""
    login_at = session.get(LOGIN_AT) if keep_login_time else None
    token = current_session_token() if keep_login_time else None
    session.clear()
    login_user(accounts.principal_for(user))
    session[LOGIN_AT] = login_at or utcnow().isoformat()
    session[SESSION_TOKEN] = token or sessions.begin(user.id, ip=login_address(),
                                                     user_agent=request.user_agent.string)


# -- error pages of this blueprint ------------------------------------------------------------------------
def render_error(code: int, title: str, message: str, **context):
    return render_template("auth/error.html", code=code, title=title, message=message, **context), code


@auth_bp.app_errorhandler(CSRFError)
def csrf_error(exc: CSRFError):
    """A form posted without a valid CSRF token: refused, on every blueprint's forms."""
    log.warning("CSRF check failed on %s %s: %s", request.method, request.path, exc.description)
    return render_error(400, "The form has expired",
                        "This form was missing its security token or it had expired. "
                        "Go back, reload the page and try again.")


@auth_bp.errorhandler(429)
def too_many_attempts(exc: HTTPException):
    current = limiter.current_limit
    reset_at = current.reset_at if current is not None else int(time.time()) + 60
    return _too_many_attempts(dt.datetime.fromtimestamp(reset_at, tz=dt.UTC))


def _retry_in(retry_at: dt.datetime) -> int:
    return max(1, math.ceil((retry_at - utcnow()).total_seconds()))


def _too_many_attempts(retry_at: dt.datetime):
    retry_in = _retry_in(retry_at)
    _, zone = accounts.expiry_settings()
    body, code = render_error(
        429, "Too many sign-in attempts",
        "There were too many sign-in attempts from your address.",
        retry_in=retry_in, retry_at=retry_at.astimezone(zone),
    )
    return body, code, {"Retry-After": str(retry_in)}


def _locked_words(retry_at: dt.datetime) -> str:
    """The lockout's message: the same for every username, existing or not."""
    _, zone = accounts.expiry_settings()
    minutes = math.ceil(_retry_in(retry_at) / 60)
    return (f"Too many failed sign-ins for this username. Try again after {retry_at.astimezone(zone):%H:%M:%S} "
            f"({zone}), in {minutes} minute{'' if minutes == 1 else 's'}.")


# -- forms --------------------------------------------------------------------------------------------------
PASSWORD_LENGTH = Length(
    min=accounts.MIN_PASSWORD_LENGTH, max=accounts.MAX_PASSWORD_LENGTH,
    message=f"The password must have at least {accounts.MIN_PASSWORD_LENGTH} characters "
            f"(and at most {accounts.MAX_PASSWORD_LENGTH}).",
)


class SetupForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[
        DataRequired(), PASSWORD_LENGTH])
    confirm = PasswordField("Repeat the password", validators=[
        DataRequired(), EqualTo("password", message="The passwords do not match.")])


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=accounts.MAX_PASSWORD_LENGTH)])


# -- views -----------------------------------------------------------------------------------------------------
@auth_bp.get("/")
def home():
    """The site's entry: setup on a fresh install, else the sign-in page or the dashboard."""
    if not accounts.any_user_exists():
        return redirect(url_for("auth.setup"))
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(url_for("dashboard.index"))


@auth_bp.route("/setup", methods=["GET", "POST"])
def setup():
    if accounts.any_user_exists():
        flash("Setup is complete. Sign in with your account.", "info")
        return redirect(url_for("auth.login"))
    form = SetupForm()
    if form.validate_on_submit():
        try:
            user = accounts.create_first_admin(form.username.data, form.password.data, ip=client_address())
        except SetupClosedError as exc:
            flash(str(exc), "info")
            return redirect(url_for("auth.login"))
        except AccountError as exc:
            flash(str(exc), "error")
        else:
            start_session(user)
            flash(f"Welcome, {user.username}. You are the administrator of this Algobridge.", "success")
            return redirect(url_for("auth.home"))
    return render_template("auth/setup.html", form=form)


def _over_address_limit(ip: str):
    """Count this sign-in attempt against LOGIN_RATE_LIMIT for `ip` (in the database: every worker shares
    it); the 429 page when over it, the refused attempt recorded like any other."""
    retry_at = login_guard.admit_address(ip, current_app.config["LOGIN_RATE_LIMIT"])
    if retry_at is None:
        return None
    try:
        accounts.record_rate_limited(request.form.get("username") or "", ip=ip, user_agent=request.user_agent.string)
    except Exception:  # a failure to record must not turn a 429 into a 500 (its unit rolled back)
        log.exception("could not record a rate-limited sign-in attempt")
    log.warning("sign-in rate limit reached from %s", ip)
    return _too_many_attempts(retry_at)


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site (no scheme, no host, no '//' or backslash tricks)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


@auth_bp.route("/auth/login", methods=["GET", "POST"])
def login():
    next_url = _safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("auth.home"))
    if request.method == "GET" and not accounts.any_user_exists():
        return redirect(url_for("auth.setup"))
    form = LoginForm()
    if request.method == "POST":
        ip, agent = login_address(), request.user_agent.string
        refused = _over_address_limit(ip)
        if refused is not None:
            return refused
        if not form.validate():
            accounts.record_invalid_form(form.username.data or "", ip=ip, user_agent=agent)
            flash("Enter your username and password.", "error")
        else:
            result = accounts.authenticate(form.username.data, form.password.data, ip=ip, user_agent=agent)
            if result.ok:  # signed in now, or once a two-factor code is given (blueprints.two_factor)
                return two_factor.password_accepted(result.user, next_url)
            if result.reason == accounts.REASON_LOCKED:
                flash(_locked_words(result.retry_at), "error")
                form.password.data = ""
                return (render_template("auth/login.html", form=form), 429,
                        {"Retry-After": str(_retry_in(result.retry_at))})
            if result.reason == accounts.REASON_DISABLED:
                flash("This account is disabled. Ask an administrator.", "error")
            else:
                flash("Invalid username or password.", "error")
                if result.retry_at is not None:
                    flash(_locked_words(result.retry_at), "error")
        form.password.data = ""
    return render_template("auth/login.html", form=form)


def resume_broker_session(user) -> None:
    """A broker session still valid from earlier today is picked up again, with no new broker
    login; one the broker no longer honours is marked expired. Never blocks the sign-in (the units
    of resume() roll back what they began)."""
    try:
        broker_login.resume(user)
    except Exception:
        log.exception("could not resume the broker session of %s", user.username)


@auth_bp.post("/auth/logout")
def logout():
    if current_user.is_authenticated:
        log.info("sign-out of %s", current_user.username)
    sessions.end(current_session_token(), sessions.LOGOUT)  # a copy of this cookie stops working too
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


# The two-factor pages (blueprints.two_factor) are nested here and sign in through the functions above.
auth_bp.register_blueprint(two_factor.pages(two_factor.SignIn(start_session, resume_broker_session, login_address)))
