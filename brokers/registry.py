"""Finding broker adapters: the packages in `brokers/`, and the `algobridge.brokers` entry points.

A built-in adapter is a sub-package of `brokers` that exports its `Broker` subclass as
`BROKER_CLASS`. A separately installed adapter declares an entry point, e.g. in its pyproject:

    [project.entry-points."algobridge.brokers"]
    mybroker = "algobridge_mybroker:MyBroker"

The entry point's name must equal the class's `name`. An adapter that fails to import or is not a
`Broker` is logged and skipped: one broken plug-in must not take the bridge down. Built-ins win over
an entry point of the same name.

Discovery runs once per process; `reload_brokers()` forgets the result (tests, or after installing
a plug-in in a running shell).
"""

from __future__ import annotations

import functools
import importlib
import logging
import pkgutil
from importlib import metadata
from typing import Any

from brokers.base import Broker, BrokerError, ErrorKind

log = logging.getLogger("algobridge.broker")

ENTRY_POINT_GROUP = "algobridge.brokers"
_PACKAGE = "brokers"


def _valid_adapter(obj: object, expected_name: str, origin: str) -> type[Broker] | None:
    if not (isinstance(obj, type) and issubclass(obj, Broker)):
        log.warning("Broker adapter %s is not a Broker subclass; skipped", origin)
        return None
    if getattr(obj, "__abstractmethods__", None):
        log.warning(
            "Broker adapter %s does not implement %s; skipped",
            origin,
            ", ".join(sorted(obj.__abstractmethods__)),
        )
        return None
    if getattr(obj, "name", None) != expected_name:
        log.warning(
            "Broker adapter %s is named %r, expected %r; skipped",
            origin,
            getattr(obj, "name", None),
            expected_name,
        )
        return None
    return obj


def _builtin_adapters() -> dict[str, type[Broker]]:
    package = importlib.import_module(_PACKAGE)
    found: dict[str, type[Broker]] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.ispkg or info.name.startswith("_"):
            continue
        module_name = f"{_PACKAGE}.{info.name}"
        try:
            module = importlib.import_module(module_name)
        except Exception:
            log.exception("Built-in broker adapter %s failed to import; skipped", module_name)
            continue
        adapter = getattr(module, "BROKER_CLASS", None)
        if adapter is None:
            continue  # a helper package shared by adapters, not an adapter
        cls = _valid_adapter(adapter, info.name, module_name)
        if cls is not None:
            found[cls.name] = cls
    return found


def _entry_point_adapters(taken: set[str]) -> dict[str, type[Broker]]:
    found: dict[str, type[Broker]] = {}
    try:
        entry_points = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception:
        log.exception("Could not read the %s entry points", ENTRY_POINT_GROUP)
        return found
    for ep in entry_points:
        origin = f"entry point {ep.name} = {ep.value}"
        if ep.name in taken or ep.name in found:
            log.warning("Broker %s is already registered; %s skipped", ep.name, origin)
            continue
        try:
            adapter = ep.load()
        except Exception:
            log.exception("Broker adapter %s failed to load; skipped", origin)
            continue
        cls = _valid_adapter(adapter, ep.name, origin)
        if cls is not None:
            found[cls.name] = cls
    return found


@functools.cache
def _discover() -> dict[str, type[Broker]]:
    builtins = _builtin_adapters()
    plugins = _entry_point_adapters(set(builtins))
    adapters = {**builtins, **plugins}
    log.info("Broker adapters: %s", ", ".join(adapters) or "none")
    return adapters


def available_brokers() -> dict[str, type[Broker]]:
    """Every usable adapter class by name, the paper broker first."""
    adapters = _discover()
    order = sorted(adapters, key=lambda name: (name != "paper", name))
    return {name: adapters[name] for name in order}


def reload_brokers() -> None:
    """Forget the discovered adapters; the next call looks again."""
    _discover.cache_clear()


def get_broker_class(name: str) -> type[Broker]:
    try:
        return _discover()[name]
    except KeyError:
        raise BrokerError(f"Unknown broker: {name}", kind=ErrorKind.CONFIG) from None


def get_broker(name: str, **settings: Any) -> Broker:
    """An adapter instance configured with `settings` (see its class's `config_keys`)."""
    cls = get_broker_class(name)
    try:
        return cls(**settings)
    except TypeError as exc:
        # Missing or unexpected settings: a configuration problem, not a crash.
        raise BrokerError(f"Broker {name} is not configured correctly: {exc}", kind=ErrorKind.CONFIG) from exc
