"""The feed server: connections, authentication, subscriptions, the hub that fans ticks out, order updates.

One asyncio loop owns every connection and subscription (no locks); database work (keys, modes, symbol
lookups, the journal, tick matching) runs on worker threads inside the application context.

The hub keeps one upstream subscription per (source, instrument) however many clients want it, at the
highest mode any of them asked for, and drops it when the last one leaves. A tick is serialised once per
mode and written to every subscriber with websockets' broadcast (no await per client); a client whose
unsent data passes WEBSOCKET_SEND_BUFFER_KB is disconnected (4008), so a slow reader cannot grow the
server's memory. With REDIS_URL, ticks travel through Redis pub/sub (feed.bus), so clients on any feed
process or host get them, and one process per instrument holds the upstream.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from feed import protocol as p
from feed.bus import LocalBus, RedisBus
from feed.sources import ANALYZE, BrokerSource, SimulatorSource
from services.accounts import api_keys, broker_login, feed_tokens, users
from services.trading import venues
from services.trading.order_events import JournalWatcher, order_update

log = logging.getLogger("algobridge.feed")

AUTH_TIMEOUT = 15.0  # seconds to authenticate before the socket is closed (4401)
ORDER_POLL = 0.25  # seconds between reads of the journal for order updates
SLOW_CLIENT, AUTH_CLOSE, LIMIT_CLOSE = 4008, 4401, 4429
_ids = itertools.count(1)


@dataclass(eq=False)
class Client:
    ws: ServerConnection
    id: int = field(default_factory=lambda: next(_ids))
    user_id: int | None = None
    key: str = ""  # the limits' unit: "key:<id>" or "user:<id>" (pages)
    subs: dict[tuple[str, str, str, int], None] = field(default_factory=dict)  # (source, symbol, exchange, mode)
    orders: bool = True
    closed: bool = False
    dropping: bool = False  # found too slow: its drop is scheduled, so later ticks of the batch skip it


class FeedServer:
    def __init__(self, app: Any, *, host: str | None = None, port: int | None = None, tick_interval: float = 1.0,
                 clock: Callable[[], float] = time.time, workers: int = 4, redis_url: str | None = None) -> None:
        cfg = app.config
        self.app = app
        self.host = host or cfg["WEBSOCKET_HOST"]
        self.port = cfg["WEBSOCKET_PORT"] if port is None else port
        self.max_conns = cfg["WEBSOCKET_MAX_CONNECTIONS_PER_KEY"]
        self.max_subs = cfg["WEBSOCKET_MAX_SUBSCRIPTIONS_PER_KEY"]
        self.buffer_limit = cfg["WEBSOCKET_SEND_BUFFER_KB"] * 1024
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="feed-db")
        self.background = ThreadPoolExecutor(1, thread_name_prefix="feed-ticks")  # ticks, matching, journal
        self.watcher = JournalWatcher()
        self.clients: set[Client] = set()
        self.by_key: dict[str, set[Client]] = defaultdict(set)
        self.by_user: dict[int, set[Client]] = defaultdict(set)
        # (source key, symbol, exchange) -> mode -> clients
        self.wants: dict[tuple[str, str, str], dict[int, set[Client]]] = {}
        self.upstream: dict[tuple[str, str, str], int] = {}  # the mode each upstream subscription has
        self.simulator = SimulatorSource(app, self._bg, self.publish, tick_interval, clock, self.watcher)
        self.live: dict[int, BrokerSource] = {}
        redis_url = cfg.get("REDIS_URL") if redis_url is None else redis_url
        self.bus = RedisBus(redis_url, self) if redis_url else LocalBus(self)
        self.port_bound: int | None = None
        self.ready = asyncio.Event()
        self.stopping: asyncio.Event | None = None
        self.dropped_slow = 0
        # ticks this process's sources produced, per (source key, symbol, exchange): with Redis, proof that
        # one process streams each instrument upstream
        self.published: Counter[tuple[str, str, str]] = Counter()

    # -- threads ----------------------------------------------------------------------------------
    def _in_app(self, fn: Callable[[], Any]) -> Any:
        with self.app.app_context():
            return fn()

    async def run(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._in_app, fn)

    async def _bg(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.background, self._in_app, fn)

    # -- lifecycle --------------------------------------------------------------------------------
    async def serve(self, stop: asyncio.Event | None = None) -> None:
        self.stopping = stop or asyncio.Event()
        async with serve(self.handler, self.host, self.port, ping_interval=20, ping_timeout=20,
                         max_size=64 * 1024, max_queue=64, close_timeout=2) as server:
            self.port_bound = server.sockets[0].getsockname()[1]
            await self.bus.start()
            poller = asyncio.create_task(self._poll_orders())
            self.ready.set()
            log.info("feed listening on ws://%s:%s", self.host, self.port_bound)
            await self.stopping.wait()
            poller.cancel()
        # the connections are closed by now and their drops gave their upstreams back through the bus,
        # so another process can take them over at once; the bus goes last
        await self.simulator.close()
        for source in list(self.live.values()):
            await source.close()
        await self.bus.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.background.shutdown(wait=False, cancel_futures=True)

    # -- connections ------------------------------------------------------------------------------
    async def handler(self, ws: ServerConnection) -> None:
        client = Client(ws)
        self.clients.add(client)
        try:
            try:
                first = await asyncio.wait_for(ws.recv(), AUTH_TIMEOUT)
            except TimeoutError:
                await ws.close(AUTH_CLOSE, "authenticate within 15 seconds")
                return
            await self.on_message(client, first)
            async for raw in ws:
                await self.on_message(client, raw)
        except ConnectionClosed:
            pass
        finally:
            await self.drop(client)

    async def send(self, client: Client, message: dict) -> None:
        if not client.closed:
            try:
                await client.ws.send(p.dumps(message).decode())
            except ConnectionClosed:
                pass

    async def on_message(self, client: Client, raw: str | bytes) -> None:
        try:
            msg = p.parse(raw)
            action = msg["action"]
            if action in ("authenticate", "auth"):
                await self.authenticate(client, msg)
            elif action == "ping":
                await self.send(client, {"type": "pong", "request_id": msg.get("request_id"),
                                         "timestamp": int(time.time() * 1000)})
            elif client.user_id is None:
                raise p.ProtocolError(p.NOT_AUTHENTICATED, "Authenticate first")
            elif action == "subscribe":
                await self.subscribe(client, msg)
            elif action in ("unsubscribe", "unsubscribe_all"):
                await self.unsubscribe(client, msg, everything=action == "unsubscribe_all")
            elif action in ("subscribe_orders", "unsubscribe_orders"):
                client.orders = action == "subscribe_orders"
                await self.send(client, {"type": action, "status": "success", "request_id": msg.get("request_id")})
            else:
                raise p.ProtocolError(p.INVALID_ACTION, f"Unknown action {action!r}")
        except p.ProtocolError as exc:
            await self.send(client, p.error(exc.code, str(exc)))
        except ConnectionClosed:
            raise
        except Exception:  # a bad message gets an answer; the server stays up
            log.exception("feed message failed")
            await self.send(client, p.error("SERVER_ERROR", "The message could not be handled"))

    def _identify(self, msg: dict) -> tuple[int, str]:
        """(user id, limits key) of an authenticate message; ProtocolError when refused (worker thread)."""
        token = msg.get("session_token")
        if token is not None:
            user_id = feed_tokens.verify(token, self.app.config["SECRET_KEY"])
            user = None
            if user_id is not None:
                try:
                    user = users.get_user(user_id)
                except users.UserNotFoundError:
                    user = None
            if user is None or not user.is_active:
                raise p.ProtocolError(p.AUTHENTICATION_ERROR, "Invalid or expired session token")
            return user.id, f"user:{user.id}"
        key = msg.get("api_key", msg.get("apikey"))
        try:
            principal = api_keys.verify(key, "data")
        except api_keys.ApiKeyError as exc:
            raise p.ProtocolError(p.AUTHENTICATION_ERROR, str(exc)) from None
        return principal.user_id, f"key:{principal.key_id}"

    def _broker(self, user_id: int) -> str:
        if venues.is_analyze(user_id):
            return venues.PAPER
        active = broker_login.active_session(user_id)
        return active.broker if active else ""

    async def authenticate(self, client: Client, msg: dict) -> None:
        if client.user_id is not None:
            raise p.ProtocolError(p.AUTHENTICATION_ERROR, "Already authenticated")
        user_id, key = await self.run(lambda: self._identify(msg))
        if len(self.by_key[key]) >= self.max_conns:
            await self.send(client, {"type": "auth", **p.error(
                p.LIMIT_EXCEEDED, f"At most {self.max_conns} connections at once per key")})
            await client.ws.close(LIMIT_CLOSE, "too many connections")
            return
        broker = await self.run(lambda: self._broker(user_id))
        client.user_id, client.key = user_id, key
        self.by_key[key].add(client)
        self.by_user[user_id].add(client)
        await self.send(client, {"type": "auth", "status": "success", "message": "Authentication successful",
                                 "broker": broker, "user_id": user_id, "supported_features": p.FEATURES})

    # -- subscriptions ----------------------------------------------------------------------------
    def _source_for(self, user_id: int, analyze: bool) -> Any:
        if analyze:
            return self.simulator
        source = self.live.get(user_id)
        if source is None:
            source = self.live[user_id] = BrokerSource(user_id, self.app, self.run, self.publish, self.on_status)
        return source

    def _key_subs(self, key: str) -> int:
        return sum(len(c.subs) for c in self.by_key[key])

    async def subscribe(self, client: Client, msg: dict) -> None:
        items = p.instruments(msg, with_mode=True)
        source = self._source_for(client.user_id, await self.run(lambda: venues.is_analyze(client.user_id)))
        problems = await self.run(lambda: {(s, e): source.lookup(s, e) for s, e, _ in items})
        results, added = [], set()
        for symbol, exchange, raw_mode in items:
            try:
                mode = p.parse_mode(raw_mode)
            except p.ProtocolError as exc:
                results.append({"symbol": symbol, "exchange": exchange, "status": "error", "code": exc.code,
                                "message": str(exc)})
                continue
            problem = problems[(symbol, exchange)]
            sub = (source.key, symbol, exchange, mode)
            if problem is None and sub not in client.subs and self._key_subs(client.key) >= self.max_subs:
                problem = f"At most {self.max_subs} subscriptions at once per key"
            if problem is not None:
                results.append({"symbol": symbol, "exchange": exchange, "status": "error", "message": problem})
                continue
            if sub not in client.subs:
                client.subs[sub] = None
                self.wants.setdefault((source.key, symbol, exchange), {}).setdefault(mode, set()).add(client)
                added.add((source.key, symbol, exchange))
            results.append({"symbol": symbol, "exchange": exchange, "status": "success", "mode": p.MODE_NAMES[mode],
                            "depth": msg.get("depth", 5) if mode == p.DEPTH else None})
        try:
            await self._upstream(source, list(added))
        except Exception as exc:  # a live user without a session, a broker refusing the stream
            for sub in [s for s in client.subs if s[:3] in added]:
                self._forget(client, sub)
            # Else the upstream would stay marked as held, and the same subscription after a login never reach it.
            await self._release(added)
            message = getattr(exc, "message", None) or str(exc)
            results = [{**r, "status": "error", "message": message} if r["status"] == "success" else r
                       for r in results]
        ok = sum(r["status"] == "success" for r in results)
        status = "success" if ok == len(results) else "partial" if ok else "error"
        answer = {"type": "subscribe", "status": status, "subscriptions": results,
                  "message": "Subscription processing complete", "broker": source.broker}
        if "request_id" in msg:
            answer["request_id"] = msg["request_id"]
        await self.send(client, answer)

    async def _upstream(self, source: Any, keys: list[tuple[str, str, str]]) -> None:
        """Bring the upstream subscriptions of `keys` to what their subscribers want now."""
        start, stop = defaultdict(list), []
        for k in keys:
            modes = [m for m, cs in self.wants.get(k, {}).items() if cs]
            want = max(modes) if modes else 0
            have = self.upstream.get(k, 0)
            if want == have:
                continue
            if want:
                self.upstream[k] = want
                if want > have:
                    start[want].append(k)
            else:
                self.upstream.pop(k, None)
                self.wants.pop(k, None)
                stop.append(k)
        for mode, group in start.items():
            await self.bus.want(group)
            claimed = await self.bus.claim(group)
            if claimed:
                await self._start_source(source, claimed, mode)
        if stop:
            await self.bus.unwant(stop)
            await source.unsubscribe([(s, e) for _, s, e in stop])

    def source_of(self, source_key: str) -> Any:
        return self.simulator if source_key == ANALYZE else self.live.get(int(source_key.split(":")[1]))

    def broker_of(self, source_key: str) -> str:
        return getattr(self.source_of(source_key), "broker", "")

    async def _start_source(self, source: Any, keys: list[tuple[str, str, str]], mode: int) -> None:
        await source.subscribe([k[1:] for k in keys], mode)
        # the last client may have left while the source was subscribing: its unsubscribe came first
        gone = [k[1:] for k in keys if not self.upstream.get(k)]
        if gone:
            await source.unsubscribe(gone)

    async def take_upstream(self, keys: list[tuple[str, str, str]]) -> None:
        """The bus handed this process the upstream of `keys` (their holder went away)."""
        for k in keys:
            source, mode = self.source_of(k[0]), self.upstream.get(k, 0)
            if source is not None and mode:
                await self._start_source(source, [k], mode)

    async def lost_upstream(self, keys: list[tuple[str, str, str]]) -> None:
        for k in keys:
            source = self.source_of(k[0])
            if source is not None:
                await source.unsubscribe([k[1:]])

    def _forget(self, client: Client, sub: tuple[str, str, str, int]) -> None:
        client.subs.pop(sub, None)
        modes = self.wants.get(sub[:3])
        if modes and sub[3] in modes:
            modes[sub[3]].discard(client)
            if not modes[sub[3]]:
                del modes[sub[3]]

    async def unsubscribe(self, client: Client, msg: dict, *, everything: bool = False) -> None:
        if everything or (msg.get("symbols") is None and msg.get("symbol") is None):
            gone = list(client.subs)
            ok, failed = [{"symbol": s, "exchange": e, "mode": m} for _, s, e, m in gone], []
        else:
            gone, ok, failed = [], [], []
            for symbol, exchange, raw_mode in p.instruments(msg, with_mode=True):
                mode = None if raw_mode is None else p.parse_mode(raw_mode)
                found = [s for s in client.subs if s[1] == symbol and s[2] == exchange and mode in (None, s[3])]
                gone += found
                entry = {"symbol": symbol, "exchange": exchange, "mode": mode}
                (ok if found else failed).append(entry if found else {**entry, "message": "Not subscribed"})
        for sub in gone:
            self._forget(client, sub)
        await self._release({sub[:3] for sub in gone})
        status = "error" if failed and not ok else "partial" if failed else "success"
        answer = {"type": "unsubscribe", "status": status, "message": "Unsubscription processing complete",
                  "successful": ok, "failed": failed}
        if "request_id" in msg:
            answer["request_id"] = msg["request_id"]
        await self.send(client, answer)

    async def _release(self, keys: set[tuple[str, str, str]]) -> None:
        by_source = defaultdict(list)
        for k in keys:
            by_source[k[0]].append(k)
        for source_key, group in by_source.items():
            source = self.source_of(source_key)
            if source is not None:
                await self._upstream(source, group)

    async def drop(self, client: Client, code: int | None = None, reason: str = "") -> None:
        if client.closed:
            return
        client.closed = True
        self.clients.discard(client)
        self.by_key[client.key].discard(client)
        if not self.by_key[client.key]:
            self.by_key.pop(client.key, None)
        if client.user_id is not None:
            self.by_user[client.user_id].discard(client)
            if not self.by_user[client.user_id]:
                self.by_user.pop(client.user_id, None)
        gone = list(client.subs)
        for sub in gone:
            self._forget(client, sub)
        await self._release({sub[:3] for sub in gone})
        if code is not None:
            await client.ws.close(code, reason)

    # -- fan-out ----------------------------------------------------------------------------------
    def publish(self, source_key: str, tick: p.Tick) -> None:
        """A tick from a source this process holds upstream: to the bus (which calls deliver)."""
        self.published[(source_key, tick.symbol, tick.exchange)] += 1
        self.bus.publish(source_key, tick)

    def deliver(self, source_key: str, tick: p.Tick, broker: str | None = None) -> None:
        modes = self.wants.get((source_key, tick.symbol, tick.exchange))
        if not modes:
            return
        if broker is None:
            broker = self.broker_of(source_key)
        slow = set()
        for mode, clients in list(modes.items()):
            live = [c for c in clients if not c.dropping]
            if not live:
                continue
            broadcast([c.ws for c in live], tick.frame(mode, broker).decode())
            slow.update(c for c in live if self._behind(c.ws))
        for c in slow:
            c.dropping = True  # once, however many of its instruments and modes this batch ticks
            self.dropped_slow += 1
            log.warning("feed client %s of user %s is too slow: disconnected", c.id, c.user_id)
            asyncio.get_running_loop().create_task(self.drop(c, SLOW_CLIENT, "slow client"))

    def _behind(self, ws: ServerConnection) -> bool:
        transport = ws.transport
        return transport is not None and transport.get_write_buffer_size() > self.buffer_limit

    def on_status(self, user_id: int, status: str, text: str) -> None:
        """A live stream's state change (reconnecting, connected, closed): to the user's connections."""
        frame = orjson.dumps({"type": "status", "status": status, "message": text}).decode()
        broadcast([c.ws for c in self.by_user.get(user_id, ())], frame)

    # -- order updates ----------------------------------------------------------------------------
    async def _poll_orders(self) -> None:
        while True:
            try:
                rows = await self._bg(self.watcher.poll)
                for row in rows:
                    clients = [c.ws for c in self.by_user.get(row.user_id, ()) if c.orders]
                    if clients:
                        broadcast(clients, p.dumps(order_update(row)).decode())
            except Exception:
                log.exception("reading the journal for order updates failed")
            await asyncio.sleep(ORDER_POLL)


def run(app: Any, **kwargs: Any) -> None:
    """Serve until SIGTERM or SIGINT (`python -m feed`)."""
    import signal

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await FeedServer(app, **kwargs).serve(stop)

    asyncio.run(main())
