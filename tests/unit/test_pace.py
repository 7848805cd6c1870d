"""The rate limit's slots, on a clock the test moves: evenly spaced, no burst, taken only when asked for."""

from __future__ import annotations

import threading

import pytest

from adapters.pace import Pace


class Ticks:
    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


def test_slots_are_spaced_by_the_interval_without_a_burst() -> None:
    ticks = Ticks()
    pace = Pace(4, clock=ticks)
    assert [pace.reserve() for _ in range(4)] == [0.0, 0.25, 0.5, 0.75]  # four at once: spread over a second
    ticks.value += 2.0  # idle for long: no credit saved up, the next one is now and the one after waits again
    assert [pace.reserve(), pace.reserve()] == [0.0, 0.25]


def test_a_bounded_reservation_takes_nothing_it_cannot_use() -> None:
    ticks = Ticks()
    pace = Pace(1, clock=ticks)
    assert pace.reserve(within=0) == 0.0
    assert pace.reserve(within=0.5) is None  # the next slot is 1 s away
    assert pace.reserve(within=0.5) is None  # and stays there: a refusal did not push it further
    assert pace.reserve(within=1.0) == 1.0
    ticks.value += 2.0
    assert pace.reserve(within=0) == 0.0


def test_waiting_ends_when_the_process_stops() -> None:
    pace = Pace(0.001)  # a slot every 1,000 s
    stopping = threading.Event()
    assert pace.wait(stopping)  # the first is now
    stopping.set()
    assert not pace.wait(stopping)  # would wait 1,000 s: returns at once, told not to send
    assert not pace.wait(stopping)


@pytest.mark.parametrize("per_second", [0, -1.0])
def test_a_rate_must_be_positive(per_second: float) -> None:
    with pytest.raises(ValueError, match="above 0 requests per second"):
        Pace(per_second)
