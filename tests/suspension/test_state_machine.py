from __future__ import annotations

import pytest

from services.suspension.state_machine import (
    ACTIVE,
    RESTORED,
    RESTRICTED,
    SUSPENDED,
    TERMINATED,
    WARNED,
    TransitionRefused,
    barring_for,
    check_transition,
    is_restore,
)


def test_restricted_keeps_incoming_sms_and_data_so_the_verification_link_arrives():
    b = barring_for(RESTRICTED)
    assert b.outgoing_voice and b.international and not b.incoming_sms and not b.data and not b.incoming_voice


def test_suspended_bars_everything_and_restored_nothing():
    assert barring_for(SUSPENDED).incoming_voice and barring_for(SUSPENDED).data
    assert not any((barring_for(RESTORED).outgoing_voice, barring_for(RESTORED).data))


@pytest.mark.parametrize(
    ("current", "target", "actor", "reason"),
    [
        (WARNED, WARNED, "workflow", "ALREADY_IN_STATE"),
        (TERMINATED, RESTORED, "reviewer", "TRANSITION_NOT_ALLOWED"),
        (ACTIVE, RESTORED, "workflow", "TRANSITION_NOT_ALLOWED"),
        (SUSPENDED, TERMINATED, "workflow", "REVIEWER_REQUIRED"),
    ],
)
def test_refused_transitions(current, target, actor, reason):
    with pytest.raises(TransitionRefused) as refused:
        check_transition(current, target, actor)
    assert refused.value.reason == reason


def test_only_restores_of_barred_lines_count():
    assert is_restore(SUSPENDED, RESTORED) and is_restore(RESTRICTED, RESTORED)
    assert not is_restore(WARNED, RESTORED)
    check_transition(SUSPENDED, TERMINATED, "reviewer")
