"""The collector keeps long-lived windows out of its full collections, and still reclaims young cycles."""

from __future__ import annotations

import gc
import weakref

import pytest

from services.scoring import heap


@pytest.fixture
def restore_gc():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_survivors_are_frozen_and_garbage_cycles_are_not(restore_gc):
    before = gc.get_freeze_count()
    kept = [Node() for _ in range(1000)]
    dropped = Node()
    gone = weakref.ref(dropped)
    del dropped
    heap.freeze_survivors()
    assert gone() is None  # the cycle that was garbage was collected before the freeze
    assert gc.get_freeze_count() >= before + len(kept)
    ids = {id(n) for n in kept}
    assert not any(id(o) in ids for o in gc.get_objects())  # out of every generation a collection scans


class Window:
    def __init__(self) -> None:
        self.calls = [1, 2, 3]


def test_a_frozen_object_is_freed_when_dropped(restore_gc):
    window = Window()
    gone = weakref.ref(window)
    heap.freeze_survivors()
    assert gc.is_tracked(window.calls)
    del window
    assert gone() is None  # reference counting frees frozen objects as any other, no collection needed


def test_tune_sets_a_young_threshold():
    threshold = gc.get_threshold()
    try:
        heap.tune()
        assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_a_cycle_that_died_after_surviving_collections_is_reclaimed_not_frozen(restore_gc):
    node = Node()
    gc.collect()  # it survives: now in the oldest generation
    gone = weakref.ref(node)
    del node
    heap.freeze_survivors()
    assert gone() is None
