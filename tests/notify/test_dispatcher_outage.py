"""A step cut short by PostgreSQL restarting is a passing condition: one warning line, no traceback in the log
(a traceback in a service's log is a finding of the kill drill)."""

from __future__ import annotations

import logging

import asyncpg
import pytest

from services.notify.dispatcher import Dispatcher


class Stepping(Dispatcher):
    def __init__(self, err: Exception) -> None:
        self.err = err
        self.changed = 0
        self.on_change = self._changed

    def _changed(self) -> None:
        self.changed += 1

    async def step(self, n, lease) -> None:  # type: ignore[no-untyped-def, override]
        raise self.err


@pytest.mark.parametrize(
    "err",
    [ConnectionRefusedError(111, "Connection refused"), asyncpg.CannotConnectNowError("starting up")],
)
async def test_a_database_outage_is_one_line_without_a_traceback(err: Exception, caplog) -> None:
    d = Stepping(err)
    with caplog.at_level(logging.INFO, logger="services.notify.dispatcher"):
        await d._step_safely(None, None)  # type: ignore[arg-type]
    assert d.changed == 1
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert caplog.records[0].exc_info is None and type(err).__name__ in caplog.records[0].getMessage()


async def test_any_other_failure_keeps_its_traceback(caplog) -> None:
    d = Stepping(KeyError("channel"))
    with caplog.at_level(logging.INFO, logger="services.notify.dispatcher"):
        await d._step_safely(None, None)  # type: ignore[arg-type]
    assert caplog.records[0].exc_info is not None
