"""Upkeep in slices between batches: every slice holds the lock, a batch waiting for it goes before the next
slice, and late upkeep takes longer slices."""

from __future__ import annotations

import asyncio
import math

import pytest

from services.scoring import slices


async def order_with_a_batch_arriving_in_each_step(due: float, monkeypatch) -> list[str]:
    """Six steps of upkeep; during each, a batch arrives and waits for the lock. The order they got it in."""
    monkeypatch.setattr(slices, "SLICE_S", 0.0)  # one step a slice while on time
    monkeypatch.setattr(slices, "LATE_SLICE_S", 60.0)  # every step in one slice once late
    lock = asyncio.Lock()
    order: list[str] = []
    arrived: list[asyncio.Task[None]] = []

    async def batch(n: int) -> None:
        async with lock:
            order.append(f"batch {n}")

    def step(start: int, stop: int) -> None:
        assert lock.locked()
        order.append(f"step {start}")
        arrived.append(asyncio.create_task(batch(start)))

    await slices.between_batches(lock, 6, 1, step, due)
    await asyncio.gather(*arrived)
    return order


async def test_a_batch_waiting_for_the_lock_goes_before_the_next_slice(monkeypatch) -> None:
    order = await order_with_a_batch_arriving_in_each_step(math.inf, monkeypatch)
    assert order == [what for n in range(6) for what in (f"step {n}", f"batch {n}")]


async def test_late_upkeep_takes_longer_slices(monkeypatch) -> None:
    order = await order_with_a_batch_arriving_in_each_step(0.0, monkeypatch)
    assert order == [f"step {n}" for n in range(6)] + [f"batch {n}" for n in range(6)]


async def test_a_failing_step_releases_the_lock() -> None:
    lock = asyncio.Lock()

    def fail(start: int, stop: int) -> None:
        raise ValueError("a bug in a step")

    with pytest.raises(ValueError):
        await slices.between_batches(lock, 3, 1, fail)
    assert not lock.locked()
