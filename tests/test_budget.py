"""The per-viewer allowance: a burst up to the rate, then the rate, never more."""

from __future__ import annotations

from signaling.rtp.budget import Budget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_up_to_the_rate_then_refusals_counted_and_the_first_logged(caplog):
    clock = Clock()
    budget = Budget(10, "over budget", clock)
    assert [budget.take() for _ in range(12)] == [True] * 10 + [False] * 2
    assert budget.refused == 2
    assert [r.getMessage() for r in caplog.records] == ["over budget"]


def test_the_allowance_refills_at_the_rate_and_no_further():
    clock = Clock()
    budget = Budget(10, "over budget", clock)
    while budget.take():
        pass
    clock.now += 0.25  # two and a half more
    assert [budget.take() for _ in range(3)] == [True, True, False]
    clock.now += 60  # idle for a minute: still no more than a second's worth
    assert sum(budget.take() for _ in range(30)) == 10
