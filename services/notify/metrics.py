"""Notify's metrics (instruments declared in pscommon/metrics.py)."""

from __future__ import annotations

from carrier.notify.v1 import notify_pb2
from pscommon import metrics

LOCATIONS = frozenset({"home", "roaming_domestic", "roaming_international", "absent"})


def purpose(template: int) -> str:
    """warning, suspended, restored ... from the notification's template."""
    try:
        return notify_pb2.Template.Name(template).removeprefix("TEMPLATE_").lower()  # type: ignore[arg-type]
    except ValueError:
        return "other"


def location(name: str) -> str:
    return name if name in LOCATIONS else "unknown"  # "": the HLR did not answer


def attempted(channel: str, where: str, outcome: str) -> None:
    metrics.NOTIFY_ATTEMPTS.add(1, channel=channel, location=location(where), outcome=outcome)


def delivered(template: int, channel: str, where: str, took_s: float) -> None:
    p, loc = purpose(template), location(where)
    metrics.NOTIFICATIONS.add(1, purpose=p, channel=channel, location=loc, outcome="delivered")
    metrics.DELIVERY_DURATION.record(took_s, purpose=p, channel=channel, location=loc)


def undelivered(template: int, where: str) -> None:
    metrics.NOTIFICATIONS.add(
        1, purpose=purpose(template), channel="none", location=location(where), outcome="undelivered"
    )
