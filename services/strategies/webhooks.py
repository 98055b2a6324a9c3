"""Strategy and Chartink alerts into orders, placed as the strategy's owner.

A strategy alert is `{"symbol", "action", "position_size"?}` (OpenAlgo's strategy webhook; an optional
`"exchange"` picks between mappings of one symbol on two exchanges). A Chartink alert is Chartink's
scan payload (`stocks`, `trigger_prices`, `triggered_at`, `scan_name`, `scan_url`, `alert_name`,
`webhook_url`); its action is the first keyword of BUY, SELL, SHORT, COVER found in the alert name
(else the scan name), case-insensitive, as OpenAlgo documents:

    BUY -> buy (enter or add to a long)       SELL  -> close the long (nothing when flat)
    SHORT -> sell (enter or add to a short)   COVER -> close the short (nothing when flat)

Modes (OpenAlgo semantics): LONG takes BUY to open or add, SELL to close the long; SHORT mirrors it
(SELL opens, BUY covers); BOTH takes both. With `position_size`, the alert names the net position
the strategy wants (TradingView's `{{strategy.position_size}}`) and the order is a smart order for
the difference; without it, a BUY or SELL entry trades the mapping's quantity and product. An alert
never moves the position against its own action (a BUY never sells): when the position already is
where the alert wants it, nothing is placed and the answer says so.

Trading hours (intraday strategies, exchange time): entries from the start time until the end time,
exits until the square-off time.

Nothing is placed for a strategy that is inactive (400), deleted, or whose owner's account is disabled
(403): checked when the alert arrives and again before every order (strategies.order_refusal, a
database read, so a change made in any process holds at the next order).

Every call that reaches a known strategy records a `signals` row (one per stock for Chartink) with
the payload, the outcome (accepted or rejected) and its message; orders placed for it carry its id.
Three units of work per order: the signal is recorded in a unit of its own before the order is
placed (so an alert is never lost, whatever happens to its order), the order service's call is
its own unit, and the signal's outcome is written in one more. A refused call is recorded in a
unit of its own.

Logs, as for /api/v1 (services.logs.recording, through the background writer): `record_call()` queues
one `api_logs` row per webhook call (api_type "webhook:strategy" or "webhook:chartink") and one
`order_latency` row per order the call sent to the order service. The webhook id is the call's
credential: it is replaced by "***" wherever it appears in the logged body (Chartink repeats it in
`webhook_url`), and secret-named keys are dropped as for the API.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import current_app
from sqlalchemy import select

import config as config_module
from database import db
from database.enums import Action, Mode, Platform, PriceType, SignalSource, SignalStatus, StrategyMode
from database.order_db import Signal
from database.strategy_db import Strategy, StrategySymbolMapping
from database.unit import unit_of_work
from database.user_db import User
from services.logs import recording as observability
from services.strategies import strategy as strategies
from services.trading import orders, risk, venues
from vocabulary import CASH_EXCHANGES

log = logging.getLogger("algobridge.webhooks")

MAX_STOCKS = 100
MAX_POSITION = 10_000_000
# A Chartink stock mapped on several exchanges is traded on the first of these it is mapped on (NSE, then BSE).
CASH_PREFERENCE: tuple[str, ...] = tuple(e.value for e in CASH_EXCHANGES)

#: Chartink keywords in the order they are looked for: (keyword, action, is_exit, side).
CHARTINK_KEYWORDS: tuple[tuple[str, str, bool, str], ...] = (
    ("BUY", Action.BUY.value, False, "long"),
    ("SELL", Action.SELL.value, True, "long"),
    ("SHORT", Action.SELL.value, False, "short"),
    ("COVER", Action.BUY.value, True, "short"),
)


@dataclass(frozen=True)
class Execution:
    """One call to the order service made for an alert, timed for its `order_latency` row. Times are
    time.perf_counter() readings; `broker_ms` is the broker's share (paper engine or HTTP)."""

    symbol: str
    started: float
    ended: float
    mode: str | None
    broker: str | None
    broker_ms: float
    orderid: str | None
    accepted: bool
    error: str | None


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    user_id: int | None = None  # the strategy's owner, once the webhook id is known
    executions: tuple[Execution, ...] = ()


