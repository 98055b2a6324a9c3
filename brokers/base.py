"""The broker interface: what every adapter implements, and the plain values that cross it.

An adapter (`Broker`) knows how to log a user in at its broker and how to open a `BrokerClient` for
an access token. Both speak only in the dataclasses below: symbols and exchanges are the broker's own
(the service maps OpenAlgo symbols through the master contract before and after), prices are
`Decimal`, times are timezone-aware. Adapters never read the environment and never touch the
database: services hand them their settings and tokens, and persist what they return.

Every failure that comes from the broker, or from the way to it, is raised as a `BrokerError` with the
broker's message, the HTTP status when there was one, and a `kind` the service can act on (a "token"
error means the stored session is dead and the user has to log in again).
"""

from __future__ import annotations

import datetime as dt
import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

# Our values (actions, price types, products, order statuses) are the trading vocabulary's, as the
# REST API and the database spell them.
from vocabulary import ACTIONS, DEFAULT_EXCHANGE_TIMEZONE, PRICE_TYPES, PRODUCTS, OrderStatus

# The default of the EXCHANGE_TIMEZONE setting. Brokers never read the configuration: a time a broker
# sends without a zone is read in the zone its adapter passes (the broker's documented zone, e.g. Kite's
# IST, or the EXCHANGE_TIMEZONE setting handed in through `config_keys`); this is only the default.
DEFAULT_EXCHANGE_TZ = ZoneInfo(DEFAULT_EXCHANGE_TIMEZONE)

LoginKind = Literal["redirect", "form", "none"]
OrderStatusValue = OrderStatus


class ErrorKind(enum.StrEnum):
    """What went wrong, coarsely enough for a service to decide what to do next."""

    TOKEN = "token"  # noqa: S105 - a category name: the session is expired or invalid, log in again
    INPUT = "input"  # the broker refused the parameters
    ORDER = "order"  # the broker refused the order (margin, holdings, state of the order, ...)
    PERMISSION = "permission"  # the account may not do this
    RATE_LIMIT = "rate_limit"  # too many requests; try again later
    NETWORK = "network"  # the broker, or its exchange link, could not be reached
    CONFIG = "config"  # the adapter is missing settings, or does not exist
    UNSUPPORTED = "unsupported"  # this adapter does not offer the operation
    BROKER = "broker"  # anything else the broker reported, or an answer we could not read


class BrokerError(Exception):
    """A failure at or on the way to the broker. `str(error)` is the broker's message."""

    def __init__(self, message: str, *, status: int | None = None, kind: str = ErrorKind.BROKER):
        super().__init__(message)
        self.message = message
        self.status = status
        self.kind = ErrorKind(kind)

    @property
    def is_session_error(self) -> bool:
        """True when the access token is no longer valid and the session should be marked expired."""
        return self.kind is ErrorKind.TOKEN

    def __repr__(self) -> str:
        return f"BrokerError({self.message!r}, status={self.status!r}, kind={self.kind.value!r})"


