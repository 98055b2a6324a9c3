"""Dhan, through the DhanHQ v2 REST API, over plain HTTP (`requests`).

Why not the official `dhanhq` client: it imports pandas (tens of MB and seconds at start, against our
memory and start budgets) and hard-codes its base URL (no test double, no DHAN_ROOT_URL). The API is
plain JSON over HTTPS, so one pooled `requests` session per adapter serves every user.

Login is a form: the user's Dhan client id and an access token generated on web.dhan.co (My Profile ->
Access DhanHQ APIs), valid for 24 hours. `complete_login` checks both with GET /profile, which also
reports the token's validity. Every call carries the `access-token` and `client-id` headers, and order
bodies the `dhanClientId`; so the session token we store is "<client id>:<access token>" (Dhan's tokens
are JWTs, which never contain a colon). Neither is ever logged or shown in a repr.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from brokers.base import (
    Broker,
    BrokerCandle,
    BrokerClient,
    BrokerError,
    BrokerFunds,
    BrokerHolding,
    BrokerMargin,
    BrokerOrder,
    BrokerPosition,
    BrokerProfile,
    BrokerQuote,
    BrokerTrade,
    ErrorKind,
    LoginField,
    LoginResult,
    MarginOrder,
    OrderRequest,
    OrderResult,
    check_history_range,
    merge_candles,
    split_range,
    to_decimal,
)
from brokers.common import KeyedPacer, http_session
from brokers.dhan import mapping
from brokers.dhan.errors import NO_HOLDINGS, dhan_errors, error_from_dhan, parse_body
from vocabulary import needs_price, needs_trigger

if TYPE_CHECKING:
    import requests

log = logging.getLogger("algobridge.broker")

DEFAULT_ROOT = "https://api.dhan.co/v2"
# The compact list: the detailed one has no exchange trading symbol, which Dhan's books name instruments by.
DEFAULT_INSTRUMENTS_URL = "https://images.dhan.co/api-data/api-scrip-master.csv"
QUOTE_BATCH = 1000  # Dhan's limit of instruments per market-quote request
QUOTES_PER_SECOND = 1.0  # Dhan's rate limit for the quote APIs
DATA_PER_SECOND = 5.0  # Dhan's rate limit for the data APIs (historical candles)
# Dhan's documented token validity: 24 hours from generation. The service ends sessions at its daily
# expiry (SESSION_EXPIRY_TIME) if that comes first; Dhan documents no morning flush of its own.
TOKEN_VALIDITY = dt.timedelta(hours=24)
_CSV_CHUNK = 64 * 1024
_ORDER_ID = re.compile(r"[0-9]{1,24}")
_CLIENT_ID = re.compile(r"[0-9A-Za-z]{1,20}")
_CORRELATION = re.compile(r"[^0-9A-Za-z _-]")


def _order_id(orderid: str) -> str:
    # The id becomes part of the URL path: Dhan's ids are digits, anything else never reaches Dhan.
    orderid = str(orderid).strip()
    if not _ORDER_ID.fullmatch(orderid):
        raise BrokerError(f"Invalid order id: {orderid[:40]!r}", status=400, kind=ErrorKind.INPUT)
    return orderid


def _number(value: Decimal) -> float | int:
    # A JSON number: Dhan reads the body as JSON, and Decimal is not a JSON type.
    return int(value) if value == value.to_integral_value() else float(value)


def _split_token(session_token: str) -> tuple[str, str]:
    client_id, sep, access_token = str(session_token or "").partition(":")
    if not sep or not client_id or not access_token:
        raise BrokerError("No Dhan session", status=403, kind=ErrorKind.TOKEN)
    return client_id, access_token


def _parse_validity(value: Any) -> dt.datetime | None:
    """/profile's tokenValidity, "30/03/2025 15:37" (IST), or None."""
    for layout in ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S"):
        try:
            return dt.datetime.strptime(str(value).strip(), layout).replace(tzinfo=mapping.DHAN_TZ)
        except ValueError:
            continue
    return None


