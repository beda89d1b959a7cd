"""`psctl views`: the operators' common lists as Temporal list queries and UI links.
`psctl case list --view NAME`: runs one and prints the cases as a table (no personal data: masked numbers only)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from temporalio.client import WorkflowExecution

from pscommon import temporal
from pscommon.config import Settings, settings

OPEN = 'ExecutionStatus = "Running"'


@dataclass(frozen=True)
class View:
    name: str
    what: str
    query: str  # {province} is filled in for views by province

    def rendered(self, province: str) -> str:
        return self.query.format(province=province)


VIEWS = [
    View(
        "suspended-in-province",
        "lines suspended now, by home province",
        f'CaseStage = "suspended" AND HomeProvince = "{{province}}" AND {OPEN}',
    ),
    View(
        "barred-in-province",
        "lines restricted or suspended now, by home province",
        f'CaseStage IN ("restricted", "suspended") AND HomeProvince = "{{province}}" AND {OPEN}',
    ),
    View(
        "needs-attention",
        "a saga step failed for good: an operator retries, skips, restores or closes (psctl case act)",
        f'CaseStage = "needs_attention" AND {OPEN}',
    ),
    View(
        "reviews-past-sla",
        "a review outlived its SLA and was escalated; nobody has decided yet",
        f'CaseStage = "review_escalated" AND {OPEN}',
    ),
    View(
        "waiting-for-review",
        "appeals, restore approvals and terminations waiting for a reviewer",
        f'CaseStage IN ("in_review", "awaiting_reviewer", "termination_review", "review_escalated") AND {OPEN}',
    ),
    View(
        "roamers-not-reached",
        "roaming handsets whose warning reached no channel: reach the holder another way",
        # WarningDelivered is set by cases started after it was added; older ones only show it in their stage.
        f'Roaming = true AND (WarningDelivered = false OR CaseStage = "warning_undelivered") AND {OPEN}',
    ),
    View(
        "extreme-risk-open",
        "open cases assessed at extreme risk",
        f'RiskLevel = "extreme" AND {OPEN}',
    ),
]
BY_NAME = {v.name: v for v in VIEWS}


def ui_link(cfg: Settings, query: str) -> str:
    return (
        f"{cfg.temporal_ui_url}/namespaces/{cfg.temporal_namespace}/workflows?query="
        f"{urllib.parse.quote(query, safe='')}"
    )


def print_views(province: str) -> int:
    cfg = settings()
    for v in VIEWS:
        query = v.rendered(province)
        print(f"{v.name}: {v.what}")
        print(f"  query  {query}")
        print(f"  UI     {ui_link(cfg, query)}")
        print(f"  psctl  psctl case list --view {v.name}" + (" --province " + province if "{" in v.query else ""))
    return 0


COLUMNS = ["case", "stage", "risk", "province", "line", "roaming", "warned", "started (UTC)"]


def _row(wf: WorkflowExecution) -> list[str]:
    sa = wf.typed_search_attributes

    def flag(value: bool | None) -> str:
        return "-" if value is None else ("yes" if value else "no")

    return [
        wf.id,
        sa.get(temporal.CASE_STAGE) or "-",
        sa.get(temporal.RISK_LEVEL) or "-",
        sa.get(temporal.HOME_PROVINCE) or "-",
        sa.get(temporal.MASKED_NUMBER) or "-",
        flag(sa.get(temporal.ROAMING)),
        flag(sa.get(temporal.WARNING_DELIVERED)),
        wf.start_time.strftime("%Y-%m-%d %H:%M"),
    ]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [COLUMNS, *rows])


async def list_cases(view: str | None, query: str | None, province: str | None, limit: int) -> int:
    if view is not None:
        chosen = BY_NAME.get(view)
        if chosen is None:
            print(f"--view: no view {view}; known: {', '.join(BY_NAME)} (psctl views)")
            return 2
        if "{province}" in chosen.query and not province:
            print(f"--province: the view {view} needs a home province code, e.g. --province 44")
            return 2
        query = chosen.rendered(province or "")
    assert query is not None
    cfg = settings()
    client = await temporal.connect(cfg, wait_s=5)
    rows = [_row(wf) async for wf in client.list_workflows(query, limit=limit)]
    print(f"{len(rows)} case(s): {query}")
    if rows:
        print(table(rows))
    print(f"Temporal UI: {ui_link(cfg, query)}")
    return 0
