"""The plumbing the HTTP adapters share: pacing per account (counted with a fake clock, never timed),
the translation of network failures, error messages, history ranges."""

import datetime as dt

import pytest
import requests

from brokers.base import BrokerError, ErrorKind, check_history_range
from brokers.common import MAX_MESSAGE, KeyedPacer, Pacer, network_errors, short_message


class FakeTime:
    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def test_pacer_spaces_calls():
    fake = FakeTime()
    pacer = Pacer(2, clock=fake.clock, sleep=fake.sleep)
    pacer.wait()
    pacer.wait()
    pacer.wait()
    assert fake.sleeps == [0.5, 1.0]


def test_keys_do_not_wait_for_each_other():
    fake = FakeTime()
    pacer = KeyedPacer(2, clock=fake.clock, sleep=fake.sleep)
    pacer.wait("alice")
    pacer.wait("alice")  # alice is paced
    assert fake.sleeps == [0.5]
    pacer.wait("bob")  # bob's first call does not wait behind alice
    pacer.wait("carol")
    assert fake.sleeps == [0.5]
    pacer.wait("bob")
    assert fake.sleeps == [0.5, 0.5]
    assert pacer.pacer("alice") is pacer.pacer("alice")
    assert pacer.pacer("alice") is not pacer.pacer("bob")


def test_unpaced_and_idle_pacers_dropped():
    fake = FakeTime()
    unpaced = KeyedPacer(0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(3):
        unpaced.wait("alice")
    assert fake.sleeps == []
    pacer = KeyedPacer(1, clock=fake.clock, sleep=fake.sleep)
    for n in range(KeyedPacer._PRUNE_AT):
        pacer.wait(f"token-{n}")
    busy = pacer.pacer("token-0")
    fake.now += 5  # every pacer is idle again
    pacer.wait("new")
    assert len(pacer._pacers) == 1
    assert pacer.pacer("token-0") is not busy


@pytest.mark.parametrize(
    ("raised", "status", "message"),
    [(requests.ReadTimeout("slow"), 504, "Dhan did not answer in time"),
     (requests.ConnectionError("refused"), 503, "Could not reach Dhan")],
)
def test_network_errors_become_broker_errors(raised, status, message):
    with pytest.raises(BrokerError) as caught, network_errors("Dhan", "quotes"):
        raise raised
    assert (caught.value.status, caught.value.kind, str(caught.value)) == (status, ErrorKind.NETWORK, message)
    assert caught.value.__cause__ is raised
    with pytest.raises(KeyError), network_errors("Dhan", "quotes"):  # anything else passes through
        raise KeyError("x")


def test_short_message():
    assert short_message("  two\n lines ") == "two lines"
    long = short_message("x" * 1000)
    assert len(long) == MAX_MESSAGE
    assert long.endswith("…")


def test_check_history_range():
    start = dt.datetime(2026, 1, 5, 9, 15, tzinfo=dt.UTC)
    check_history_range(start, start)
    with pytest.raises(ValueError, match="timezone-aware"):
        check_history_range(start.replace(tzinfo=None), start)
    with pytest.raises(BrokerError) as caught:
        check_history_range(start, start - dt.timedelta(minutes=1))
    assert (caught.value.status, caught.value.kind) == (400, ErrorKind.INPUT)
