"""Markdown pieces of a case's details in the Temporal UI: tables that stay readable, notifications summarised.

The UI renders GitHub tables, but its stylesheet gives cells no padding, so adjacent headers and values run
together ("#channeloutcome"). Each cell but the last is padded with no-break spaces, which neither the Markdown
parser nor the renderer's `white-space: pre-line` collapses."""

from __future__ import annotations

from collections import Counter

GAP = "\u00a0" * 3


def _cell(value: object) -> str:
    text = str(value).replace("\n", " ").replace("|", "\\|").strip()
    return text or "-"


def md_table(headers: list[str], rows: list[list[object]]) -> str:
    """A Markdown table with a header separator row; cells kept apart in the Temporal UI."""

    def line(cells: list[object]) -> str:
        padded = [_cell(c) + (GAP if i < len(cells) - 1 else "") for i, c in enumerate(cells)]
        return "| " + " | ".join(padded) + " |"

    return "\n".join([line(list(headers)), "|" + "---|" * len(headers), *(line(r) for r in rows)])


# One row per notification the case asked notify for: purpose, notification id, channel, outcome.
SENT = "sent (notify follows it)"
SKIPPED = "skipped by an operator"


def notification_row(template: str, notification_id: str) -> list[str]:
    purpose = template.removeprefix("TEMPLATE_").lower()
    return [purpose, notification_id, "", SENT if notification_id else SKIPPED]


def notifications_table(rows: list[list[str]]) -> str:
    """How many notifications went out for each purpose, by which channel and with what outcome."""
    if not rows:
        return "**Notifications** none yet"
    counts = Counter((purpose, channel or "-", outcome) for purpose, _, channel, outcome in rows)
    order = {purpose: i for i, (purpose, *_) in enumerate(rows)}
    table = md_table(
        ["purpose", "channel", "outcome", "count"],
        [[p, c, o, n] for (p, c, o), n in sorted(counts.items(), key=lambda kv: (order[kv[0][0]], kv[0]))],
    )
    return f"**Notifications** ({len(rows)})\n\n{table}"
