"""Sign-in throttles shared by every worker and host, and the client address they are keyed by.

- Per address: LOGIN_RATE_LIMIT (e.g. "5 per minute;25 per hour"), each limit a fixed window counted
  in the database (`database.session_db.hit`, one atomic statement), with or without Redis: N workers
  allow the limit once, not N times, and a Redis outage does not turn it back into a count per process.
- Per account: LOGIN_LOCKOUT_FAILURES failed sign-ins of one username within LOGIN_LOCKOUT_WINDOW
  minutes lock it for 1 minute, the next lockout 2, then 4, ... up to LOGIN_LOCKOUT_MAX minutes; the
  steps start again after a day without failures, and a successful sign-in clears them. Usernames
  that do not exist are counted and locked alike, so the answer never tells whether an account exists.
- The client address: X-Forwarded-For is believed only from the peers in TRUSTED_PROXIES (walking the
  chain from the right, past every trusted proxy); TRUST_PROXY_HEADERS alone keeps its old meaning,
  the last hop from any peer (`client_ip`).

Pure functions take the time as `now`; the counters are written in the caller's unit of work or one of
their own.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import limits
from flask import current_app

from database import session_db
from database.types import utcnow
from database.unit import unit_of_work

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

KEEP_FOR = dt.timedelta(days=1)  # counters untouched this long are deleted (windows and locks are shorter)
PURGE_EVERY = 3600.0  # seconds between two purges by one process
_next_purge = 0.0


# -- the client address ---------------------------------------------------------------------------
def parse_address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def is_trusted(address: Address, trusted: Sequence[Network]) -> bool:
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return any(address in net or (mapped is not None and mapped in net) for net in trusted)


def client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network] = (), *,
              trust_any_peer: bool = False) -> str:
    """The client's address from the connection's peer and its X-Forwarded-For header.

    With `trusted` proxies: the header is read only when the peer is one of them, from its right end
    (the entry the nearest proxy added) leftwards while the entries are trusted proxies too; the first
    other entry is the client. A malformed entry stops the walk at the last proxy believed. Without
    `trusted`, `trust_any_peer` (TRUST_PROXY_HEADERS) takes the last entry from any peer, as before;
    otherwise the header is ignored."""
    peer = (peer or "").strip() or "unknown"
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    if trusted:
        client, address = peer, parse_address(peer)
        for hop in reversed(hops):
            if address is None or not is_trusted(address, trusted):
                break
            address = parse_address(hop)
            if address is None:
                break
            client = str(address)
        return client
    if trust_any_peer and hops and parse_address(hops[-1]) is not None:
        return str(parse_address(hops[-1]))
    return peer


# -- per address ------------------------------------------------------------------------------------
@functools.cache
def parse_limits(text: str) -> tuple[tuple[int, int], ...]:
    """LOGIN_RATE_LIMIT as ((amount, window seconds), ...), shortest window first; ValueError if malformed."""
    items = limits.parse_many(text)
    if not items:
        raise ValueError(f"{text!r} has no limit")
    return tuple(sorted(((item.amount, item.get_expiry()) for item in items), key=lambda x: x[1]))


def admit_address(address: str, limit_text: str, *, now: dt.datetime | None = None) -> dt.datetime | None:
    """Count one sign-in attempt from `address` (one unit of work). None when it is within every limit;
    otherwise the time from which it will be (the end of the first window it exceeds)."""
    global _next_purge
    now = now or utcnow()
    with unit_of_work():
        if time.monotonic() >= _next_purge:
            _next_purge = time.monotonic() + PURGE_EVERY
            session_db.purge_throttles(now - KEEP_FOR - dt.timedelta(seconds=parse_limits(limit_text)[-1][1]))
        for amount, seconds in parse_limits(limit_text):
            hits, started, _ = session_db.hit(f"addr:{seconds}:{address}", now=now,
                                              window=dt.timedelta(seconds=seconds))
            if hits > amount:
                return started + dt.timedelta(seconds=seconds)
    return None


# -- per account --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LockoutPolicy:
    failures: int = 5  # 0: no lockout
    window: dt.timedelta = dt.timedelta(minutes=15)
    longest: dt.timedelta = dt.timedelta(minutes=60)
    first: dt.timedelta = dt.timedelta(minutes=1)

    @classmethod
    def from_config(cls, config: Any = None) -> LockoutPolicy:
        config = config if config is not None else current_app.config
        return cls(failures=int(config["LOGIN_LOCKOUT_FAILURES"]),
                   window=dt.timedelta(minutes=int(config["LOGIN_LOCKOUT_WINDOW"])),
                   longest=dt.timedelta(minutes=int(config["LOGIN_LOCKOUT_MAX"])))

    def lockout(self, previous: int) -> dt.timedelta:
        """How long the lockout after `previous` lockouts in a row lasts: first, doubled each time, capped."""
        return min(self.first * (2 ** min(previous, 20)), self.longest)


def _account_key(username: str) -> str:
    return f"user:{(username or '').strip().lower()[:64]}"


def account_locked(username: str, *, now: dt.datetime | None = None) -> dt.datetime | None:
    """Until when the username is locked (None: it is not)."""
    if not username:
        return None
    return session_db.locked_until(_account_key(username), now or utcnow())


def note_failure(username: str, policy: LockoutPolicy, *, now: dt.datetime | None = None) -> dt.datetime | None:
    """Count a failed sign-in of `username` (in the caller's unit of work); when it is one too many, lock
    the username and return until when."""
    if not username or policy.failures <= 0:
        return None
    now = now or utcnow()
    key = _account_key(username)
    with unit_of_work():
        hits, _, lockouts = session_db.hit(key, now=now, window=policy.window)
        if hits < policy.failures:
            return None
        until = now + policy.lockout(lockouts)
        session_db.lock(key, until=until, now=now)
    return until


def clear_account(username: str) -> None:
    """A successful sign-in (or a password reset by an administrator): the username's count and steps start
    again (in the caller's unit of work)."""
    if username:
        with unit_of_work():
            session_db.forget(_account_key(username))
