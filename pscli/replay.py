"""psctl replay: a scenario through the scoring service's replay stream, decisions to a JSONL file."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time
from datetime import UTC, timedelta, timezone

import grpc

from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from contracts.pb import ACTION_OF, RISK_LEVEL_OF
from pscli.scenario import Scenario, ScenarioError, read
from pscommon.config import Settings, apply_env_file
from pscommon.probes import grpc_serving
from pscommon.tls import TlsFiles

REPO = pathlib.Path(__file__).resolve().parents[1]
CST = timezone(timedelta(hours=8))
SERVICE = "carrier.scoring.v1.ScoringService"


def decision_line(v: scoring_pb2.LineVerdict) -> dict:
    acted = None
    if v.HasField("acted_at"):
        acted = v.acted_at.ToDatetime(tzinfo=UTC).astimezone(CST).isoformat()
    return {
        "msisdn": v.msisdn,
        "risk_level": RISK_LEVEL_OF[v.risk_level],
        "score": round(v.score, 2),
        "action": ACTION_OF[v.action],
        "reasons": [r.code for r in v.reasons],
        "acted_at": acted,
        # Extra keys (the spec allows them): what a person reads, and how many calls it took.
        "reasons_en": [r.text_en for r in v.reasons],
        "reasons_zh": [r.text_zh for r in v.reasons],
        # Factors in the holder's favour, kept apart from the reasons (codes, then sentences).
        "mitigations": [r.code for r in v.mitigations],
        "mitigations_en": [r.text_en for r in v.mitigations],
        "mitigations_zh": [r.text_zh for r in v.mitigations],
        "outgoing_before_action": v.outgoing_before_action if acted else None,
    }


def _serving() -> bool:
    cfg = Settings()
    try:
        tls = TlsFiles.from_settings(cfg)
    except RuntimeError:  # no certificates yet: no stack was ever started here
        return False
    return tls.cert.exists() and grpc_serving(cfg.scoring_addr, tls, SERVICE, timeout=2)


def stack(command: str) -> None:
    subprocess.run([sys.executable, "-m", "stack", command, "--data-dir", str(REPO / ".local")], cwd=REPO, check=True)


def run_replay(sc: Scenario, address: str, tls: TlsFiles) -> scoring_pb2.ReplayScenarioResponse:
    # Sync client: one stream, no event loop, and it leaves no native threads behind at exit.
    options = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
    with grpc.secure_channel(address, tls.channel_credentials(), options=options) as ch:
        return scoring_pb2_grpc.ScoringServiceStub(ch).ReplayScenario(sc.requests(), timeout=3600)


def replay(
    scenario: str, decisions: str, address: str | None = None, keep_stack: bool = False, tls: TlsFiles | None = None
) -> int:
    """Replays through the scoring service at `address` (default: the local stack, started if needed), calling
    with `tls` (default: psctl's principal, ops)."""
    try:
        sc = read(scenario)
    except ScenarioError as err:
        print(f"psctl replay: {scenario}: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"psctl replay: {err}", file=sys.stderr)
        return 2
    started = False
    if address is None:
        if not _serving():
            print("no scoring service is running: starting the embedded stack", file=sys.stderr)
            stack("up")
            started = True
            apply_env_file(REPO / ".local" / "stack.env")
        address = Settings().scoring_addr
    try:
        t0 = time.monotonic()
        resp = run_replay(sc, address, tls or TlsFiles.from_settings(Settings()))
        took = time.monotonic() - t0
    finally:
        if started and not keep_stack:
            stack("down")
    with open(decisions, "w", encoding="utf-8") as out:
        for v in resp.verdicts:
            out.write(json.dumps(decision_line(v), ensure_ascii=False) + "\n")
    acted = sum(v.action > 1 for v in resp.verdicts)
    print(
        f"replayed {len(sc.subscribers)} lines, {resp.cdrs} CDRs in {took:.1f}s ({resp.model_version});"
        f" {acted} lines acted on; decisions in {decisions}",
        file=sys.stderr,
    )
    return 0
