"""The engine polls on a fixed cadence: a slow round does not push every later poll back."""

from __future__ import annotations

import pytest

from console.deploy.engine import Cadence


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_polls_keep_their_ticks_whatever_each_round_took() -> None:
    clock = FakeClock()
    cadence = Cadence(1.0, clock)
    starts = []
    for work in (0.2, 0.05, 0.4, 0.0):  # each round's reads
        starts.append(clock.now)
        clock.now += work
        clock.now += cadence.delay()
    # Every round starts on a whole second from the start: the reads' time does not add up.
    assert starts == pytest.approx([100.0, 101.0, 102.0, 103.0])


def test_a_round_that_overran_waits_for_the_next_tick_without_a_burst() -> None:
    clock = FakeClock()
    cadence = Cadence(1.0, clock)
    clock.now += 2.5  # the first round took two and a half periods
    assert cadence.delay() == 0.5  # the tick at 103, not an immediate catch-up round
    clock.now += 0.5
    clock.now += 0.1
    assert round(cadence.delay(), 6) == 0.9
