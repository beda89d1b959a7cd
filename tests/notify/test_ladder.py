"""The channel ladder's decisions, under the production delivery policy (plain logic, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.notify import ladder
from services.notify.ladder import DONE, FAILED, IN_FLIGHT, UNCONFIRMED, Track
from services.notify.policy import load, parse

POLICY = load("delivery")
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
GIVE_UP = NOW + timedelta(hours=24)


def test_first_step_is_sms_and_nothing_more_while_it_is_in_flight():
    assert ladder.plan(POLICY, {}, "home", GIVE_UP, NOW).send == ["sms"]
    tracks = {"sms": Track("sms", 1, IN_FLIGHT, sent_at=NOW)}
    p = ladder.plan(POLICY, tracks, "home", GIVE_UP, NOW + timedelta(minutes=1))
    assert p.send == [] and p.next_due == NOW + timedelta(minutes=10)  # the receipt timeout


def test_a_failed_channel_hands_over_at_once_and_is_retried_on_its_class_schedule():
    sms = Track("sms", 1, IN_FLIGHT)
    ladder.failed(POLICY, sms, "absent", NOW)
    assert (sms.state, sms.retry_at) == (FAILED, NOW + timedelta(minutes=15))
    p = ladder.plan(POLICY, {"sms": sms}, "roaming_international", GIVE_UP, NOW)
    assert p.send == ["push"] and p.next_due == NOW + timedelta(minutes=15)


def test_abroad_the_voice_call_is_skipped():
    tracks = {c: Track(c, 1, DONE) for c in ("sms", "push", "email")}
    assert ladder.plan(POLICY, tracks, "roaming_international", GIVE_UP, NOW).send == ["alternate_contact"]
    assert ladder.plan(POLICY, tracks, "home", GIVE_UP, NOW).send == ["voice"]


def test_permanent_failures_everywhere_mean_manual_outreach():
    tracks = {}
    for c in POLICY.ladder:
        t = tracks[c] = Track(c, 1, IN_FLIGHT)
        ladder.failed(POLICY, t, "permanent", NOW)
        assert t.state == DONE
    assert ladder.plan(POLICY, tracks, "home", GIVE_UP, NOW).give_up


def test_retries_run_out_after_the_schedule():
    t = Track("sms")
    for n, wait in enumerate(POLICY.retry_s["temporary"], 1):
        t.tries = n
        ladder.failed(POLICY, t, "temporary", NOW)
        assert t.retry_at == NOW + timedelta(seconds=wait)
    t.tries += 1
    ladder.failed(POLICY, t, "temporary", NOW)
    assert (t.state, t.retry_at) == (DONE, None)


def test_nothing_to_do_after_delivery_and_give_up_at_the_deadline():
    assert ladder.plan(POLICY, {"sms": Track("sms", 1, ladder.DELIVERED)}, "home", GIVE_UP, NOW).send == []
    assert ladder.plan(POLICY, {}, "home", GIVE_UP, GIVE_UP).give_up


@pytest.mark.parametrize(
    "change",
    [{"ladder": ["sms", "fax"]}, {"ladder": ["sms", "sms"]}, {"retry": {"soon": ["1s"]}}, {"skip": {"moon": ["sms"]}}],
)
def test_a_bad_policy_is_refused_at_load(change):
    raw = {
        "version": "x",
        "ladder": ["sms"],
        "retry": {"temporary": ["1s"]},
        "receipt_timeout": "1m",
        "give_up_after": "1h",
        **change,
    }
    with pytest.raises(ValueError):
        parse(raw)


def test_an_sms_without_receipt_in_time_is_left_unconfirmed_and_never_retried_on_schedule():
    sms = Track("sms", 1, IN_FLIGHT, sent_at=NOW)
    later = NOW + timedelta(minutes=10)
    assert ladder.plan(POLICY, {"sms": sms}, "home", GIVE_UP, later).timed_out == ["sms"]
    ladder.unconfirmed(sms)
    assert (sms.state, sms.retry_at, sms.sent_at) == (UNCONFIRMED, None, None)
    assert ladder.plan(POLICY, {"sms": sms}, "home", GIVE_UP, later).send == ["push"]
    others = {c: Track(c, 1, DONE) for c in ("push", "email", "voice", "alternate_contact")}
    p = ladder.plan(POLICY, {"sms": sms, **others}, "home", GIVE_UP, later + timedelta(hours=1))
    assert p.send == [] and p.give_up  # the SMS is not sent again: nothing is left to try
