"""Upkeep in slices between batches: every slice holds the lock, a waiting batch goes between two slices, and
late upkeep takes longer slices."""

from __future__ import annotations

import asyncio
import math

from services.scoring import slices


async def interleaving(due: float, monkeypatch) -> list[str]:
    """The order in which 6 steps of upkeep and a stream of batches waiting on the lock got it."""
    monkeypatch.setattr(slices, "SLICE_S", 0.0)  # one step a slice while on time
    monkeypatch.setattr(slices, "LATE_SLICE_S", 60.0)  # every step in one slice once late
    lock = asyncio.Lock()
    order: list[str] = []
    upkeep_done = asyncio.Event()

    def step(start: int, stop: int) -> None:
        assert lock.locked()
        order.append("upkeep")

    async def batches() -> None:
        while not upkeep_done.is_set():
            async with lock:
                order.append("batch")
            await asyncio.sleep(0)

    stream = asyncio.create_task(batches())
    await asyncio.sleep(0)
    await slices.between_batches(lock, 6, 1, step, due)
    upkeep_done.set()
    await stream
    return order


async def test_on_time_upkeep_lets_a_waiting_batch_in_between_its_slices(monkeypatch) -> None:
    order = await interleaving(math.inf, monkeypatch)
    upkeep = [i for i, what in enumerate(order) if what == "upkeep"]
    assert len(upkeep) == 6
    assert all(order[i + 1] == "batch" for i in upkeep[:-1])  # a batch after each slice


async def test_late_upkeep_takes_longer_slices(monkeypatch) -> None:
    order = await interleaving(0.0, monkeypatch)
    first = order.index("upkeep")
    assert order[first : first + 6] == ["upkeep"] * 6  # one slice: no batch in between


async def test_a_failing_step_releases_the_lock() -> None:
    lock = asyncio.Lock()

    def fail(start: int, stop: int) -> None:
        raise ValueError("a bug in a step")

    try:
        await slices.between_batches(lock, 3, 1, fail)
    except ValueError:
        pass
    assert not lock.locked()
