"""How a tick reaches the clients of every feed process: in-process, or through Redis pub/sub.

With Redis (REDIS_URL), each (source, instrument) has a channel; a process subscribes to the channels of
the instruments its clients want and delivers what arrives there, whoever produced it. Upstream is held
by one process per instrument, across processes and hosts: the one holding a lease (a Redis key with a
3-second expiry, renewed every second while it has clients for it); when it goes (its last client left,
it died), another process that still has clients takes the lease over within a few seconds and
subscribes upstream.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

import orjson

from feed.protocol import Tick

log = logging.getLogger("algobridge.feed")

Key = tuple[str, str, str]  # (source key, symbol, exchange)
LEASE_MS = 3000
OUTBOX = 10_000  # ticks waiting for Redis at most
PREFIX = "algobridge:feed:"


class LocalBus:
    def __init__(self, server: Any) -> None:
        self.server = server

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def publish(self, source_key: str, tick: Tick) -> None:
        self.server.deliver(source_key, tick)

    async def want(self, keys: list[Key]) -> None: ...

    async def unwant(self, keys: list[Key]) -> None: ...

    async def claim(self, keys: list[Key]) -> list[Key]:
        return keys


def _channel(k: Key) -> str:
    return f"{PREFIX}tick:{k[0]}:{k[2]}:{k[1]}"


class RedisBus:
    def __init__(self, url: str, server: Any) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.from_url(url, socket_connect_timeout=2)
        self.server = server
        self.me = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self.held: set[Key] = set()
        self.wanted: set[Key] = set()
        self.pubsub: Any = None
        self.tasks: list[asyncio.Task] = []
        self.outbox: asyncio.Queue[tuple[str, bytes]] | None = None
        self.lost = 0  # ticks dropped because Redis fell behind (or was away)
        # compare-and-act in one step: a lease that expired and went to another process is never touched
        self._renew = self.redis.register_script(
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end "
            "return 0")
        self._drop = self.redis.register_script(
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0")

    async def start(self) -> None:
        self.outbox = asyncio.Queue(OUTBOX)
        self.pubsub = self.redis.pubsub()
        await self.pubsub.subscribe(f"{PREFIX}hello")  # get_message needs a subscription to wait on
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._read()), loop.create_task(self._leases()),
                      loop.create_task(self._sender())]

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        try:
            if self.held:
                await self._release(list(self.held))
        except Exception as exc:  # Redis away: the leases expire on their own
            log.warning("feed: releasing the Redis leases failed: %s", exc)
        finally:
            await self.pubsub.aclose()
            await self.redis.aclose()

    def publish(self, source_key: str, tick: Tick) -> None:
        payload = orjson.dumps([self.server_broker(source_key)]) + b"\n" + tick.to_wire()
        try:
            self.outbox.put_nowait((_channel((source_key, tick.symbol, tick.exchange)), payload))
        except asyncio.QueueFull:  # Redis slower than the ticks: drop them rather than grow
            self.lost += 1

    def server_broker(self, source_key: str) -> str:
        return self.server.broker_of(source_key)

    async def _sender(self) -> None:
        """One writer, in order: ticks reach Redis in the order the sources made them."""
        while True:
            batch = [await self.outbox.get()]
            while not self.outbox.empty() and len(batch) < 500:
                batch.append(self.outbox.get_nowait())
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for channel, payload in batch:
                        pipe.publish(channel, payload)
                    await pipe.execute()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: ticks are lost until it is back, the server stays up
                self.lost += len(batch)
                log.warning("feed: publishing to Redis failed: %s", exc)
                await asyncio.sleep(0.5)

    async def want(self, keys: list[Key]) -> None:
        new = [k for k in keys if k not in self.wanted]
        self.wanted.update(new)
        if new:
            await self.pubsub.subscribe(*[_channel(k) for k in new])

    async def unwant(self, keys: list[Key]) -> None:
        gone = [k for k in keys if k in self.wanted]
        self.wanted.difference_update(gone)
        if gone:
            await self.pubsub.unsubscribe(*[_channel(k) for k in gone])
        await self._release([k for k in gone if k in self.held])

    async def claim(self, keys: list[Key]) -> list[Key]:
        got = []
        for k in keys:
            if k in self.held or await self.redis.set(self._lease(k), self.me, nx=True, px=LEASE_MS):
                self.held.add(k)
                got.append(k)
        # given up while the claim was on its way to Redis: a lease renewed for nobody would keep every
        # other process from streaming the instrument
        await self._release([k for k in got if k not in self.wanted])
        return [k for k in got if k in self.wanted]

    def _lease(self, k: Key) -> str:
        return f"{PREFIX}lease:{k[0]}:{k[2]}:{k[1]}"

    async def _release(self, keys: list[Key]) -> None:
        for k in keys:
            self.held.discard(k)
            await self._drop(keys=[self._lease(k)], args=[self.me])

    async def _leases(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                for k in list(self.held):
                    if not await self._renew(keys=[self._lease(k)], args=[self.me, LEASE_MS]) and k in self.held:
                        # lost it (Redis restarted, a long pause): whoever holds it now streams
                        self.held.discard(k)
                        await self.server.lost_upstream([k])
                orphans = [k for k in self.wanted - self.held]
                if orphans:
                    taken = await self.claim(orphans)
                    if taken:
                        await self.server.take_upstream(taken)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("feed: Redis lease upkeep failed: %s", exc)

    async def _read(self) -> None:
        while True:
            try:
                msg = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("feed: reading Redis failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if not msg or msg.get("type") != "message":
                continue
            try:
                channel = msg["channel"].decode()
                source_key = channel[len(PREFIX) + 5:].rsplit(":", 2)[0]
                head, _, body = msg["data"].partition(b"\n")
                self.server.deliver(source_key, Tick.from_wire(body), orjson.loads(head)[0])
            except Exception:
                log.exception("feed: a bad message on the Redis bus")
