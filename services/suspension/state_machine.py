"""The line's protective-suspension state machine: which moves are allowed and what each state bars."""

from __future__ import annotations

from dataclasses import dataclass

from carrier.common.v1.common_pb2 import LineState

ACTIVE = LineState.LINE_STATE_ACTIVE
WARNED = LineState.LINE_STATE_WARNED
RESTRICTED = LineState.LINE_STATE_RESTRICTED
SUSPENDED = LineState.LINE_STATE_SUSPENDED
RESTORED = LineState.LINE_STATE_RESTORED
TERMINATED = LineState.LINE_STATE_TERMINATED

ALLOWED: dict[LineState.ValueType, set[LineState.ValueType]] = {
    ACTIVE: {WARNED, RESTRICTED, SUSPENDED, TERMINATED},
    WARNED: {RESTRICTED, SUSPENDED, RESTORED, TERMINATED},
    RESTRICTED: {SUSPENDED, RESTORED, TERMINATED},
    SUSPENDED: {RESTRICTED, RESTORED, TERMINATED},
    RESTORED: {WARNED, RESTRICTED, SUSPENDED, TERMINATED},
    TERMINATED: set(),
}

# Only these actors may end a line for good.
TERMINATING_ACTORS = {"reviewer"}


@dataclass(frozen=True)
class Barring:
    outgoing_voice: bool = False
    outgoing_sms: bool = False
    incoming_voice: bool = False
    incoming_sms: bool = False
    data: bool = False
    international: bool = False


NOTHING_BARRED = Barring()
# Restricted: the line cannot be used to call out, but the holder still receives calls, SMS and data,
# so the verification link and the bank's one-time codes still arrive.
RESTRICTED_BARRING = Barring(outgoing_voice=True, outgoing_sms=True, international=True)
EVERYTHING_BARRED = Barring(True, True, True, True, True, True)


def barring_for(state: LineState.ValueType) -> Barring:
    if state == RESTRICTED:
        return RESTRICTED_BARRING
    if state in (SUSPENDED, TERMINATED):
        return EVERYTHING_BARRED
    return NOTHING_BARRED


class TransitionRefused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_transition(current: LineState.ValueType, target: LineState.ValueType, actor_kind: str) -> None:
    if target == current:
        raise TransitionRefused("ALREADY_IN_STATE", f"line is already {LineState.Name(current)}")
    if target not in ALLOWED[current]:
        raise TransitionRefused(
            "TRANSITION_NOT_ALLOWED", f"{LineState.Name(current)} -> {LineState.Name(target)} is not allowed"
        )
    if target == TERMINATED and actor_kind not in TERMINATING_ACTORS:
        raise TransitionRefused("REVIEWER_REQUIRED", "only a reviewer may terminate a line")


def is_restore(current: LineState.ValueType, target: LineState.ValueType) -> bool:
    """A restore that counts: the line had been barred."""
    return target == RESTORED and current in (RESTRICTED, SUSPENDED)