def time_zone(value: str | dt.tzinfo) -> dt.tzinfo:
    """A zone from a setting: a zone name (e.g. the EXCHANGE_TIMEZONE setting) or a tzinfo."""
    if isinstance(value, dt.tzinfo):
        return value
    try:
        return ZoneInfo(str(value))
    except (ValueError, LookupError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise BrokerError(f"{value!r} is not a time zone name", kind=ErrorKind.CONFIG) from exc


def to_decimal(value: Any, default: Decimal = Decimal(0)) -> Decimal:
    """A Decimal from what a broker sends: numbers, numeric strings, None or ""."""
    if value is None or value == "":
        return default
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    try:
        # str() first, so 0.1 becomes Decimal("0.1") rather than its binary expansion.
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    if not number.is_finite():
        raise ValueError(f"not a number: {value!r}")
    return number


def exchange_time(value: Any, tz: dt.tzinfo = DEFAULT_EXCHANGE_TZ) -> dt.datetime | None:
    """An aware datetime from a broker's timestamp; naive values are taken as times in `tz` (the
    zone the broker sends its times in)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.strip())
    if not isinstance(value, dt.datetime):
        raise ValueError(f"not a timestamp: {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=tz)
    return value


def next_daily_expiry(
    moment: dt.datetime, at: dt.time = dt.time(6, 0), tz: dt.tzinfo = DEFAULT_EXCHANGE_TZ
) -> dt.datetime:
    """The first `at` (wall time in `tz`) strictly after `moment`, e.g. when a daily broker session ends.

    Indian brokers flush every session at a fixed time each morning (Kite: 06:00 IST), so a token
    issued at 05:59 lives one minute and one issued at 06:01 lives almost a day.
    """
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    local = moment.astimezone(tz)
    expiry = dt.datetime.combine(local.date(), at, tzinfo=tz)
    if expiry <= local:
        expiry = dt.datetime.combine(local.date() + dt.timedelta(days=1), at, tzinfo=tz)
    # Through UTC and back: a wall time a DST change skips becomes a real instant.
    return expiry.astimezone(dt.UTC).astimezone(tz)


# -- login -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginResult:
    """A broker session: what the service stores (the token encrypted) after a login."""

    access_token: str = field(repr=False)
    broker_user_id: str
    user_name: str
    expires_at: dt.datetime
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.access_token:
            raise ValueError("access_token is empty")
        if self.expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class LoginField:
    """One field of a form login (client id, PIN, TOTP, ...)."""

    name: str
    label: str
    kind: Literal["text", "password", "totp"] = "text"
    required: bool = True


@dataclass(frozen=True, slots=True)
class BrokerProfile:
    broker_user_id: str
    user_name: str
    email: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# -- orders and books ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order in the broker's symbol and exchange, with our codes for everything else."""

    symbol: str
    exchange: str
    action: str
    quantity: int
    pricetype: str = "MARKET"
    product: str = "MIS"
    price: Decimal = Decimal(0)
    trigger_price: Decimal = Decimal(0)
    disclosed_quantity: int = 0
    tag: str | None = None
    # The instrument's master-contract token: brokers that address instruments by id (Angel One's
    # symboltoken, Dhan's securityId) need it; brokers that go by symbol ignore it.
    token: str = ""

    def __post_init__(self) -> None:
        _check_order_codes(self)
        for name in ("quantity", "disclosed_quantity"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, not {value!r}")
        if self.quantity == 0:
            raise ValueError("quantity must be positive")


def _check_order_codes(order: Any) -> None:
    """An order's codes upper-cased and checked, its prices as Decimals, non-negative (OrderRequest, MarginOrder).
    A malformed order is a bug in the caller (services validate user input first), so these are ValueErrors, not
    BrokerErrors."""
    set_ = object.__setattr__
    for name in ("action", "product", "pricetype"):
        set_(order, name, str(getattr(order, name)).upper())
    set_(order, "price", to_decimal(order.price))
    set_(order, "trigger_price", to_decimal(order.trigger_price))
    if not order.symbol or not order.exchange:
        raise ValueError("symbol and exchange are required")
    if order.action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, not {order.action!r}")
    if order.pricetype not in PRICE_TYPES:
        raise ValueError(f"pricetype must be one of {PRICE_TYPES}, not {order.pricetype!r}")
    if order.product not in PRODUCTS:
        raise ValueError(f"product must be one of {PRODUCTS}, not {order.product!r}")
    if order.price < 0 or order.trigger_price < 0:
        raise ValueError("price and trigger_price must not be negative")


@dataclass(frozen=True, slots=True)
class OrderResult:
    orderid: str


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    orderid: str
    symbol: str
    exchange: str
    action: str
    quantity: int
    filled_quantity: int
    price: Decimal
    average_price: Decimal
    trigger_price: Decimal
    pricetype: str
    product: str
    status: OrderStatusValue
    status_message: str | None
    timestamp: dt.datetime | None
    broker_status: str = ""  # the broker's own status, e.g. "OPEN PENDING", for display
    tag: str | None = None

    @property
    def pending_quantity(self) -> int:
        return max(self.quantity - self.filled_quantity, 0) if self.status == "open" else 0


@dataclass(frozen=True, slots=True)
class BrokerTrade:
    tradeid: str
    orderid: str
    symbol: str
    exchange: str
    action: str
    quantity: int
    average_price: Decimal
    product: str
    timestamp: dt.datetime | None

    @property
    def trade_value(self) -> Decimal:
        return self.average_price * self.quantity


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    symbol: str
    exchange: str
    product: str
    quantity: int  # signed net quantity: negative is short
    average_price: Decimal
    ltp: Decimal
    pnl: Decimal
    realised_pnl: Decimal = Decimal(0)
    unrealised_pnl: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class BrokerHolding:
    symbol: str
    exchange: str
    product: str
    quantity: int
    average_price: Decimal
    ltp: Decimal
    pnl: Decimal

    @property
    def invested_value(self) -> Decimal:
        return self.average_price * self.quantity

    @property
    def current_value(self) -> Decimal:
        return self.ltp * self.quantity

    @property
    def pnl_percent(self) -> Decimal:
        invested = self.invested_value
        return (self.pnl / invested * 100) if invested else Decimal(0)


@dataclass(frozen=True, slots=True)
class BrokerFunds:
    availablecash: Decimal
    collateral: Decimal
    m2mrealized: Decimal
    m2munrealized: Decimal
    utiliseddebits: Decimal


@dataclass(frozen=True, slots=True)
class DepthLevel:
    """One price level of the order book: the resting quantity at `price`, in `orders` orders."""

    price: Decimal
    quantity: int
    orders: int = 0


@dataclass(frozen=True, slots=True)
class BrokerQuote:
    open: Decimal
    high: Decimal
    low: Decimal
    ltp: Decimal
    ask: Decimal
    bid: Decimal
    prev_close: Decimal
    volume: int
    oi: int
    timestamp: dt.datetime | None = None
    ltq: int = 0  # the last trade's quantity
    total_buy_quantity: int = 0  # all pending buy quantity, not only the five levels shown
    total_sell_quantity: int = 0
    # Best first, up to five a side; levels the broker sends empty are left out.
    bids: tuple[DepthLevel, ...] = ()
    asks: tuple[DepthLevel, ...] = ()
    upper_circuit: Decimal | None = None
    lower_circuit: Decimal | None = None


@dataclass(frozen=True, slots=True)
class BrokerCandle:
    """One candle of the broker's history; `timestamp` is its start, timezone-aware."""

    timestamp: dt.datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    oi: int = 0

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            raise ValueError("a candle's timestamp must be timezone-aware")


@dataclass(frozen=True, slots=True)
class MarginOrder:
    """One order of a basket whose margin is asked for: the broker's symbol and exchange, our codes."""

    exchange: str
    symbol: str
    action: str
    quantity: int
    product: str
    pricetype: str
    price: Decimal = Decimal(0)
    trigger_price: Decimal = Decimal(0)
    token: str = ""  # the master-contract token, as OrderRequest's

    def __post_init__(self) -> None:
        _check_order_codes(self)
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int) or self.quantity <= 0:
            raise ValueError(f"quantity must be a positive int, not {self.quantity!r}")


@dataclass(frozen=True, slots=True)
class BrokerMargin:
    """The margin a basket needs, after the benefit the broker grants for hedged legs (`benefit`:
    what the legs would need one by one, less `total`)."""

    total: Decimal
    span: Decimal
    exposure: Decimal
    option_premium: Decimal = Decimal(0)
    benefit: Decimal = Decimal(0)


class StreamMode(enum.IntEnum):
    """How much of an instrument a stream sends: OpenAlgo's feed modes."""

    LTP = 1  # the last price (and, where the broker has it, the last trade's time)
    QUOTE = 2  # plus the day's OHLC, volume, average price, total bid/ask quantity and open interest
    DEPTH = 3  # plus five levels of market depth a side (and the circuit limits, where sent)


STREAM_STATUSES = ("connected", "reconnecting", "closed")


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamTick:
    """One update of one instrument from a broker's stream, keyed by the broker's instrument token.

    `mode` says which fields the broker filled (a field the broker did not send keeps its default):
    LTP ticks carry `ltp` (and `ltt` where the broker sends it); QUOTE ticks the quote fields too;
    DEPTH ticks the book as well. `close` is the previous day's close. `timestamp` is the exchange's
    time of the update, or when it arrived if the broker sends none.
    """

    token: str
    ltp: Decimal
    timestamp: dt.datetime
    mode: StreamMode = StreamMode.LTP
    ltq: int = 0
    ltt: dt.datetime | None = None
    volume: int = 0
    average_price: Decimal = Decimal(0)
    open: Decimal = Decimal(0)
    high: Decimal = Decimal(0)
    low: Decimal = Decimal(0)
    close: Decimal = Decimal(0)
    oi: int = 0
    total_buy_quantity: int = 0
    total_sell_quantity: int = 0
    upper_circuit: Decimal | None = None
    lower_circuit: Decimal | None = None
    # Best first, up to five a side; levels the broker sends empty are left out.
    bids: tuple[DepthLevel, ...] = ()
    asks: tuple[DepthLevel, ...] = ()

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None or (self.ltt is not None and self.ltt.tzinfo is None):
            raise ValueError("a tick's times must be timezone-aware")


class BrokerStream(ABC):
    """A live market-data stream of one broker session, opened by `BrokerClient.stream`.

    The stream keeps its subscriptions itself: after a drop it reconnects with backoff and subscribes
    everything again, reporting each step through `on_status`. Its methods may be called from any
    thread and do not wait for the broker; ticks and statuses arrive on the stream's own thread, so a
    callback must be quick (hand the value over to its consumer, e.g. `loop.call_soon_threadsafe`).
    """

    @abstractmethod
    def subscribe(self, tokens: list[str], mode: int) -> None:
        """Stream these instrument tokens in `mode` (a StreamMode); a token already streamed is
        switched to `mode`. Raises BrokerError (INPUT) for a token the broker cannot stream, or for
        more instruments than one connection of the broker carries."""

    @abstractmethod
    def unsubscribe(self, tokens: list[str]) -> None:
        """Stop streaming these tokens; tokens not streamed are ignored."""

    @abstractmethod
    def close(self) -> None:
        """Disconnect for good (no reconnect); `on_status("closed", ...)` follows. Idempotent."""


def check_history_range(start: dt.datetime, end: dt.datetime) -> None:
    """What every adapter's `history` checks first: aware times (ValueError: a bug of the caller) in
    order (a 400 INPUT BrokerError: a range the user asked for)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if start > end:
        raise BrokerError("The history range ends before it starts", status=400, kind=ErrorKind.INPUT)


def split_range(start: dt.datetime, end: dt.datetime, span: dt.timedelta) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """[start, end] cut into consecutive pieces no longer than `span`, for brokers that cap the range
    of one history request. Pieces do not overlap: each starts a second after the last one ended
    (brokers take whole seconds and include both ends)."""
    step = dt.timedelta(seconds=1)
    if span <= step:
        raise ValueError("span must be longer than a second")
    while start <= end:
        stop = min(start + span - step, end)
        yield start, stop
        start = stop + step


def merge_candles(batches: Iterable[Iterable[BrokerCandle]]) -> list[BrokerCandle]:
    """Candles of several requests as one series, oldest first, one per timestamp (the later
    request's candle wins: it is the fresher of the two)."""
    by_time = {candle.timestamp: candle for batch in batches for candle in batch}
    return [by_time[moment] for moment in sorted(by_time)]


# -- the interface ---------------------------------------------------------------------------------


class BrokerClient(ABC):
    """Calls made on behalf of one logged-in session (one access token)."""

    name: ClassVar[str]  # the broker's name, as its Broker's

    @abstractmethod
    def profile(self) -> BrokerProfile:
        """The account behind the token; a cheap way to check that the session is still alive."""

    @abstractmethod
    def place_order(self, order: OrderRequest) -> OrderResult: ...

    @abstractmethod
    def modify_order(self, orderid: str, order: OrderRequest) -> OrderResult:
        """Change quantity, price, trigger, type of an open order (symbol, side, product stay)."""

    @abstractmethod
    def cancel_order(self, orderid: str) -> OrderResult: ...

    @abstractmethod
    def order_status(self, orderid: str) -> BrokerOrder:
        """The latest state of one order."""

    @abstractmethod
    def orderbook(self) -> list[BrokerOrder]: ...

    @abstractmethod
    def tradebook(self) -> list[BrokerTrade]: ...

    @abstractmethod
    def positions(self) -> list[BrokerPosition]: ...

    @abstractmethod
    def holdings(self) -> list[BrokerHolding]: ...

    @abstractmethod
    def funds(self) -> BrokerFunds: ...

    @abstractmethod
    def quotes(
        self, instruments: Iterable[tuple[str, str]], tokens: Mapping[tuple[str, str], str] | None = None
    ) -> dict[tuple[str, str], BrokerQuote]:
        """Quotes keyed by the (exchange, broker symbol) pairs asked for; unknown ones are absent.
        `tokens` gives each pair's master-contract token, for brokers that quote by id."""

    @abstractmethod
    def instruments(self) -> Iterator[dict[str, str]]:
        """The broker's master contract, one dict per row, streamed rather than held in memory."""

    # Optional operations: an adapter that does not override them reports them as unsupported, so a
    # service can answer "not with this broker" (OpenAlgo: 501) instead of failing.

    # Our interval codes ("1m", "3m", "5m", "10m", "15m", "30m", "1h", "D") that `history` serves
    # natively; the service resamples the others from these.
    HISTORY_INTERVALS: ClassVar[tuple[str, ...]] = ()

    def history(
        self,
        brexchange: str,
        brsymbol: str,
        token: str,
        interval: str,
        start: dt.datetime,
        end: dt.datetime,
        oi: bool = False,
    ) -> list[BrokerCandle]:
        """Candles of one instrument (its broker exchange, symbol and master-contract token) that
        start within [start, end] (aware; day candles: those of the days the range touches), oldest
        first, one per timestamp, however many requests the broker's limits take. `interval` is
        one of HISTORY_INTERVALS; `oi` asks for open interest where the broker has it."""
        name = getattr(self, "name", "this broker")
        raise BrokerError(f"Historical data is not available from {name}", status=501, kind=ErrorKind.UNSUPPORTED)

    def basket_margin(self, orders: list[MarginOrder]) -> BrokerMargin:
        """The margin the orders need together, counting the account's open positions."""
        name = getattr(self, "name", "this broker")
        raise BrokerError(f"Margin calculation is not available from {name}", status=501, kind=ErrorKind.UNSUPPORTED)

    def stream(self, on_tick: Callable[[StreamTick], None], on_status: Callable[[str, str], None]) -> BrokerStream:
        """Open the session's live market-data stream (it connects in the background). `on_tick`
        gets every tick of the subscribed tokens; `on_status(status, text)` each change of the
        connection, `status` one of STREAM_STATUSES, `text` a message for people."""
        name = getattr(self, "name", "this broker")
        raise BrokerError(f"Live streaming is not available from {name}", status=501, kind=ErrorKind.UNSUPPORTED)


class Broker(ABC):
    """A broker adapter. Instances hold settings (credentials), never a user's session."""

    name: ClassVar[str]
    display_name: ClassVar[str]
    login_kind: ClassVar[LoginKind]
    # Constructor keyword -> configuration key the service reads it from (e.g. ZERODHA_API_KEY), so a
    # service can build any adapter, including one from another package, without knowing it.
    config_keys: ClassVar[Mapping[str, str]] = {}
    # The zone of the times this broker sends without one, and of its daily session flush. An adapter
    # whose broker documents its zone sets it as a class fact (Kite: IST). One that follows the
    # exchange's zone takes the EXCHANGE_TIMEZONE setting like any other: "exchange_tz":
    # "EXCHANGE_TIMEZONE" in its `config_keys`, and `self.exchange_tz = time_zone(exchange_tz)`.
    exchange_tz: dt.tzinfo = DEFAULT_EXCHANGE_TZ
    # True when the broker addresses instruments by its own id (OrderRequest.token: Angel One's symboltoken,
    # Dhan's securityId): its orders need its own master contract, never another's ids. False when it goes by
    # symbol (Kite), which the sample contract's names match.
    needs_own_contract: ClassVar[bool] = False

    @classmethod
    def settings_from(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor settings read from a configuration mapping (e.g. `app.config`) through
        `config_keys`; unset or empty values are left out, so the constructor reports them."""
        settings = {}
        for argument, key in cls.config_keys.items():
            value = config.get(key)
            if value is not None and value != "":
                settings[argument] = value
        return settings

    def login_url(self, state: str | None = None) -> str:
        """Where to send the user to log in (redirect flow). `state` comes back in the callback."""
        raise BrokerError(f"{self.display_name} has no login page", kind=ErrorKind.UNSUPPORTED)

    def form_fields(self) -> Sequence[LoginField]:
        """The fields a user fills in to log in (form flow)."""
        return ()

    @abstractmethod
    def complete_login(self, callback_args: Mapping[str, str]) -> LoginResult:
        """Finish a login: the redirect's query arguments, or the submitted form fields."""

    @abstractmethod
    def logout(self, access_token: str) -> None:
        """Invalidate the token at the broker. A token the broker already considers dead is fine."""

    @abstractmethod
    def session(self, access_token: str) -> BrokerClient:
        """A client for the calls made with `access_token`. Creating one makes no request."""

    def close(self) -> None:
        """Release what the adapter holds (pooled connections). The adapter is unusable after."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
