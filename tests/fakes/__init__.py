"""Test doubles that speak a real protocol over a real socket (no mocks of our own code)."""

from tests.fakes.kite_server import FakeKite, RunningKite, running_kite

__all__ = ["FakeKite", "RunningKite", "running_kite"]
