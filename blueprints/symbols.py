"""`/symbols`: the master contract's import status, "download now" (admins) with live progress, and
a symbol search.

The download runs in a background thread of this process (with its own app context) and updates
the status row and the in-process progress; the page polls `/symbols/status.json` every second
(static/js/symbols.js). The connected broker's contract is downloaded through its adapter; the
paper broker has no contract of its own, so for it (or with no broker connected) the bundled
sample contract is loaded instead, which the page explains.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm

from blueprints.access import check_role
from database import db
from database.enums import Exchange, ImportState, Role
from services.accounts import broker_login
from services.market import contract_refresh, master_contract, symbol_index

log = logging.getLogger("algobridge.symbols")

symbols_bp = Blueprint("symbols", __name__, url_prefix="/symbols")

SAMPLE_BROKER = "sample"
SAMPLE_ROWS = master_contract.SAMPLE_ROWS
_downloads: dict[str, threading.Thread] = {}
_downloads_lock = threading.Lock()


class DownloadForm(FlaskForm):
    pass


@symbols_bp.before_request
def _signed_in():
    return check_role({Role.ADMIN, Role.TRADER, Role.VIEWER})


def _target() -> tuple[str, Any]:
    """(status name, active session or None): the connected live broker, or the sample contract."""
    active = broker_login.active_session(current_user.id)
    if active is None or active.broker == "paper":
        return SAMPLE_BROKER, None
    return active.broker, active


def _status_json(name: str) -> dict[str, Any]:
    s = master_contract.get_status(name)
    total, done = s["rows_total"] or 0, s["rows_done"] or 0
    percent = 100 if s["state"] == ImportState.DONE.value else (min(99, int(done * 100 / total)) if total else 0)
    out = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in s.items()}
    out["percent"] = percent
    out["running"] = s["state"] == ImportState.RUNNING.value
    return out


@symbols_bp.get("/", strict_slashes=False)
def index():
    name, active = _target()
    q = (request.args.get("q") or "").strip()[:64]
    exchange = (request.args.get("exchange") or "").strip().upper()
    exchange = exchange if exchange in Exchange.values() else ""
    results = symbol_index.search(q, exchange or None) if q else []
    return render_template(
        "symbols/index.html", target=name, connected=active.broker if active else None,
        status=_status_json(name), count=master_contract.symbol_count(), q=q, exchange=exchange,
        exchanges=Exchange.values(), results=results, form=DownloadForm(),
        is_admin=current_user.role == Role.ADMIN, sample_rows=SAMPLE_ROWS, refresh=contract_refresh.outcome(),
    )


@symbols_bp.get("/status.json")
def status_json():
    name = (request.args.get("broker") or "").strip()[:32] or _target()[0]
    return jsonify(_status_json(name))


@symbols_bp.post("/download")
def download():
    if current_user.role != Role.ADMIN:
        abort(403)
    if not DownloadForm().validate_on_submit():
        abort(400)
    name, active = _target()
    if _status_json(name)["running"] or _running(name):
        flash(f"A download for {name} is already running.", "warning")
        return redirect(url_for("symbols.index"))
    if active is not None:
        try:
            client = broker_login.broker(active.broker).session(broker_login.access_token(active))
        except Exception as exc:  # noqa: BLE001 - an ended session or a misconfigured broker: say so
            flash(f"Cannot download from {active.broker}: {exc}", "error")
            return redirect(url_for("symbols.index"))
        job = _broker_job(client, name)
    else:
        job = _sample_job()
    start_download(current_app._get_current_object(), name, job)
    flash(f"Download of the {name} contract started.", "info")
    return redirect(url_for("symbols.index"))


def _broker_job(client: Any, name: str):
    return lambda: master_contract.import_from_broker(client, broker=name)


def _sample_job():
    rows = SAMPLE_ROWS
    return lambda: master_contract.import_rows(master_contract.sample_rows(rows), broker=SAMPLE_BROKER,
                                               source="download now (sample contract)", rows_total=rows)


def _running(name: str) -> bool:
    with _downloads_lock:
        thread = _downloads.get(name)
        return thread is not None and thread.is_alive()


def start_download(app: Any, name: str, job: Any) -> threading.Thread:
    def run() -> None:
        with app.app_context():
            try:
                job()
            except master_contract.ContractImportError as exc:
                log.warning("master contract download for %s failed: %s", name, exc)
            except Exception:
                log.exception("master contract download for %s failed", name)
            finally:
                db.session.remove()

    thread = threading.Thread(target=run, name=f"algobridge-contract-{name}", daemon=True)
    with _downloads_lock:
        _downloads[name] = thread
    thread.start()
    return thread


def wait_for_downloads(timeout: float = 60.0) -> None:
    """Join the running downloads of this process (tests, shutdown)."""
    with _downloads_lock:
        threads = list(_downloads.values())
    for thread in threads:
        thread.join(timeout)