class DhanBroker(Broker):
    name = "dhan"
    display_name = "Dhan"
    login_kind = "form"
    needs_own_contract = True  # everything goes by securityId
    config_keys = {"root": "DHAN_ROOT_URL", "instruments_url": "DHAN_INSTRUMENTS_URL"}
    # Dhan's times are IST by its documentation, not our setting.
    exchange_tz = mapping.DHAN_TZ

    def __init__(
        self,
        root: str | None = None,
        instruments_url: str | None = None,
        *,
        timeout: float = 7.0,
        pool_size: int = 16,
        quotes_per_second: float = QUOTES_PER_SECOND,
        data_per_second: float = DATA_PER_SECOND,
    ):
        """`root` and `instruments_url` point the adapter at another Dhan (a test double); the pacing
        arguments keep quote and history requests under Dhan's rate limits (0: unpaced)."""
        self.root = (root or DEFAULT_ROOT).rstrip("/")
        self.instruments_url = instruments_url or DEFAULT_INSTRUMENTS_URL
        self.timeout = timeout
        self.http = http_session(pool_size)
        self.quote_pacer = KeyedPacer(quotes_per_second)  # Dhan limits each client id
        self.data_pacer = KeyedPacer(data_per_second)

    def close(self) -> None:
        self.http.close()

    # -- login -------------------------------------------------------------------------------------

    def form_fields(self) -> tuple[LoginField, ...]:
        return (
            LoginField("client_id", "Dhan client ID"),
            LoginField("access_token", "Access token (web.dhan.co: My Profile, Access DhanHQ APIs)", kind="password"),
        )

    def complete_login(self, callback_args: Mapping[str, str]) -> LoginResult:
        client_id = str(callback_args.get("client_id") or "").strip()
        access_token = str(callback_args.get("access_token") or "").strip()
        if not client_id or not access_token:
            raise BrokerError("Enter your Dhan client ID and access token", status=400, kind=ErrorKind.INPUT)
        if not _CLIENT_ID.fullmatch(client_id) or ":" in access_token or any(c.isspace() for c in access_token):
            raise BrokerError("That is not a Dhan client ID and access token", status=400, kind=ErrorKind.INPUT)
        now = dt.datetime.now(dt.UTC)
        profile = DhanClient(self, f"{client_id}:{access_token}").profile()
        if profile.broker_user_id != client_id:
            # A valid token of another account: Dhan would refuse the orders of this one (DH-901).
            raise BrokerError("The access token belongs to another Dhan client ID", status=401, kind=ErrorKind.TOKEN)
        expires_at = now + TOKEN_VALIDITY
        validity = _parse_validity(profile.extra.get("tokenValidity"))
        if validity is not None:
            expires_at = min(expires_at, validity)
        if expires_at <= now:
            raise BrokerError("The Dhan access token has expired", status=401, kind=ErrorKind.TOKEN)
        log.info("Dhan login completed for %s", client_id)
        extra = {key: profile.extra[key] for key in ("activeSegment", "ddpi", "mtf", "dataPlan", "dataValidity")
                 if key in profile.extra}
        return LoginResult(access_token=f"{client_id}:{access_token}", broker_user_id=client_id,
                           user_name=client_id, expires_at=expires_at, extra=extra)

    def logout(self, access_token: str) -> None:
        # Dhan has no API that revokes a token generated on web.dhan.co: the service drops the stored
        # session, and the token lapses at the end of its validity.
        log.info("Dhan logout: the session was dropped (web.dhan.co tokens cannot be revoked through the API)")

    def session(self, access_token: str) -> DhanClient:
        return DhanClient(self, access_token)

    # -- HTTP --------------------------------------------------------------------------------------

    def call(self, method: str, path: str, client_id: str, access_token: str, operation: str, *,
             body: Any = None, order_call: bool = False, allow: tuple[str, ...] = ()) -> Any:
        """One authenticated request: the decoded JSON answer, or a BrokerError in Dhan's terms.
        An error whose code is in `allow` is returned as None (e.g. "no holdings")."""
        headers = {"access-token": access_token, "client-id": client_id, "Accept": "application/json"}
        with dhan_errors(operation):
            response = self.http.request(method, self.root + path, headers=headers, json=body, timeout=self.timeout)
            try:
                data = response.json() if response.content else {}
            except ValueError:
                data = None
            code, _message = parse_body(data)
            failed = isinstance(data, Mapping) and (str(data.get("status", "")).lower() == "failed" or
                                                     bool(data.get("errorCode")))
            if response.status_code >= 400 or failed or data is None:
                if code and code in allow:
                    return None
                raise error_from_dhan(data, response.status_code, operation, order_call=order_call)
            return data


