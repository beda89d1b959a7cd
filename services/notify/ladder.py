"""What to do next for one notification: which channel to try now, when to look again, when to give up.

Plain logic over what is known of each channel (no I/O). A channel that fails hands over to the next rung at
once and is itself retried on the schedule of its error class; the first channel that lands ends it.

An SMS the SMSC accepted is never sent again on a guess: smpp34 cannot ask the SMSC about it (no query_sm), so
only a final receipt saying it failed brings a retry. Without one by the receipt timeout (the SMSC may still be
delivering it, or the receipt was lost with a killed process), the ladder moves on and the SMS stays unconfirmed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.notify.policy import DeliveryPolicy

UNTRIED, IN_FLIGHT, FAILED, DONE, DELIVERED = "untried", "in_flight", "failed", "done", "delivered"
# Set by a failed SMS receipt outside any step; the next step turns it into FAILED with the class's retry.
RECEIPT_FAILED = "receipt_failed"
# An accepted SMS whose final receipt did not come in time: not in flight, never retried on schedule; a late
# receipt still settles it (delivered, or RECEIPT_FAILED and then retried).
UNCONFIRMED = "unconfirmed"


@dataclass
class Track:
    """One channel of one notification."""

    channel: str
    tries: int = 0
    state: str = UNTRIED
    error_class: str = ""
    retry_at: datetime | None = None  # set while a failed channel has a retry left
    sent_at: datetime | None = None  # of the attempt in flight (an SMS awaiting its receipt)


@dataclass
class Plan:
    send: list[str] = field(default_factory=list)  # the channel to attempt now, if any
    timed_out: list[str] = field(default_factory=list)  # in flight too long without a receipt
    give_up: bool = False  # nothing delivered and nothing left to try: a person must reach the holder
    next_due: datetime | None = None


def failed(policy: DeliveryPolicy, t: Track, error_class: str, now: datetime) -> None:
    """Records a failed attempt on the track: retried after the class's next wait, or done when none is left."""
    waits = policy.retry_s[error_class]
    t.error_class = error_class
    t.sent_at = None
    if t.tries <= len(waits):
        t.state, t.retry_at = FAILED, now + timedelta(seconds=waits[t.tries - 1])
    else:
        t.state, t.retry_at = DONE, None


def unconfirmed(t: Track) -> None:
    """The SMS's receipt timed out: the ladder goes on without sending it again."""
    t.state, t.error_class, t.sent_at, t.retry_at = UNCONFIRMED, "temporary", None, None


def plan(policy: DeliveryPolicy, tracks: dict[str, Track], location: str, give_up_at: datetime, now: datetime) -> Plan:
    p = Plan()
    if any(t.state == DELIVERED for t in tracks.values()):
        return p
    if now >= give_up_at:
        p.give_up = True
        return p
    receipt_timeout = timedelta(seconds=policy.receipt_timeout_s)
    for t in tracks.values():
        if t.state == IN_FLIGHT and t.sent_at is not None and t.sent_at + receipt_timeout <= now:
            p.timed_out.append(t.channel)
    ladder = policy.ladder_at(location)
    in_flight = [c for c, t in tracks.items() if t.state == IN_FLIGHT and c not in p.timed_out]
    if not in_flight and not p.timed_out:
        # One channel at a time, in ladder order: a due retry of an earlier rung before the next untried one,
        # so a holder whose handset comes back gets the SMS, not the SMS and a call at once.
        untried = [c for c in ladder if tracks.get(c, Track(c)).state == UNTRIED]
        due = [c for c in ladder if c in tracks and _retry_due(tracks[c], now)]
        ready = [c for c in ladder if c in due or (untried and c == untried[0])]
        p.send = ready[:1]
        if not ready and not untried and not any(tracks[c].state == FAILED for c in ladder if c in tracks):
            p.give_up = True  # every rung tried, no retry left
            return p
    dues = [give_up_at]
    dues += [
        t.retry_at for c, t in tracks.items() if c in ladder and t.state == FAILED and t.retry_at and c not in p.send
    ]
    dues += [t.sent_at + receipt_timeout for c, t in tracks.items() if c in in_flight and t.sent_at]
    p.next_due = min(dues)
    return p


def _retry_due(t: Track, now: datetime) -> bool:
    return t.state == FAILED and t.retry_at is not None and t.retry_at <= now
