"""psctl replay follows the scenario spec: whole-file checks first, decisions in event time, repeatable."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from pscli.replay import replay
from tests.helpers import tls_as

T0 = datetime.fromisoformat("2026-02-06T09:00:00+08:00")
COURIER, SCAM, TRAVELLER = "13512340001", "19312340002", "15912340003"


def _cdr(msisdn, peer, minute, duration, direction="out", province="51", **extra):
    return {
        "kind": "cdr",
        "msisdn": msisdn,
        "peer": peer,
        "peer_province": province,
        "direction": direction,
        "service": "voice",
        "start": (T0 + timedelta(minutes=minute)).isoformat(),
        "duration_s": duration,
        "cell_id": "460-00-1-1",
        "roaming": "none",
        "country": None,
        "imei": "8612" + msisdn,  # a handset each: three lines on one handset would be evidence (SHARED_HANDSET)
        **extra,
    }


def scenario() -> list[dict]:
    lines = [
        {
            "kind": "subscriber",
            "msisdn": COURIER,
            "home_province": "51",
            "opened_at": "2012-05-01",
            "holder_ref": "h-1",
            "enterprise": "SF-Express",
            "language": "zh",
        },
        {
            "kind": "subscriber",
            "msisdn": SCAM,
            "home_province": "44",
            "opened_at": "2026-01-30",
            "holder_ref": "h-2",
            "enterprise": None,
            "language": "zh",
            "persona": "extra keys are ignored",
        },
        {
            "kind": "subscriber",
            "msisdn": TRAVELLER,
            "home_province": "65",
            "opened_at": "2015-03-01",
            "holder_ref": "h-3",
            "enterprise": None,
            "language": "en",
        },
        {"kind": "cell", "cell_id": "460-00-9-9", "province": "52", "risk": "high"},
    ]
    events = []
    for i in range(22):  # courier: 22 short local calls in 90 minutes, half call back
        events.append(_cdr(COURIER, f"158{i:08d}", 4 * i, 30))
        if i % 2 == 0:
            events.append(_cdr(COURIER, f"158{i:08d}", 4 * i + 1, 10, "in"))
    for i in range(20):  # scam: a new line calling strangers in other provinces every 2 minutes
        events.append(_cdr(SCAM, f"137{i:08d}", 2 * i, 0 if i % 2 else 12, province="35"))
    for i in range(3):  # traveller abroad, calling home
        events.append(
            _cdr(
                TRAVELLER,
                f"139{i:08d}",
                30 * i,
                200,
                province="65",
                cell_id=None,
                roaming="international",
                country="NP",
            )
        )
    events.append({"kind": "report", "msisdn": SCAM, "at": (T0 + timedelta(hours=3)).isoformat(), "source": "police"})
    events.sort(key=lambda e: e.get("start") or e.get("at"))
    return lines + events


def write(path: pathlib.Path, objs: list[dict]) -> pathlib.Path:
    path.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs))
    return path


def psctl(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pscli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


async def test_replay_writes_one_decision_per_subscriber_and_is_repeatable(stack, tmp_path):
    src = write(tmp_path / "s.jsonl", scenario())
    out1, out2 = tmp_path / "d1.jsonl", tmp_path / "d2.jsonl"
    # psctl's client is synchronous; the services run on this test's event loop.
    assert (
        await asyncio.to_thread(replay, str(src), str(out1), stack.cfg.scoring_addr, tls=tls_as(stack.cfg, "ops")) == 0
    )
    assert (
        await asyncio.to_thread(replay, str(src), str(out2), stack.cfg.scoring_addr, tls=tls_as(stack.cfg, "ops")) == 0
    )
    assert out1.read_bytes() == out2.read_bytes()
    got = {d["msisdn"]: d for d in map(json.loads, out1.read_text().splitlines())}
    assert list(got) == [COURIER, SCAM, TRAVELLER]
    for d in got.values():
        assert {"msisdn", "risk_level", "score", "action", "reasons", "acted_at"} <= set(d)
    assert got[COURIER]["action"] == "none" and got[COURIER]["acted_at"] is None
    assert got[TRAVELLER]["action"] == "none"
    scam = got[SCAM]
    assert scam["action"] == "suspend" and scam["risk_level"] == "extreme"
    assert scam["reasons"] and scam["reasons_en"][0][0].isdigit()
    assert set(scam) >= {"mitigations", "mitigations_en", "mitigations_zh"}
    assert not set(scam["mitigations"]) & set(scam["reasons"])
    acted = datetime.fromisoformat(scam["acted_at"])
    assert T0 <= acted <= T0 + timedelta(minutes=18)  # within the first ten calls, in event time
    assert scam["outgoing_before_action"] <= 10


@pytest.mark.parametrize(
    ("broken", "line", "key"),
    [
        ({"kind": "cdr", "duration_s": -1}, 6, "duration_s"),
        ({"kind": "cdr", "start": "2026-02-06 09:00:00"}, 6, "start"),
        ({"kind": "call"}, 6, "kind"),
        ({"kind": "cdr", "direction": None}, 6, "direction"),
    ],
)
def test_a_bad_scenario_names_the_line_and_key_and_nothing_is_sent(tmp_path, broken, line, key):
    objs = scenario()
    objs[5] = {**objs[5], **broken}  # line 6 of the file
    if broken.get("direction", "") is None:
        del objs[5]["direction"]
    src = write(tmp_path / "bad.jsonl", objs)
    out = tmp_path / "d.jsonl"
    # An address where nothing listens: the file is refused before any connection is tried.
    done = psctl("replay", str(src), "--decisions", str(out), PSP_SCORING_ADDR="127.0.0.1:9")
    assert done.returncode != 0
    assert f"line {line}: {key}:" in done.stderr, done.stderr
    assert not out.exists()


def test_out_of_order_calls_are_refused(tmp_path):
    objs = scenario()
    objs[6], objs[7] = objs[7], objs[6]
    src = write(tmp_path / "bad.jsonl", objs)
    done = psctl("replay", str(src), "--decisions", str(tmp_path / "d.jsonl"), PSP_SCORING_ADDR="127.0.0.1:9")
    assert done.returncode != 0 and "line 8: start:" in done.stderr
