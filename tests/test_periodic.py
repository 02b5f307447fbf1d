"""The periodic jobs' stop: a round in progress finishes (it is not cut inside its
transaction), a sleeping job stops at once, and a round that swallows cancellation is
cancelled until it ends."""

from __future__ import annotations

import asyncio
import time

from storage import periodic
from storage.periodic import Periodic


async def test_stop_lets_the_round_in_progress_finish():
    finished = []
    started = asyncio.Event()

    async def round_() -> None:
        started.set()
        await asyncio.sleep(0.2)
        finished.append(True)

    job = Periodic("test-round", 60.0, round_)
    await job.start()
    await started.wait()
    await job.stop()
    assert finished == [True]


async def test_a_sleeping_job_stops_at_once():
    rounds = []

    async def round_() -> None:
        rounds.append(True)

    job = Periodic("test-sleep", 60.0, round_)
    await job.start()
    await asyncio.sleep(0.05)
    began = time.monotonic()
    await job.stop()
    assert time.monotonic() - began < 1.0 and rounds == [True]


async def test_a_round_that_swallows_cancellation_is_cancelled_until_it_ends(monkeypatch):
    monkeypatch.setattr(periodic, "STOP_WAIT", 0.1)
    swallowed = []

    async def stubborn() -> None:
        for _ in range(3):
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                swallowed.append(True)  # as a library that turns it into its own error
        await asyncio.sleep(60)

    job = Periodic("test-stubborn", 60.0, stubborn)
    await job.start()
    await asyncio.sleep(0.05)
    await asyncio.wait_for(job.stop(), 10)
    assert len(swallowed) == 3
