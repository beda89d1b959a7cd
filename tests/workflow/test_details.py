"""The case details' Markdown: tables the Temporal UI renders as tables, notifications summarised."""

from __future__ import annotations

from workflows.details import GAP, md_table, notification_row, notifications_table


def test_a_table_has_a_header_separator_and_cells_kept_apart() -> None:
    table = md_table(["#", "channel", "detail"], [[1, "sms", "stat:DELIVRD | err:000"], [2, "", "x\ny"]])
    lines = table.splitlines()
    assert lines[1] == "|---|---|---|"
    # The UI's stylesheet gives cells no padding: every cell but the last ends in no-break spaces.
    assert lines[0] == f"| #{GAP} | channel{GAP} | detail |"
    # A pipe in a value is escaped (it would split the cell), a newline flattened, an empty value shown as "-".
    assert lines[2] == f"| 1{GAP} | sms{GAP} | stat:DELIVRD \\| err:000 |"
    assert lines[3] == f"| 2{GAP} | -{GAP} | x y |"


def test_notifications_are_counted_by_purpose_channel_and_outcome() -> None:
    rows = [
        notification_row("TEMPLATE_WARNING", "n-1"),
        notification_row("TEMPLATE_REMINDER", "n-2"),
        notification_row("TEMPLATE_REMINDER", "n-3"),
        notification_row("TEMPLATE_REMINDER", ""),
    ]
    rows[0][2:] = ["push", "delivered"]
    text = notifications_table(rows)
    assert text.startswith("**Notifications** (4)")
    assert "n-1" not in text and "n-2" not in text
    body = [[c.strip(" \u00a0") for c in line.strip("|").split("|")] for line in text.splitlines()[2:]]
    assert body[0] == ["purpose", "channel", "outcome", "count"]
    assert body[2:] == [
        ["warning", "push", "delivered", "1"],
        ["reminder", "-", "sent (notify follows it)", "2"],
        ["reminder", "-", "skipped by an operator", "1"],
    ]
    assert notifications_table([]) == "**Notifications** none yet"
