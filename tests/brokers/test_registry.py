"""Finding adapters: the built-in packages and the algobridge.brokers entry points."""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterator, Mapping

import pytest

from brokers import available_brokers, get_broker, get_broker_class, reload_brokers
from brokers.base import Broker, BrokerClient, BrokerError, LoginResult
from brokers.paper import PaperBroker
from brokers.registry import ENTRY_POINT_GROUP
from brokers.zerodha import ZerodhaBroker


class PluginBroker(Broker):
    """What a separately installed adapter looks like."""

    name = "plugin"
    display_name = "Plug-in broker"
    login_kind = "form"

    def complete_login(self, callback_args: Mapping[str, str]) -> LoginResult:
        raise NotImplementedError

    def logout(self, access_token: str) -> None:
        return None

    def session(self, access_token: str) -> BrokerClient:
        raise NotImplementedError


class HalfDoneBroker(Broker):  # does not implement the interface
    name = "halfdone"
    display_name = "Half done"
    login_kind = "none"


class NotABroker:
    name = "notabroker"


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    reload_brokers()
    yield
    reload_brokers()


def _entry_points(monkeypatch, *pairs: tuple[str, str]) -> None:
    eps = [importlib.metadata.EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in pairs]

    def entry_points(**params):
        return eps if params.get("group") == ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_both_builtin_adapters_are_found():
    brokers = available_brokers()
    assert list(brokers)[0] == "paper"
    assert brokers["paper"] is PaperBroker
    assert brokers["zerodha"] is ZerodhaBroker
    assert brokers["paper"].login_kind == "none"
    assert brokers["zerodha"].login_kind == "redirect"
    assert ZerodhaBroker.config_keys == {
        "api_key": "ZERODHA_API_KEY",
        "api_secret": "ZERODHA_API_SECRET",
        "redirect_url": "REDIRECT_URL",
        "root": "ZERODHA_ROOT_URL",
        "login_url": "ZERODHA_LOGIN_URL",
        "ticker_root": "ZERODHA_TICKER_URL",
    }


def test_an_entry_point_adapter_is_found(monkeypatch):
    _entry_points(monkeypatch, ("plugin", f"{__name__}:PluginBroker"))
    brokers = available_brokers()
    assert brokers["plugin"] is PluginBroker
    assert {"paper", "zerodha"} <= set(brokers)
    assert isinstance(get_broker("plugin"), PluginBroker)


def test_bad_entry_points_are_logged_and_skipped(monkeypatch, caplog):
    _entry_points(
        monkeypatch,
        ("missing", "algobridge_no_such_module:Broker"),
        ("notabroker", f"{__name__}:NotABroker"),
        ("halfdone", f"{__name__}:HalfDoneBroker"),
        ("othername", f"{__name__}:PluginBroker"),
        ("zerodha", f"{__name__}:PluginBroker"),
        ("plugin", f"{__name__}:PluginBroker"),
    )
    with caplog.at_level(logging.WARNING, logger="algobridge.broker"):
        brokers = available_brokers()
    assert set(brokers) - {"angelone", "dhan"} == {"paper", "zerodha", "plugin"}  # less the other built-ins
    assert brokers["zerodha"] is ZerodhaBroker
    for name in ("missing", "notabroker", "halfdone", "othername", "zerodha"):
        assert f"entry point {name} =" in caplog.text


def test_a_failing_entry_point_lookup_keeps_the_builtins(monkeypatch, caplog):
    def broken(**params):
        raise RuntimeError("metadata is broken")

    monkeypatch.setattr(importlib.metadata, "entry_points", broken)
    with caplog.at_level(logging.ERROR, logger="algobridge.broker"):
        assert set(available_brokers()) - {"angelone", "dhan"} == {"paper", "zerodha"}
    assert ENTRY_POINT_GROUP in caplog.text


def test_discovery_is_cached_until_reloaded(monkeypatch):
    assert "plugin" not in available_brokers()
    _entry_points(monkeypatch, ("plugin", f"{__name__}:PluginBroker"))
    assert "plugin" not in available_brokers()
    reload_brokers()
    assert "plugin" in available_brokers()


def test_get_broker_builds_an_adapter_from_settings():
    broker = get_broker("zerodha", api_key="key", api_secret="secret")
    assert isinstance(broker, ZerodhaBroker)
    assert broker.api_key == "key"
    assert get_broker_class("paper") is PaperBroker


def test_unknown_broker_is_a_config_error():
    with pytest.raises(BrokerError) as info:
        get_broker("nosuchbroker")
    assert info.value.kind == "config"
    assert "nosuchbroker" in str(info.value)


def test_missing_settings_are_a_config_error():
    with pytest.raises(BrokerError) as info:
        get_broker("zerodha")
    assert info.value.kind == "config"
    with pytest.raises(BrokerError) as info:
        get_broker("paper", api_key="unexpected")
    assert info.value.kind == "config"


def test_settings_come_from_configuration_through_config_keys():
    config = {"ZERODHA_API_KEY": "key", "ZERODHA_API_SECRET": "secret", "REDIRECT_URL": "", "OTHER": "x"}
    settings = ZerodhaBroker.settings_from(config)
    assert settings == {"api_key": "key", "api_secret": "secret"}
    assert get_broker("zerodha", **settings).redirect_url is None
    assert PaperBroker.settings_from(config) == {}
    with pytest.raises(BrokerError) as info:
        get_broker("zerodha", **ZerodhaBroker.settings_from({}))
    assert info.value.kind == "config"


def test_discovery_does_not_import_the_kite_client():
    # kiteconnect (KiteTicker -> twisted/autobahn, ~27 MB) and requests load when a Zerodha adapter is used.
    import subprocess
    import sys

    code = ("import sys; from brokers.registry import available_brokers; assert 'zerodha' in available_brokers(); "
            "print(sorted(m for m in ('kiteconnect', 'twisted', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert out.stdout.strip() == "[]"
