"""Property-based fuzzing of every REST API v1 endpoint (API.md) with hypothesis.

Two kinds of bodies, posted with the Flask test client to the real application and database:
- schema-shaped: each endpoint's own fields with good values, then up to three mutations (a field
  dropped, a wrong type, junk that may or may not be valid: huge numbers, NaN, unicode with NUL and lone
  surrogates, case games; an unknown field; a wrong API key);
- raw junk: bytes and text that are not JSON, JSON that is not an object, deep nesting, form bodies,
  invalid UTF-8, oversized bodies, other methods, unknown endpoints.

Properties: never a 500; every answer is JSON, errors as {"status": "error", "message": "..."}; a body
that is certainly invalid (a required field missing, a wrong type, an unknown field, a wrong key, not a
JSON object) is refused with a 4xx and writes nothing: no signal, order, fill or position row, and the
funds rows unchanged (its api_logs row is expected: every call is logged).

Examples per backend: ALGOBRIDGE_FUZZ_EXAMPLES on PostgreSQL (default 10,000 across both tests: 80 %
schema-shaped, 20 % raw) and ALGOBRIDGE_FUZZ_EXAMPLES_SQLITE on SQLite (default 1,000). Derandomized,
so CI runs the same bodies every time. The number of bodies posted is printed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import string
from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from database import db
from services.trading import venues
from tests.helpers.api import load_symbols, raise_limits, user_with_key

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

EXAMPLES = {
    "postgresql": int(os.environ.get("ALGOBRIDGE_FUZZ_EXAMPLES", "10000")),
    "sqlite": int(os.environ.get("ALGOBRIDGE_FUZZ_EXAMPLES_SQLITE", "1000")),
}
SCHEMA_SHARE = 0.8
POSTED: dict[str, dict[str, int]] = {}

EXCHANGES = ["NSE", "BSE", "NFO", "BFO", "CDS", "BCD", "MCX", "NCDEX", "NSE_INDEX", "BSE_INDEX"]
ORDER = {"exchange": "exchange", "symbol": "symbol", "action": "action", "quantity": "quantity"}
ORDER_OPTIONAL = {"pricetype": "pricetype", "product": "product", "price": "price", "trigger_price": "price",
                  "disclosed_quantity": "count"}

# endpoint -> (required fields, optional fields), each field -> the kind of its value (apikey implied)
SPECS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "placeorder": ({"strategy": "strategy", **ORDER}, ORDER_OPTIONAL),
    "placesmartorder": ({"strategy": "strategy", **ORDER, "quantity": "count", "position_size": "signed"},
                        ORDER_OPTIONAL),
    "basketorder": ({"strategy": "strategy", "orders": "orders"}, {}),
    "splitorder": ({"strategy": "strategy", **ORDER, "splitsize": "quantity"}, ORDER_OPTIONAL),
    "modifyorder": ({"strategy": "strategy", "exchange": "exchange", "symbol": "symbol", "orderid": "orderid",
                     "action": "action", "product": "product", "pricetype": "pricetype", "price": "price",
                     "quantity": "quantity", "disclosed_quantity": "count", "trigger_price": "price"}, {}),
    "cancelorder": ({"strategy": "strategy", "orderid": "orderid"}, {}),
    "cancelallorder": ({"strategy": "strategy"}, {}),
    "closeposition": ({"strategy": "strategy"}, {}),
    "orderstatus": ({"strategy": "strategy", "orderid": "orderid"}, {}),
    "openposition": ({"strategy": "strategy", "symbol": "symbol", "exchange": "exchange", "product": "product"},
                     {}),
    "orderbook": ({}, {}),
    "tradebook": ({}, {}),
    "positionbook": ({}, {}),
    "holdings": ({}, {}),
    "funds": ({}, {}),
    "quotes": ({"symbol": "symbol", "exchange": "exchange"}, {}),
    "search": ({"query": "query"}, {"exchange": "exchange"}),
    "symbol": ({"symbol": "symbol", "exchange": "exchange"}, {}),
    "ping": ({}, {}),
    "analyzer": ({}, {}),
    "analyzer/toggle": ({"mode": "bool"}, {}),
    "market/holidays": ({}, {"year": "year"}),
    "market/timings": ({"date": "date"}, {}),
}
# Optional fields whose explicit null the API documents as "absent" (market/holidays: null year = this year).
NULL_IS_ABSENT = {"market/holidays": {"year"}}
ENDPOINTS = sorted(SPECS)
KNOWN_FIELDS = {"apikey"} | {f for req, opt in SPECS.values() for f in (*req, *opt)}
KEY = "\x00the-api-key\x00"  # placeholder, replaced by the real key when posting
ORDERID = "\x00an-orderid-%d\x00"  # placeholder, replaced by an orderid this run has seen

# -- values ----------------------------------------------------------------------------------------
any_text = st.text(max_size=40)  # every code point: NUL, lone surrogates, RTL marks, emoji
numeric_text = st.integers(-10**6, 10**6).map(str) | st.decimals(allow_nan=False, places=3).map(str)
huge = st.sampled_from([10**9, 10**9 + 1, 2**31, 2**63, 2**64, 10**30, -(10**30), 10**400, -1, 0])
odd_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-0.0, 1e-320, 1e308, 0.1 + 0.2])


def _cases(*values: str) -> st.SearchStrategy[str]:
    return st.sampled_from(values).flatmap(
        lambda v: st.sampled_from([v, v.lower(), f" {v} ", v.title(), v + "X"]))


GOOD = {
    "strategy": st.sampled_from(["Fuzz", "fuzz strategy", "टेस्ट"]) | any_text.filter(lambda s: s.strip()),
    "symbol": st.sampled_from(["INFY", "RELIANCE", "NIFTY", "BANKNIFTY", "NOSUCH", "infy"]),
    "exchange": st.sampled_from(EXCHANGES) | st.sampled_from(EXCHANGES).map(str.lower),
    "action": st.sampled_from(["BUY", "SELL", "buy", "Sell"]),
    "pricetype": st.sampled_from(["MARKET", "LIMIT", "SL", "SL-M", "market"]),
    "product": st.sampled_from(["MIS", "NRML", "CNC", "cnc"]),
    "quantity": st.integers(1, 20) | st.integers(1, 20).map(str),
    "count": st.integers(0, 5) | st.integers(0, 5).map(str),
    "signed": st.integers(-20, 20) | st.integers(-20, 20).map(str),
    "price": st.sampled_from([0, 1, 1500, "1500.05", 2900.5, "0"]) | st.decimals(0, 5000, places=2).map(str),
    "bool": st.booleans(),
    "orderid": st.integers(0, 50).map(lambda i: ORDERID % i) | st.sampled_from(["1", "nope", "0" * 64]),
    "query": st.sampled_from(["INFY", "nif", "BANK", "zzz", "2"]) | any_text.filter(lambda s: s.strip()),
    "year": st.integers(2019, 2030) | st.integers(2019, 2030).map(str),
    "date": st.dates(dt.date(2025, 12, 20), dt.date(2028, 1, 10)).map(dt.date.isoformat),
}


def _basket_item() -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({k: GOOD[v] for k, v in ORDER.items()},
                                 optional={k: GOOD[v] for k, v in ORDER_OPTIONAL.items()})


GOOD["orders"] = st.lists(_basket_item(), min_size=1, max_size=3)

scalar_junk = st.none() | st.booleans() | huge | odd_floats | any_text | numeric_text
nested_junk = st.recursive(scalar_junk, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(any_text, inner, max_size=3), max_leaves=12)
# Values no field accepts: null, an object, a list of scalars (a basket's items must be objects).
certainly_wrong = (st.none() | st.dictionaries(any_text, nested_junk, max_size=3)
                   | st.lists(scalar_junk, max_size=4))
# Values that may or may not be valid for a field.
maybe = (huge | odd_floats | any_text | numeric_text | st.booleans() | st.text(min_size=60, max_size=400)
         | st.sampled_from(["", " ", "\x00", "\ud800", "NaN", "Infinity", "-0", "1e3", "1_000", "０１"])
         | st.lists(_basket_item() | nested_junk, max_size=3))
extra_name = any_text.filter(lambda k: k not in KNOWN_FIELDS)


@st.composite
def schema_case(draw) -> tuple[str, dict, bool]:
    """(endpoint, body, certainly invalid)."""
    name = draw(st.sampled_from(ENDPOINTS))
    required, optional = SPECS[name]
    body: dict = {"apikey": KEY}
    for field, kind in required.items():
        body[field] = draw(GOOD[kind])
    for field, kind in optional.items():
        if draw(st.booleans()):
            body[field] = draw(GOOD[kind])
    invalid: set[str] = set()  # the fields (or reasons) that make the body certainly invalid
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["drop", "wrong", "maybe", "maybe", "extra", "key"]))
        fields = sorted(body)
        if op == "drop" and fields:
            field = draw(st.sampled_from(fields))
            del body[field]
            invalid.discard(field)
            if field in required or field == "apikey":
                invalid.add(f"missing {field}")
        elif op == "wrong" and fields:
            field = draw(st.sampled_from(fields))
            body[field] = draw(certainly_wrong)
            if body[field] is None and field in NULL_IS_ABSENT.get(name, ()):
                invalid.discard(field)  # documented: an explicit null is the default, as an absent field is
            else:
                invalid.add(field)
        elif op == "maybe" and fields:
            field = draw(st.sampled_from(fields))
            body[field] = draw(maybe)
            invalid.discard(field)
        elif op == "extra":
            field = draw(extra_name)
            body[field] = draw(nested_junk)
            invalid.add(field)
        elif op == "key":
            body["apikey"] = draw(any_text | st.text(string.hexdigits, min_size=64, max_size=64) | scalar_junk)
            invalid.add("apikey")
    return name, body, bool(invalid)


RAW_KINDS = ["bytes", "text", "scalar", "array", "deep", "form", "oversized", "method", "bad_utf8", "unknown"]
CONTENT_TYPES = ["application/json", "text/plain", "application/xml", "multipart/form-data; boundary=x",
                 "application/x-www-form-urlencoded", None]


@st.composite
def raw_case(draw) -> dict:
    """Keyword arguments for client.open: nothing a valid call can be made of."""
    name = draw(st.sampled_from(ENDPOINTS))
    path = f"/api/v1/{name}" + draw(st.sampled_from(["", "/"]))
    kind = draw(st.sampled_from(RAW_KINDS))
    ctype = draw(st.sampled_from(CONTENT_TYPES))
    method = "POST"
    if kind == "bytes":
        data = draw(st.binary(max_size=300))
    elif kind == "text":
        data = draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    elif kind == "scalar":
        data = json.dumps(draw(scalar_junk)).encode()
    elif kind == "array":
        data = json.dumps(draw(st.lists(st.just({"apikey": KEY}) | _basket_item() | nested_junk, max_size=4)))
        data = data.encode()
    elif kind == "deep":
        depth = draw(st.sampled_from([100, 999, 1000, 5000, 100_000]))
        opener = draw(st.sampled_from(["[", '{"a":', '{"apikey":"x","strategy":[']))
        data = (opener * depth).encode() + draw(st.sampled_from([b"", b"1" + b"]" * min(depth, 10)]))
    elif kind == "form":
        data = "&".join(f"{k}={v}" for k, v in (("apikey", KEY), ("strategy", "x"), ("symbol", "INFY"))).encode()
        ctype = "application/x-www-form-urlencoded"
    elif kind == "oversized":
        size = 1_048_576 + draw(st.integers(1, 4096))
        data = b'{"apikey": "' + b"k" * size + b'"}'
    elif kind == "method":
        method = draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH"]))
        data = json.dumps({"apikey": KEY}).encode()
    elif kind == "bad_utf8":
        junk = draw(st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]))
        data = b'{"apikey": "' + junk + b'", "strategy": "x"}'
    else:  # unknown endpoint
        path = "/api/v1/" + draw(st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=20)
                                 .filter(lambda s: s not in SPECS and s != "analyzer"))
        data = json.dumps({"apikey": KEY}).encode()
    kwargs = {"method": method, "path": path, "data": data}
    if ctype:
        kwargs["content_type"] = ctype
    return kwargs


_FUNDS = ("opening_balance", "available_cash", "collateral", "used_margin", "realized_pnl", "unrealized_pnl")
_STATE = text(
    "SELECT (SELECT count(*) FROM signals), (SELECT count(*) FROM orders), (SELECT coalesce(max(id), 0) FROM orders),"
    " (SELECT count(*) FROM fills), (SELECT count(*) FROM positions),"
    " (SELECT coalesce(sum(quantity), 0) FROM positions), (SELECT max(updated_at) FROM positions),"
    " (SELECT count(*) FROM funds), (SELECT max(updated_at) FROM funds), "
    + ", ".join(f"(SELECT sum({c}) FROM funds)" for c in _FUNDS))  # noqa: S608 - our own column names


# -- the world the bodies hit ----------------------------------------------------------------------
class World:
    """A user with a full-scope key, the sample contract, an order or two to aim at, and the counts."""

    def __init__(self, app, client, backend: str):
        self.app, self.client, self.backend = app, client, backend
        load_symbols(rows=300)
        self.user, _row, self.key = user_with_key("fuzzer")
        self.orderids: list[str] = []
        for body in ({"pricetype": "MARKET"}, {"pricetype": "LIMIT", "price": "1"}):
            resp = self.client.post("/api/v1/placeorder", json={
                "apikey": self.key, "strategy": "Fuzz", "exchange": "NSE", "symbol": "INFY", "action": "BUY",
                "quantity": 1, **body})
            assert resp.status_code == 200, resp.get_json()
            self.orderids.append(resp.get_json()["orderid"])
        self.posted = 0
        self.known: tuple | None = None  # the state after the last request, when it was read
        self.conn = None
        self.statuses: Counter[int] = Counter()

    def fill(self, value):
        """Put the real key and known orderids where the placeholders are, at any depth."""
        if isinstance(value, str):
            if value == KEY:
                return self.key
            if value.startswith("\x00an-orderid-"):
                return self.orderids[int(value.split("-")[-1].rstrip("\x00")) % len(self.orderids)]
            return value.replace(KEY, self.key)
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {self.fill(k): self.fill(v) for k, v in value.items()}
        return value

    def state_before(self) -> tuple:
        """The state now: the one read after the previous request when there was one (nothing else writes)."""
        return self.known if self.known is not None else self.state()

    def state_after(self) -> tuple:
        self.known = self.state()
        return self.known

    def state(self) -> tuple:
        """What a refused body must not change: one query on a connection of the test's own, whose
        transaction ends after each read (so SQLite's snapshot moves on)."""
        if self.conn is None:
            self.conn = db.engine.connect()
        try:
            return tuple(self.conn.execute(_STATE).one())
        finally:
            self.conn.rollback()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def post(self, **kwargs):
        self.posted += 1
        self.known = None
        resp = self.client.open(**kwargs)
        self.statuses[resp.status_code] += 1
        assert resp.status_code != 500, (kwargs.get("path"), _short(kwargs.get("data")), resp.get_data()[:300])
        assert resp.status_code < 500, (resp.status_code, _short(kwargs.get("data")), resp.get_data()[:300])
        assert resp.is_json, (resp.status_code, resp.content_type, resp.get_data()[:200])
        answer = resp.get_json()
        assert isinstance(answer, dict), answer
        if resp.status_code >= 400:
            assert answer.get("status") == "error", answer
            assert isinstance(answer.get("message"), str), answer
            assert answer["message"].strip(), answer
        else:
            assert answer.get("status") == "success", answer
        return resp, answer

    def after_success(self, name: str, answer: dict) -> None:
        orderid = answer.get("orderid")
        if isinstance(orderid, str) and orderid not in self.orderids:
            self.orderids.append(orderid)
        if name == "analyzer/toggle" and not answer["data"].get("analyze_mode", True):

            venues.set_analyze(self.user.id, True)  # back to analyze mode, so order calls go deep


def _short(data) -> object:
    if isinstance(data, bytes | str) and len(data) > 300:
        return data[:300] + (b"..." if isinstance(data, bytes) else "...")
    return data


def _encode(body: dict) -> bytes:
    # json.dumps keeps NaN/Infinity and escapes lone surrogates: the server's parser accepts both.
    return json.dumps(body, allow_nan=True).encode()


@pytest.fixture
def world(app, client, backend, monkeypatch):
    raise_limits(app, monkeypatch)
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", "100000000 per second")
    monkeypatch.setitem(app.config, "ORDER_RATE_LIMIT", "100000000 per second")
    monkeypatch.setitem(app.config, "SMART_ORDER_RATE_LIMIT", "100000000 per second")
    monkeypatch.setitem(app.config, "ANALYZE_CHARGES", True)  # every fill through the charges too
    world = World(app, client, backend)
    yield world
    world.close()


def _budget(backend: str, share: float) -> int:
    return max(1, math.ceil(EXAMPLES[backend] * share))


def _report(capsys, world: World, label: str) -> None:
    counts = POSTED.setdefault(world.backend, {})
    counts[label] = world.posted
    line = (f"fuzz [{world.backend}] {label}: {world.posted} bodies posted "
            f"(total on {world.backend} so far: {sum(counts.values())}); answers by status: "
            f"{dict(sorted(world.statuses.items()))}")
    with capsys.disabled():  # shown in CI output, not only on failure
        print(f"\n{line}")


FUZZ_SETTINGS = {"deadline": None, "derandomize": True, "database": None, "print_blob": True,
                 "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.large_base_example]}


def test_schema_shaped_bodies(world, capsys):
    refused = 0

    @settings(max_examples=_budget(world.backend, SCHEMA_SHARE), **FUZZ_SETTINGS)
    @given(schema_case())
    def check(case):
        nonlocal refused
        name, body, invalid = case
        body = world.fill(body)
        before = world.state_before() if invalid else None
        resp, answer = world.post(method="POST", path=f"/api/v1/{name}", data=_encode(body),
                                  content_type="application/json")
        if invalid:
            refused += 1
            assert 400 <= resp.status_code < 500, (name, body, answer)
            assert world.state_after() == before, (name, body, answer)
        elif resp.status_code == 200:
            world.after_success(name, answer)

    check()
    _report(capsys, world, "schema-shaped")
    assert world.posted >= _budget(world.backend, SCHEMA_SHARE)
    assert refused > world.posted // 4  # the mutations do produce refused bodies


def test_raw_junk(world, capsys):
    @settings(max_examples=_budget(world.backend, 1 - SCHEMA_SHARE), **FUZZ_SETTINGS)
    @given(raw_case())
    def check(kwargs):
        data = kwargs["data"]
        kwargs["data"] = data.replace(KEY.encode(), world.key.encode()) if isinstance(data, bytes) else data
        before = world.state_before()
        resp, answer = world.post(**kwargs)
        assert 400 <= resp.status_code < 500, (kwargs["method"], kwargs["path"], _short(data), answer)
        assert world.state_after() == before

    check()
    _report(capsys, world, "raw junk")
    assert world.posted >= _budget(world.backend, 1 - SCHEMA_SHARE)


def test_placeholders_are_filled(app, world):
    """The fuzz bodies carry the real key and real orderids (or they would test only the 403 path)."""
    body = world.fill({"apikey": KEY, "orderid": ORDERID % 1, "orders": [{"symbol": KEY}]})
    assert body == {"apikey": world.key, "orderid": world.orderids[1], "orders": [{"symbol": world.key}]}
    resp, answer = world.post(method="POST", path="/api/v1/orderstatus", data=_encode(
        world.fill({"apikey": KEY, "strategy": "Fuzz", "orderid": ORDERID % 0})), content_type="application/json")
    assert resp.status_code == 200, answer
    assert answer["data"]["orderid"] == world.orderids[0]
    assert Decimal(str(answer["data"]["quantity"])) == 1


def test_the_state_check_sees_an_order(world):
    """The snapshot the properties compare does change when an order is placed (and only then)."""
    before = world.state()
    assert world.state() == before
    resp, answer = world.post(method="POST", path="/api/v1/placeorder", data=_encode(world.fill(
        {"apikey": KEY, "strategy": "Fuzz", "exchange": "NSE", "symbol": "RELIANCE", "action": "BUY",
         "quantity": 2})), content_type="application/json")
    assert resp.status_code == 200, answer
    after = world.state()
    assert after != before
    assert after[1] == before[1] + 1  # one more order


ORDER_BODY = {"apikey": KEY, "strategy": "Fuzz", "exchange": "NSE", "symbol": "INFY", "action": "BUY", "quantity": 1}


@pytest.mark.parametrize(("name", "data", "status"), [
    # Found by this fuzzing: each was a 500 before its fix.
    ("placeorder", b"[" * 100_000, 400),  # RecursionError in the JSON parser, which silent=True let through
    ("ping", b'{"a":' * 100_000, 400),
    ("ping", b'{"apikey": "\\ud800"}', 400),  # a lone surrogate in the key broke the rate-limit key
    ("basketorder", _encode({"apikey": KEY, "strategy": "\x00", "orders": [
        {k: v for k, v in ORDER_BODY.items() if k not in ("apikey", "strategy")}]}), 400),  # NUL: PostgreSQL text
    ("placeorder", _encode({**ORDER_BODY, "strategy": "a\x00b"}), 400),
    ("orderstatus", _encode({"apikey": KEY, "strategy": "Fuzz", "orderid": "1\x00"}), 400),
    ("search", _encode({"apikey": KEY, "query": "IN\x00FY"}), 400),
    ("ping", b'{"apikey": "' + b"k" * 1_100_000 + b'"}', 413),  # MAX_CONTENT_LENGTH never took
], ids=["deep-array", "deep-object", "surrogate-key", "nul-basket-strategy", "nul-strategy", "nul-orderid",
        "nul-query", "oversized"])
def test_found_by_fuzzing(world, name, data, status):
    data = data.replace(KEY.encode(), world.key.encode())
    before = world.state()
    resp, answer = world.post(method="POST", path=f"/api/v1/{name}", data=data, content_type="application/json")
    assert resp.status_code == status, answer
    assert world.state() == before