class Refused(Exception):  # noqa: N818 - a refusal with its HTTP answer, not a programming error
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def now() -> dt.datetime:
    """The current time (tests replace it)."""
    return dt.datetime.now(dt.UTC)


def exchange_time(at: dt.datetime | None = None) -> dt.time:
    zone = config_module.exchange_tz(current_app.config)
    return (at or now()).astimezone(zone).time()


# -- what an alert asks for -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    action: str  # BUY or SELL
    is_exit: bool
    target: int | None = None  # a net position to reach (smart order); None: trade the mapping's quantity


@dataclass
class _Target:
    """A mapping resolved for one symbol, as plain values (no ORM object crosses a commit)."""

    symbol: str
    exchange: str
    quantity: int
    product: str


@dataclass
class _Outcome:
    symbol: str | None
    status: int
    message: str
    accepted: bool
    orderid: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    execution: Execution | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"symbol": self.symbol, "status": "success" if self.accepted else "error",
                               "message": self.message}
        if self.orderid:
            out["orderid"] = self.orderid
        return out


def _parse_position_size(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise Refused("position_size must be a whole number.")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise Refused("position_size must be a whole number.") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise Refused("position_size must be a whole number.")
    if abs(number) > MAX_POSITION:
        raise Refused(f"position_size must be between -{MAX_POSITION:,} and {MAX_POSITION:,}.")
    return int(number)


def strategy_plan(mode: str, action: str, position_size: int | None) -> Plan:
    """The order an alert asks for, under the strategy's mode (OpenAlgo's LONG/SHORT/BOTH rules)."""
    mode = StrategyMode(mode)
    if position_size is None:
        if mode == StrategyMode.LONG and action == Action.SELL:
            return Plan(action, True, 0)  # SELL closes the long
        if mode == StrategyMode.SHORT and action == Action.BUY:
            return Plan(action, True, 0)  # BUY covers the short
        return Plan(action, False)
    if mode == StrategyMode.LONG and position_size < 0:
        raise Refused("position_size cannot be negative for a LONG strategy (it never goes short).")
    if mode == StrategyMode.SHORT and position_size > 0:
        raise Refused("position_size cannot be positive for a SHORT strategy (it never goes long): "
                      "send the short position as a negative number.")
    reducing = position_size == 0 or (action == Action.BUY and position_size < 0) or (
        action == Action.SELL and position_size > 0)
    return Plan(action, reducing, position_size)


def chartink_plan(mode: str, alert_name: str, scan_name: str) -> tuple[str, Plan]:
    for text in (alert_name, scan_name):
        upper = (text or "").upper()
        for keyword, action, is_exit, side in CHARTINK_KEYWORDS:
            if keyword in upper:
                mode = StrategyMode(mode)
                if (mode == StrategyMode.LONG and side == "short") or (mode == StrategyMode.SHORT and side == "long"):
                    raise Refused(f"{keyword} alerts are not allowed for a {mode.value}-mode strategy.")
                return keyword, Plan(action, is_exit, 0 if is_exit else None)
    raise Refused("No action keyword (BUY, SELL, SHORT or COVER) in the alert name or the scan name.")


# -- the units of work -----------------------------------------------------------------------------------------
def _signal(strategy: Strategy, source: SignalSource, payload: Any, **values: Any) -> Signal:
    row = Signal(user_id=strategy.user_id, strategy_id=strategy.id, source=source,
                 payload=payload if isinstance(payload, dict) else {"body": payload},
                 status=SignalStatus.RECEIVED, **values)
    db.session.add(row)
    return row


def _finish(signal_id: int, outcome: _Outcome) -> None:
    """Record the outcome of a signal's order, in a unit of its own."""
    with unit_of_work():
        row = db.session.get(Signal, signal_id)
        if row is not None:
            row.status = SignalStatus.ACCEPTED if outcome.accepted else SignalStatus.REJECTED
            row.message = outcome.message[:2000]


def _reject_call(strategy: Strategy, source: SignalSource, payload: Any, message: str, status: int = 400,
                 **values: Any) -> Reply:
    """Record a refused call (one signal, in a unit of its own) and answer it."""
    name, sid, user_id = strategy.name, strategy.id, strategy.user_id
    try:
        with unit_of_work():
            row = _signal(strategy, source, payload, **values)
            row.status, row.message = SignalStatus.REJECTED, message[:2000]
    except Exception:  # the answer does not depend on the record
        log.exception("could not record a refused %s signal of strategy %s", source.value, sid)
    log.info("%s alert for strategy %r refused: %s", source.value, name, message)
    return Reply(status, {"status": "error", "message": message}, user_id)


def _find_mapping(strategy_id: int, symbol: str, exchange: str | None, prefer: tuple[str, ...] = ()) -> _Target:
    rows = [m for m in strategies.mappings(strategy_id) if m.symbol.upper() == symbol.upper()]
    if exchange:
        rows = [m for m in rows if str(m.exchange) == exchange.upper()]
    if not rows:
        where = f" on {exchange.upper()}" if exchange else ""
        raise Refused(f"Symbol {symbol}{where} is not mapped in this strategy.")
    if len(rows) > 1:
        preferred = [m for e in prefer for m in rows if str(m.exchange) == e]
        if not preferred:
            raise Refused(f"Symbol {symbol} is mapped on several exchanges "
                          f"({', '.join(sorted(str(m.exchange) for m in rows))}): add \"exchange\" to the alert.")
        rows = preferred[:1]
    m: StrategySymbolMapping = rows[0]
    return _Target(m.symbol, str(m.exchange), int(m.quantity), str(m.product))


def _execute(strategy_id: int, user_id: int, strategy_name: str, signal_id: int, target: _Target, plan: Plan,
             venue: venues.Venue | None = None) -> _Outcome:
    """Place the order a plan asks for (at `venue`, by default the user's), timed
    (`_Outcome.execution`); never raises for a refusal of the order service. Nothing is placed when the
    strategy was deactivated or deleted, or its owner disabled, since the alert was checked."""
    refusal = strategies.order_refusal(strategy_id)
    if refusal is not None:
        return _Outcome(target.symbol, *refusal, False)
    started = time.perf_counter()
    broker: list[Any] = []  # the Placed, when an order reached the order service's broker
    outcome = _place(user_id, strategy_name, signal_id, target, plan, broker, venue)
    placed = broker[0] if broker else None
    outcome.execution = Execution(
        symbol=target.symbol, started=started, ended=time.perf_counter(),
        mode=placed.mode if placed else None, broker=placed.broker if placed else None,
        broker_ms=float(placed.broker_ms) if placed else 0.0, orderid=outcome.orderid,
        accepted=outcome.accepted, error=None if outcome.accepted else outcome.message)
    return outcome


def _place(user_id: int, strategy_name: str, signal_id: int, target: _Target, plan: Plan,
           placed_out: list[Any], venue: venues.Venue | None = None) -> _Outcome:
    """Each call to the order service is a unit of its own (and commits itself)."""
    symbol = target.symbol
    try:
        if venue is None:
            venue = venues.venue_for(user_id)
        if plan.target is None:
            inp = orders.OrderInput(strategy=strategy_name, exchange=target.exchange, symbol=symbol,
                                    action=plan.action, quantity=target.quantity, pricetype=PriceType.MARKET.value,
                                    product=target.product)
            placed = orders.place_order(venue, inp, signal_id=signal_id)
            placed_out.append(placed)
        else:
            current = int(orders.open_position(venue, symbol, target.exchange, target.product))
            wanted = plan.target
            if (plan.action == Action.BUY and wanted <= current) or (plan.action == Action.SELL and wanted >= current):
                if plan.is_exit and wanted == 0:
                    side = "long" if plan.action == Action.SELL else "short"
                    message = f"No open {side} position in {symbol}: nothing to close."
                elif wanted == current:
                    message = f"No order for {symbol}: the position ({current}) is already where the alert wants it."
                else:
                    message = (f"No order for {symbol}: a {plan.action} alert never "
                               f"{'sells' if plan.action == Action.BUY else 'buys'} (position {current}, "
                               f"wanted {wanted}).")
                return _Outcome(symbol, 200, message, True)
            # quantity 0 when going flat: OpenAlgo's smart order trades `quantity` when it finds the
            # position already flat, and a close must never open the other way.
            inp = orders.OrderInput(strategy=strategy_name, exchange=target.exchange, symbol=symbol,
                                    action=plan.action, quantity=abs(wanted - current) if wanted else 0,
                                    pricetype=PriceType.MARKET.value, product=target.product)
            placed = orders.place_smart_order(venue, inp, wanted, signal_id=signal_id)
            if placed is None:
                return _Outcome(symbol, 200, f"No order for {symbol}: positions already matched.", True)
            placed_out.append(placed)
    except risk.Queued as exc:  # held for approval (issue #19): accepted, placed once approved
        return _Outcome(symbol, 200, exc.message, True, None, {"pending_order_id": exc.approval_id})
    except orders.OrderError as exc:  # a rejected order too: it is journaled, then raised
        return _Outcome(symbol, exc.status, exc.message, False)
    return _Outcome(symbol, 200, f"Order queued successfully for {symbol}", True, placed.orderid,
                    {"mode": placed.mode})


# -- the two webhooks --------------------------------------------------------------------------------------------
def _check_may_trade(strategy: Strategy) -> None:
    """Refused (403) when the owner is disabled, (400) when the strategy is inactive."""
    refusal = strategies.order_refusal(strategy.id)
    if refusal is not None:
        status, message = refusal
        raise Refused(message, status)


def _check_hours(strategy: Strategy, plan: Plan) -> None:
    refusal = strategies.hours_refusal(strategy, exchange_time(), is_exit=plan.is_exit)
    if refusal:
        raise Refused(refusal)


def _plain(value: str, name: str) -> str:
    """`value` when it is text a database column can hold: no NUL (PostgreSQL refuses it), no lone
    surrogate (not encodable as UTF-8); both can come from JSON escapes ("\\u0000", "\\ud800")."""
    if "\x00" in value:
        raise Refused(f"{name} must not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Refused(f"{name} is not valid text (it holds a lone surrogate).") from None
    return value


def _required(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise Refused(f"Missing field: {name}.")
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise Refused(f"{name} must be a string.")
    return _plain(str(value).strip(), name)


def strategy_alert(webhook_id: str, payload: Any) -> Reply:
    """`POST /strategy/webhook/<webhook_id>`."""
    strategy = strategies.get_by_webhook(webhook_id)
    if strategy is None:
        return Reply(404, {"status": "error", "message": "Unknown webhook."})
    return _strategy_alert(strategy, payload)


def _strategy_alert(strategy: Strategy, payload: Any, venue: venues.Venue | None = None) -> Reply:
    """A strategy alert for a known strategy, placed at `venue` (default: its owner's)."""
    source = SignalSource.STRATEGY
    values: dict[str, Any] = {}
    try:
        _check_may_trade(strategy)
        if not isinstance(payload, dict):
            raise Refused("The body must be a JSON object: {\"symbol\", \"action\", \"position_size\"?}.")
        symbol = _required(payload, "symbol").upper()
        exchange = None
        if ":" in symbol:  # "NSE:RELIANCE" ({{exchange}}:{{ticker}})
            exchange, _, symbol = symbol.partition(":")
            exchange, symbol = exchange.strip(), symbol.strip()  # " nse : reliance " too
        values["symbol"] = symbol[:64]
        action = _required(payload, "action").upper()
        if action not in (Action.BUY.value, Action.SELL.value):
            raise Refused(f"action must be BUY or SELL, not {action!r}.")
        values["action"] = Action(action)
        position_size = _parse_position_size(payload.get("position_size"))
        values["position_size"] = position_size
        if payload.get("exchange"):
            exchange = _plain(str(payload["exchange"]).strip().upper(), "exchange")
        plan = strategy_plan(str(strategy.mode), action, position_size)
        _check_hours(strategy, plan)
        target = _find_mapping(strategy.id, symbol, exchange)
        values["exchange"] = target.exchange
    except Refused as exc:
        return _reject_call(strategy, source, payload, exc.message, exc.status, **values)

    user_id, name, strategy_id = strategy.user_id, strategy.name, strategy.id
    with unit_of_work():  # the alert, recorded before its order is placed
        row = _signal(strategy, source, payload, **values)
        db.session.flush()
        signal_id = row.id
    try:
        outcome = _execute(strategy_id, user_id, name, signal_id, target, plan, venue)
    except Exception:
        log.exception("webhook order for strategy %r (%s) failed", name, target.symbol)
        outcome = _Outcome(target.symbol, 500, "The order could not be placed: internal error.", False)
    _finish(signal_id, outcome)
    log.info("strategy %r alert %s %s: %s", name, plan.action, target.symbol, outcome.message)
    executions = (outcome.execution,) if outcome.execution else ()
    if outcome.accepted:
        body: dict[str, Any] = {"status": "success", "message": outcome.message}
        if outcome.orderid:
            body["orderid"] = outcome.orderid
        return Reply(200, body, user_id, executions)
    return Reply(outcome.status, {"status": "error", "message": outcome.message}, user_id, executions)


def _stocks(payload: dict[str, Any]) -> list[str]:
    raw = payload.get("stocks")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise Refused("Missing field: stocks.")
    items = raw if isinstance(raw, list) else str(raw).split(",")
    stocks: list[str] = []
    for item in items:
        s = _plain(str(item).strip().upper(), "stocks")
        if s and s not in stocks:
            stocks.append(s)
    if not stocks:
        raise Refused("Missing field: stocks.")
    if len(stocks) > MAX_STOCKS:
        raise Refused(f"Too many stocks in one alert ({len(stocks)}; at most {MAX_STOCKS}).")
    return stocks


def chartink_alert(webhook_id: str, payload: Any) -> Reply:
    """`POST /chartink/webhook/<webhook_id>`: one order per mapped stock of the scan."""
    strategy = strategies.get_by_webhook(webhook_id)
    if strategy is None:
        return Reply(404, {"status": "error", "message": "Unknown webhook."})
    return _chartink_alert(strategy, payload)


def _chartink_alert(strategy: Strategy, payload: Any, venue: venues.Venue | None = None) -> Reply:
    """A Chartink alert for a known strategy, placed at `venue` (default: its owner's)."""
    source = SignalSource.CHARTINK
    try:
        _check_may_trade(strategy)
        if not isinstance(payload, dict):
            raise Refused("The body must be Chartink's JSON alert (stocks, scan_name, alert_name, ...).")
        stocks = _stocks(payload)
        keyword, plan = chartink_plan(str(strategy.mode), str(payload.get("alert_name") or ""),
                                      str(payload.get("scan_name") or ""))
        _check_hours(strategy, plan)
    except Refused as exc:
        return _reject_call(strategy, source, payload, exc.message, exc.status)

    user_id, name, strategy_id = strategy.user_id, strategy.name, strategy.id
    # Resolve every stock first; then record one signal per stock, all in one unit, before any order.
    resolved: list[tuple[str, _Target | None, str | None]] = []
    for stock in stocks:
        try:
            target: _Target | None = _find_mapping(strategy_id, stock, None, prefer=CASH_PREFERENCE)
            refusal = None
        except Refused as exc:
            target, refusal = None, exc.message
        resolved.append((stock, target, refusal))
    with unit_of_work():
        rows: list[Signal] = []
        for stock, target, refusal in resolved:
            row = _signal(strategy, source, payload, symbol=stock[:64], action=Action(plan.action),
                          exchange=target.exchange if target else None)
            if refusal:
                row.status, row.message = SignalStatus.REJECTED, refusal
            rows.append(row)
        db.session.flush()
        jobs = [(row.id, target, refusal, stock) for row, (stock, target, refusal) in zip(rows, resolved, strict=True)]

    outcomes: list[_Outcome] = []
    for signal_id, target, refusal, stock in jobs:
        if target is None:
            outcomes.append(_Outcome(stock, 400, refusal or "not mapped", False))
            continue
        try:
            outcome = _execute(strategy_id, user_id, name, signal_id, target, plan, venue)
        except Exception:
            log.exception("chartink order for strategy %r (%s) failed", name, stock)
            outcome = _Outcome(stock, 500, "The order could not be placed: internal error.", False)
        _finish(signal_id, outcome)
        outcomes.append(outcome)

    placed = sum(1 for o in outcomes if o.accepted and o.orderid)
    accepted = sum(1 for o in outcomes if o.accepted)
    message = f"{keyword} alert: {placed} of {len(stocks)} order(s) queued"
    skipped = accepted - placed
    if skipped:
        message += f", {skipped} with nothing to do"
    rejected = len(outcomes) - accepted
    if rejected:
        message += f", {rejected} refused"
    log.info("chartink strategy %r: %s", name, message)
    body = {"status": "success" if accepted else "error", "message": message,
            "results": [o.as_dict() for o in outcomes]}
    executions = tuple(o.execution for o in outcomes if o.execution)
    if accepted:
        return Reply(200, body, user_id, executions)
    statuses = {o.status for o in outcomes}
    return Reply(statuses.pop() if len(statuses) == 1 else 400, body, user_id, executions)


# -- the test alert of a strategy's page ---------------------------------------------------------------------------
def sample_alert(strategy: Strategy) -> dict[str, Any] | None:
    """The alert a strategy's page sends as a test: an entry for its first mapped symbol, in the shape its
    platform sends (Chartink's scan payload, else the strategy alert); None when nothing is mapped yet."""
    mapped = strategies.mappings(strategy.id)
    if not mapped:
        return None
    first = mapped[0]
    short = str(strategy.mode) == StrategyMode.SHORT.value
    if strategy.platform == Platform.CHARTINK:
        return {"stocks": first.symbol, "trigger_prices": "0", "triggered_at": "test",
                "scan_name": "Algobridge test alert", "scan_url": "test",
                "alert_name": "Test SHORT" if short else "Test BUY"}
    body: dict[str, Any] = {"symbol": first.symbol, "exchange": str(first.exchange),
                            "action": Action.SELL.value if short else Action.BUY.value}
    if str(strategy.mode) == StrategyMode.BOTH.value:
        body["position_size"] = int(first.quantity)
    return body


def send_test_alert(user_id: int, strategy_id: int) -> tuple[dict[str, Any] | None, Reply]:
    """Send `sample_alert` of the user's strategy through the webhook's own path (checks, mapping, hours, the
    signal and its order), always in analyze mode, whatever the owner's mode: (the alert sent, the answer).
    Raises strategies.StrategyNotFoundError for another user's strategy or an unknown id."""
    strategy = strategies.get_strategy(user_id, strategy_id)
    payload = sample_alert(strategy)
    if payload is None:
        return None, Reply(400, {"status": "error", "message": "Map a symbol to this strategy first: the test alert "
                                                              "trades its first mapped symbol."}, user_id)
    venue = venues.Venue(user_id, Mode.ANALYZE, venues.PAPER)
    if strategy.platform == Platform.CHARTINK:
        return payload, _chartink_alert(strategy, payload, venue)
    return payload, _strategy_alert(strategy, payload, venue)


# -- logs ------------------------------------------------------------------------------------------------------------
def _hide(value: Any, secret: str) -> Any:
    """`value` with every occurrence of `secret` in its strings (keys too) replaced by "***"."""
    if isinstance(value, str):
        return value.replace(secret, "***") if secret in value else value
    if isinstance(value, dict):
        return {_hide(k, secret): _hide(v, secret) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hide(v, secret) for v in value]
    return value


def record_call(kind: str, webhook_id: str, payload: Any, reply: Reply | None, *, status: int,
                response_body: Any, started: float, ended: float, response_ms: float,
                client_ip: str | None) -> None:
    """Queue the logs of one webhook call (`kind` "strategy" or "chartink"): its `api_logs` row and an
    `order_latency` row per order sent. `started`/`ended` are time.perf_counter() readings of the
    request's start and of its response being ready; `reply` is None when the call never reached
    the service (rate limited, failed). Never raises."""
    try:
        api_type = f"webhook:{kind}"
        user_id = reply.user_id if reply else None
        executions = reply.executions if reply else ()
        modes = {e.mode for e in executions if e.mode}
        mode = modes.pop() if len(modes) == 1 else None
        if mode is None and user_id is not None:
            mode = venues.mode_label(user_id)
        request_body = payload if isinstance(payload, dict | list) or payload is None else {"body": payload}
        if len(webhook_id or "") >= 8 and request_body is not None:  # a shorter id is never a real one
            request_body = _hide(request_body, webhook_id)
        total_ms = (ended - started) * 1000
        observability.log_api_call(api_type, user_id, mode, request_body, response_body, status, total_ms,
                                   client_ip)
        for e in executions:
            # Measured from the request's start: what the alert waited for, its order's share of the
            # response included (Chartink's orders go one after the other).
            observability.log_order_latency(
                user_id=user_id, endpoint=api_type, mode=e.mode or mode, broker=e.broker or (
                    venues.PAPER if (e.mode or mode) == Mode.ANALYZE else None),
                orderid=e.orderid, symbol=e.symbol, validation_ms=(e.started - started) * 1000,
                broker_ms=e.broker_ms, response_ms=response_ms,
                total_ms=(e.ended - started) * 1000 + response_ms, is_success=e.accepted, error=e.error)
    except Exception:  # noqa: BLE001 - logging must never fail the call
        log.exception("could not log the %s webhook call", kind)


# -- intraday square-off -----------------------------------------------------------------------------------------------
def _squareoffs_between(strategy: Strategy, since: dt.datetime, until: dt.datetime, zone: dt.tzinfo) -> bool:
    at = strategy.squareoff_time
    if not strategy.is_intraday or at is None:
        return False
    day = since.astimezone(zone).date()
    while day <= until.astimezone(zone).date():
        moment = dt.datetime.combine(day, at, tzinfo=zone)
        if since < moment <= until:
            return True
        day += dt.timedelta(days=1)
    return False


def squareoff_due(since: dt.datetime, until: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Close the mapped positions of every active intraday strategy of an enabled user whose square-off
    time (exchange time) falls in (`since`, `until`]. For a scheduler that calls it every minute or so
    with the time of its previous run. Each mapping gets a smart order to a flat position (nothing when
    already flat) and a signal recording the outcome. Returns one result per mapping.

    A disabled owner's strategies are skipped, like inactive ones: a disabled account places nothing
    through its strategies, and at a live broker an order in its name is an act of an account the
    admin stopped (its broker session may be why). Its MIS positions are still closed at the exchange's
    square-off: by the broker's own auto square-off (live), and by the analyze-mode square-off
    (services.trading.paper.account), which only reduces risk on the paper book and sends nothing out.
    Whoever disables an account with open CNC/NRML positions closes them at the broker."""
    until = until or now()
    zone = config_module.exchange_tz(current_app.config)
    due = [s for s in db.session.scalars(
        select(Strategy).join(User, User.id == Strategy.user_id)
        .where(Strategy.is_active.is_(True), Strategy.is_intraday.is_(True), User.is_active.is_(True))
    ) if _squareoffs_between(s, since, until, zone)]
    results: list[dict[str, Any]] = []
    for strategy in due:
        source = SignalSource.CHARTINK if strategy.platform == Platform.CHARTINK else SignalSource.STRATEGY
        user_id, name, strategy_id = strategy.user_id, strategy.name, strategy.id
        with unit_of_work():  # the strategy's square-off signals, recorded before any order
            work = []
            for m in strategies.mappings(strategy.id):
                row = _signal(strategy, source, {"squareoff": strategy.squareoff_time.strftime("%H:%M")},
                              symbol=m.symbol, exchange=m.exchange)
                work.append((row, _Target(m.symbol, str(m.exchange), int(m.quantity), str(m.product))))
            db.session.flush()
            jobs = [(row.id, target) for row, target in work]
        for signal_id, target in jobs:
            outcome = _squareoff_one(strategy_id, user_id, name, signal_id, target)
            _finish(signal_id, outcome)
            results.append({"strategy": name, **outcome.as_dict()})
    if results:
        log.info("intraday square-off: %d mapping(s) of %d strategies", len(results), len(due))
    return results


def _squareoff_one(strategy_id: int, user_id: int, strategy_name: str, signal_id: int, target: _Target) -> _Outcome:
    try:
        venue = venues.venue_for(user_id)
        current = int(orders.open_position(venue, target.symbol, target.exchange, target.product))
        if current == 0:
            return _Outcome(target.symbol, 200, f"Square-off: no open position in {target.symbol}.", True)
        plan = Plan(Action.SELL.value if current > 0 else Action.BUY.value, True, 0)
        return _execute(strategy_id, user_id, strategy_name, signal_id, target, plan, venue)
    except Exception:
        log.exception("square-off of %s for strategy %r failed", target.symbol, strategy_name)
        return _Outcome(target.symbol, 500, "Square-off failed: internal error.", False)
