"""CDRs the engine leaves out or counts late for their event time are counted in metrics, by reason."""

from __future__ import annotations

import time

from pscommon import metrics
from tests.scoring.processes import LINES, start
from tests.test_metrics import scrape, total


def cdr(line: str, t: int) -> tuple:
    return (line, "13700000001", "44", 1, t, 30, "", 0, "", 1)


async def test_future_and_late_cdrs_are_counted_by_reason(pool) -> None:
    exporting = metrics.setup("tests", port=0)
    proc = await start(pool)
    t = 1_795_000_000
    await proc.ingest([cdr(LINES[0], t)])
    before = scrape(exporting.port)
    await proc.ingest(
        [
            cdr(LINES[0], t + 60),
            cdr(LINES[0], t - 1800),  # within the allowed lateness (2 h)
            cdr(LINES[0], t - 3 * 3600),  # beyond it: day-scale windows only
            cdr(LINES[1], int(time.time()) + 10 * 86400),  # in the future: left out
        ]
    )
    after = scrape(exporting.port)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert grew("psp_scoring_cdrs_dropped_total", reason="future") == 1
    assert grew("psp_scoring_cdrs_late_total", lateness="within") == 1
    assert grew("psp_scoring_cdrs_late_total", lateness="beyond") == 1
    assert grew("psp_scoring_cdrs_dropped_total", reason="late") == 0
