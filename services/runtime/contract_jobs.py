"""The master contract's refresh wired to broker sessions (services.market.contract_refresh holds the logic; the
market domain cannot see the accounts domain, this layer sees both).

- `refresh_due(now)`: the scheduler's daily job; it opens the broker client through an active session of any
  user of the loaded contract's broker;
- `after_broker_login(row)`: registered in services.accounts.broker_login.AFTER_LOGIN when this module is
  imported (the scheduler imports it); after a login, a stale contract is downloaded on a thread of its own, so
  the login's answer does not wait for it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

from flask import current_app
from sqlalchemy import select

from database import db
from database.alert_db import Alert
from database.auth_db import BrokerSession
from database.enums import BrokerSessionStatus
from database.types import utcnow
from database.unit import unit_of_work
from services.accounts import broker_login
from services.market import contract_refresh

log = logging.getLogger("algobridge.symbols")

_threads: list[threading.Thread] = []
_threads_lock = threading.Lock()


def client_for(broker: str) -> Any:
    """A client of `broker` through the newest active session of any user, None when none is."""
    row = db.session.scalars(
        select(BrokerSession).where(BrokerSession.broker == broker, BrokerSession.status == BrokerSessionStatus.ACTIVE,
                                    BrokerSession.expires_at > utcnow())
        .order_by(BrokerSession.id.desc()).limit(1)).first()
    if row is None:
        return None
    return broker_login.broker(broker).session(row.access_token)


def refresh_due(now: dt.datetime | None = None) -> Any:
    """The scheduled job (services.runtime.scheduler)."""
    return contract_refresh.run_scheduled(client_for, now=now)


def _connected_elsewhere(broker: str, user_id: int) -> bool:
    """Whether another user has an active session of `broker` (whose contract is loaded)."""
    return db.session.scalars(
        select(BrokerSession.id).where(BrokerSession.broker == broker, BrokerSession.user_id != user_id,
                                       BrokerSession.status == BrokerSessionStatus.ACTIVE,
                                       BrokerSession.expires_at > utcnow()).limit(1)).first() is not None


def _keep_contract(loaded: str, broker: str) -> None:
    log.warning("the %s login left the %s master contract in place: users are connected to %s", broker, loaded, loaded)
    with unit_of_work():
        db.session.add(Alert(user_id=None, severity="warning", kind="contract_in_use",
                             title=f"{broker}'s master contract was not loaded",
                             message=f"A {broker} login did not replace the {loaded} master contract, which users "
                                     f"connected to {loaded} are trading on. Live calls to {broker} answer 409 until "
                                     f"an admin downloads its contract on the Symbols page (replacing {loaded}'s)."))


def after_broker_login(row: BrokerSession) -> threading.Thread | None:
    """After a committed broker login: when the automatic refresh is on, check and download on a thread."""
    if row.broker in contract_refresh.NO_CONTRACT or not contract_refresh.at_login_enabled():
        return None
    loaded = contract_refresh.loaded_broker()
    if loaded not in (None, row.broker) and loaded not in contract_refresh.NO_CONTRACT \
            and _connected_elsewhere(loaded, row.user_id):
        # One contract serves every user: replacing it would hand the other broker's users ids of this one.
        _keep_contract(loaded, row.broker)
        return None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    name, session_id = row.broker, row.id

    def open_client() -> Any:
        found = db.session.get(BrokerSession, session_id)
        if found is None or found.status != BrokerSessionStatus.ACTIVE:
            raise broker_login.BrokerLoginError(f"the {name} session ended before its contract was downloaded")
        return broker_login.broker(name).session(found.access_token)

    def run() -> None:
        with app.app_context():
            try:
                contract_refresh.refresh_at_login(name, open_client)
            except Exception:
                log.exception("the master contract refresh after a %s login failed", name)
            finally:
                db.session.remove()

    thread = threading.Thread(target=run, name=f"algobridge-contract-login-{name}", daemon=True)
    with _threads_lock:
        _threads[:] = [t for t in _threads if t.is_alive()]
        _threads.append(thread)
    thread.start()
    return thread


def wait_for_login_refreshes(timeout: float = 60.0) -> None:
    """Join the refreshes started by logins in this process (tests, shutdown)."""
    with _threads_lock:
        threads = list(_threads)
    for thread in threads:
        thread.join(timeout)


if after_broker_login not in broker_login.AFTER_LOGIN:
    broker_login.AFTER_LOGIN.append(after_broker_login)