class DhanClient(BrokerClient):
    """One Dhan session. Cheap to create: it shares the adapter's HTTP connections."""

    name = "dhan"
    HISTORY_INTERVALS = (*mapping.INTRADAY_INTERVALS, mapping.DAY_INTERVAL)

    def __init__(self, broker: DhanBroker, session_token: str):
        self._broker = broker
        self.client_id, self._access_token = _split_token(session_token)

    def __repr__(self) -> str:
        return f"<DhanClient client_id={self.client_id!r}>"

    def _call(self, method: str, path: str, operation: str, **kw: Any) -> Any:
        return self._broker.call(method, path, self.client_id, self._access_token, operation, **kw)

    # -- account -----------------------------------------------------------------------------------

    def profile(self) -> BrokerProfile:
        data = self._call("GET", "/profile", "profile")
        with dhan_errors("profile"):
            client_id = str(data["dhanClientId"])
        extra = {key: data[key] for key in ("tokenValidity", "activeSegment", "ddpi", "mtf", "dataPlan",
                                            "dataValidity") if key in data}
        return BrokerProfile(broker_user_id=client_id, user_name=client_id, extra=extra)

    def funds(self) -> BrokerFunds:
        data = self._call("GET", "/fundlimit", "funds")
        with dhan_errors("funds"):
            return mapping.to_funds(data)

    # -- orders ------------------------------------------------------------------------------------

    def _prices(self, order: OrderRequest) -> dict[str, Any]:
        return {
            "price": _number(order.price) if needs_price(order.pricetype) else 0,
            "triggerPrice": _number(order.trigger_price) if needs_trigger(order.pricetype) else 0,
            "disclosedQuantity": order.disclosed_quantity,
        }

    def place_order(self, order: OrderRequest) -> OrderResult:
        body: dict[str, Any] = {
            "dhanClientId": self.client_id,
            "transactionType": order.action,
            "exchangeSegment": mapping.segment(order.exchange, order.token),
            "productType": mapping.PRODUCTS[order.product],
            "orderType": mapping.ORDER_TYPES[order.pricetype],
            "validity": mapping.VALIDITY,
            "securityId": mapping.security_id(order.token),
            "quantity": order.quantity,
            "afterMarketOrder": False,
            **self._prices(order),
        }
        if body["exchangeSegment"] == mapping.INDEX_SEGMENT:
            raise BrokerError("An index cannot be traded", status=400, kind=ErrorKind.INPUT)
        if order.tag:
            body["correlationId"] = _CORRELATION.sub("", order.tag)[:25]
        data = self._call("POST", "/orders", "place order", body=body, order_call=True)
        with dhan_errors("place order"):
            orderid = str(data["orderId"])
        log.info("Dhan order %s placed: %s %s %s:%s %s", orderid, order.action, order.quantity, order.exchange,
                 order.symbol, order.pricetype)
        return OrderResult(orderid=orderid)

    def modify_order(self, orderid: str, order: OrderRequest) -> OrderResult:
        orderid = _order_id(orderid)
        body = {
            "dhanClientId": self.client_id,
            "orderId": orderid,
            "orderType": mapping.ORDER_TYPES[order.pricetype],
            "legName": "",
            "quantity": order.quantity,
            "validity": mapping.VALIDITY,
            **self._prices(order),
        }
        data = self._call("PUT", f"/orders/{orderid}", "modify order", body=body, order_call=True)
        log.info("Dhan order %s modified", orderid)
        return OrderResult(orderid=str((data or {}).get("orderId") or orderid))

    def cancel_order(self, orderid: str) -> OrderResult:
        orderid = _order_id(orderid)
        data = self._call("DELETE", f"/orders/{orderid}", "cancel order", order_call=True)
        log.info("Dhan order %s cancelled", orderid)
        return OrderResult(orderid=str((data or {}).get("orderId") or orderid))

    def order_status(self, orderid: str) -> BrokerOrder:
        orderid = _order_id(orderid)
        data = self._call("GET", f"/orders/{orderid}", "order status")
        with dhan_errors("order status"):
            row = data[0] if isinstance(data, list) else data
            return mapping.to_order(row)

    # -- books -------------------------------------------------------------------------------------

    def orderbook(self) -> list[BrokerOrder]:
        data = self._call("GET", "/orders", "order book")
        with dhan_errors("order book"):
            return [mapping.to_order(row) for row in data]

    def tradebook(self) -> list[BrokerTrade]:
        data = self._call("GET", "/trades", "trade book")
        with dhan_errors("trade book"):
            return [mapping.to_trade(row) for row in data]

    def positions(self) -> list[BrokerPosition]:
        data = self._call("GET", "/positions", "positions")
        with dhan_errors("positions"):
            return [mapping.to_position(row) for row in data]

    def holdings(self) -> list[BrokerHolding]:
        """Dhan's holdings carry no last price: it comes from one LTP request (a data-API call, paced as the
        quotes are); without it (no data subscription, a rate limit) the holdings are shown without prices."""
        data = self._call("GET", "/holdings", "holdings", allow=(NO_HOLDINGS,))
        with dhan_errors("holdings"):
            rows = list(data or ())
            prices = self._holding_prices([str(row.get("securityId") or "") for row in rows
                                           if not row.get("lastTradedPrice")])
            return [mapping.to_holding({**row, "lastTradedPrice": row.get("lastTradedPrice")
                                        or prices.get(str(row.get("securityId") or ""))}) for row in rows]

    def _holding_prices(self, ids: list[str]) -> dict[str, Any]:
        ids = [i for i in ids if i.isdigit()]
        if not ids:
            return {}
        self._broker.quote_pacer.wait(self.client_id)
        try:
            data = self._call("POST", "/marketfeed/ltp", "holdings prices",
                              body={mapping.SEGMENTS["NSE"]: [int(i) for i in ids]})
        except BrokerError as exc:
            if exc.kind is ErrorKind.TOKEN:
                raise
            log.info("Dhan holdings shown without prices (%s)", exc.kind.value)
            return {}
        rows = (data.get("data") or {}).get(mapping.SEGMENTS["NSE"]) or {}
        return {str(security): quote.get("last_price") for security, quote in rows.items()}

    # -- market data -------------------------------------------------------------------------------

    def quotes(
        self, instruments: Iterable[tuple[str, str]], tokens: Mapping[tuple[str, str], str] | None = None
    ) -> dict[tuple[str, str], BrokerQuote]:
        """Dhan's market quote (five levels of depth included) by security id, up to 1000 instruments a
        request, paced at Dhan's one request a second. Pairs without a usable token are left out."""
        tokens = tokens or {}
        wanted: dict[tuple[str, str], tuple[str, str]] = {}  # (segment, security id) -> pair asked for
        for pair in instruments:
            token = tokens.get(pair, "")
            try:
                key = (mapping.segment(pair[0], token), mapping.security_id(token))
            except BrokerError:
                log.info("Dhan quotes: no security id for %s:%s, left out", pair[0], pair[1])
                continue
            wanted[key] = pair
        keys = list(wanted)
        result: dict[tuple[str, str], BrokerQuote] = {}
        for start in range(0, len(keys), QUOTE_BATCH):
            body: dict[str, list[int]] = {}
            for seg, security in keys[start : start + QUOTE_BATCH]:
                body.setdefault(seg, []).append(int(security))
            self._broker.quote_pacer.wait(self.client_id)
            data = self._call("POST", "/marketfeed/quote", "quotes", body=body)
            with dhan_errors("quotes"):
                for seg, rows in (data.get("data") or {}).items():
                    for security, quote in (rows or {}).items():
                        pair = wanted.get((seg, str(security)))
                        if pair is not None:
                            result[pair] = mapping.to_quote(quote)
        return result

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
        """Dhan's candles by security id: day candles from /charts/historical (its `toDate` excluded),
        minute candles from /charts/intraday, in pieces no longer than Dhan serves, paced under the
        data APIs' rate limit."""
        if interval not in self.HISTORY_INTERVALS:
            raise BrokerError(f"Dhan has no {interval!r} candles", status=400, kind=ErrorKind.INPUT)
        check_history_range(start, end)
        base = {
            "securityId": mapping.security_id(token),
            "exchangeSegment": mapping.segment(brexchange, token),
            "instrument": mapping.instrument_kind(brexchange, brsymbol, token),
            "oi": bool(oi),
        }
        tz = mapping.DHAN_TZ
        batches = []
        if interval == mapping.DAY_INTERVAL:
            first_day, last_day = start.astimezone(tz).date(), end.astimezone(tz).date()
            day = first_day
            while day <= last_day:
                stop = min(day + dt.timedelta(days=mapping.DAILY_SPAN.days), last_day + dt.timedelta(days=1))
                body = {**base, "expiryCode": 0, "fromDate": day.isoformat(), "toDate": stop.isoformat()}
                batches.append(self._candles("/charts/historical", body))
                day = stop
            candles = merge_candles(batches)
            return [c for c in candles if first_day <= c.timestamp.astimezone(tz).date() <= last_day]
        for first, last in split_range(start, end, mapping.INTRADAY_SPAN):
            body = {**base, "interval": mapping.INTRADAY_INTERVALS[interval],
                    "fromDate": first.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
                    "toDate": last.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")}
            batches.append(self._candles("/charts/intraday", body))
        return [c for c in merge_candles(batches) if start <= c.timestamp <= end]

    def _candles(self, path: str, body: dict[str, Any]) -> list[BrokerCandle]:
        self._broker.data_pacer.wait(self.client_id)
        data = self._call("POST", path, "history", body=body)
        with dhan_errors("history"):
            return mapping.to_candles(data)

    def basket_margin(self, orders: list[MarginOrder]) -> BrokerMargin:
        """One order: Dhan's margin calculator. Several: its multi-order calculator, which prices the legs
        together with the account's open positions and reports the hedge benefit. A Dhan without the
        multi-order calculator (404) is asked leg by leg, the margins added up (no benefit then)."""
        if not orders:
            raise BrokerError("No orders to compute a margin for", status=400, kind=ErrorKind.INPUT)
        legs = [self._margin_leg(order) for order in orders]
        if len(legs) > 1:
            body = {"dhanClientId": self.client_id, "includePosition": True, "includeOrders": False,
                    "scripList": legs}
            try:
                data = self._call("POST", "/margincalculator/multi", "margin", body=body)
            except BrokerError as exc:
                if exc.status != 404:
                    raise
                log.info("Dhan has no multi-order margin calculator here; asking leg by leg")
            else:
                with dhan_errors("margin"):
                    return BrokerMargin(total=to_decimal(data["total_margin"]),
                                        span=to_decimal(data.get("span_margin")),
                                        exposure=to_decimal(data.get("exposure_margin")),
                                        benefit=max(to_decimal(data.get("hedge_benefit")), Decimal(0)))
        total = span = exposure = Decimal(0)
        for leg in legs:
            data = self._call("POST", "/margincalculator", "margin", body={"dhanClientId": self.client_id, **leg})
            with dhan_errors("margin"):
                total += to_decimal(data["totalMargin"])
                span += to_decimal(data.get("spanMargin"))
                exposure += to_decimal(data.get("exposureMargin"))
        return BrokerMargin(total=total, span=span, exposure=exposure)

    @staticmethod
    def _margin_leg(order: MarginOrder) -> dict[str, Any]:
        return {
            "exchangeSegment": mapping.segment(order.exchange, order.token),
            "transactionType": order.action,
            "quantity": order.quantity,
            "productType": mapping.PRODUCTS[order.product],
            "securityId": mapping.security_id(order.token),
            "price": _number(order.price),
            "triggerPrice": _number(order.trigger_price),
        }

    # -- instruments -------------------------------------------------------------------------------

    def instruments(self) -> Iterator[dict[str, str]]:
        """Dhan's compact instrument list (a public CSV, no token needed), streamed row by row as
        canonical rows (see `mapping.canonical_row`). The request is made here, so an unreachable list
        fails now rather than at the first row. The list carries no freeze quantity."""
        with dhan_errors("instruments"):
            response = self._broker.http.get(self._broker.instruments_url, stream=True, timeout=self._broker.timeout)
        if response.status_code != 200:
            response.close()
            log.warning("Dhan instrument list: HTTP %s", response.status_code)
            raise BrokerError(f"The Dhan instrument list could not be fetched (HTTP {response.status_code})",
                              status=502, kind=ErrorKind.BROKER)
        return self._rows(response)

    @staticmethod
    def _rows(response: requests.Response) -> Iterator[dict[str, str]]:
        import requests  # late: see brokers.common.http_session

        try:
            response.encoding = "utf-8"
            lines = (line for line in response.iter_lines(chunk_size=_CSV_CHUNK, decode_unicode=True) if line)
            reader = csv.reader(lines)
            header = [column.strip().lstrip("\ufeff") for column in next(reader, [])]
            if not header:
                return
            if "SEM_TRADING_SYMBOL" not in header:
                raise BrokerError("DHAN_INSTRUMENTS_URL is not Dhan's compact instrument list (api-scrip-master.csv):"
                                  " its rows have no SEM_TRADING_SYMBOL", status=502, kind=ErrorKind.CONFIG)
            width = len(header)
            for row in reader:
                if len(row) != width:
                    log.warning("Dhan instruments: skipped a row of %d columns", len(row))
                    continue
                try:
                    canonical = mapping.canonical_row(dict(zip(header, row, strict=True)))
                except (ArithmeticError, ValueError):
                    log.warning("Dhan instruments: skipped an unreadable row")
                    continue
                if canonical is not None:
                    yield canonical
        except requests.RequestException as exc:
            log.warning("Dhan instruments download broke off (%s)", type(exc).__name__)
            raise BrokerError("The Dhan instrument download broke off", status=503, kind=ErrorKind.NETWORK) from exc
        finally:
            response.close()


BROKER_CLASS = DhanBroker
