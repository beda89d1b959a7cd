"""Traces on the local stack (`python -m stack up`, as `make up`): after the demo, `psctl case trace` prints a
restored case's span tree across scoring, the worker, suspension, notify and verification, and the span file the
receiver wrote holds no phone number."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

from stack import ports as stack_ports
from stack.processes import REPO

MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
# Trace, span and case ids are long runs of hex digits: one in a few hundred holds eleven decimal digits that look
# like a number (a span id once read "...19055019077..."). No number is that long a run of hex.
HEX_ID = re.compile(r"[0-9a-f]{16,}")


def mobile_in(text: str) -> re.Match[str] | None:
    return MOBILE.search(HEX_ID.sub("-", text))


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)


def services_in(tree: str) -> set[str]:
    """The service column of every span line (indented; name, service, duration, "ms", status)."""
    return {m.group(1) for m in re.finditer(r"^ +\S+ +(\S+) +[\d.]+ ms ", tree, re.M)}


def test_a_case_trace_spans_every_service_and_the_span_file_holds_no_number():
    data = pathlib.Path(tempfile.mkdtemp(prefix="psp-traces-"))
    ports = stack_ports.free()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith(("PSP_", "OTEL_"))}
    env["PSP_STACK_PORTS"] = stack_ports.render(ports)
    stack = [sys.executable, "-m", "stack"]
    psctl = [sys.executable, "-m", "pscli.main"]
    try:
        up = run([*stack, "up", "--data-dir", str(data)], env)
        assert up.returncode == 0, up.stdout + up.stderr
        span_file = data / "traces" / "spans.jsonl"
        assert f"  traces        {span_file}" in up.stdout
        on_stack = {**env, "PSP_ENV_FILE": str(data / "stack.env")}
        demo = run([*psctl, "demo"], on_stack)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        # The 14-year customer's case: warned, verified online, restored (the demo's second line).
        restored = re.search(r"line=RESTORED.*?/workflows/(case-[0-9a-f]+-\d+)", demo.stdout, re.S)
        assert restored, demo.stdout
        case_id = restored.group(1)
        numbers = set(MOBILE.findall(demo.stdout))
        assert numbers, "the demo prints a number to find a case by"

        # Each process sends its spans every half second: read until the restore's last call has landed.
        want = {"scoring", "worker", "suspension", "notify", "verification"}
        deadline = time.monotonic() + 30
        while True:
            traced = run([*psctl, "case", "trace", case_id], on_stack)
            tree = traced.stdout
            done = traced.returncode == 0 and "/carrier.scoring.v1.ScoringService/RecordOutcome" in tree
            if (done and want <= services_in(tree)) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        spans_text = span_file.read_text()
    finally:
        run([*stack, "down", "--data-dir", str(data)], env)
        shutil.rmtree(data, ignore_errors=True)

    assert traced.returncode == 0, traced.stdout + traced.stderr
    assert want <= services_in(tree), tree
    own = re.search(r"^trace ([0-9a-f]{32})  the case's own", tree, re.M)
    assert own, tree
    lines = tree.splitlines()
    # Scoring opened the case; the workflow runs under it; the services answer under the worker's activities.
    assert lines[3].startswith("  open_case ") and " scoring " in lines[3], tree
    assert re.search(r"^ {6}RunWorkflow:\S+ +worker ", tree, re.M), tree
    assert re.search(
        r"^ {12}/carrier.suspension.v1.SuspensionService/ChangeLineState +suspension +[\d.]+ ms  OK$", tree, re.M
    )
    assert re.search(r"^ {12}/carrier.notify.v1.NotifyService/SendNotification +notify ", tree, re.M), tree
    # The online verification reached the case from a trace of its own, which is printed too.
    assert re.search(r"^trace [0-9a-f]{32}  a later call to the case", tree, re.M), tree
    assert "VerificationService/SubmitOnlineVerification" in tree
    # No number, neither in what is printed nor anywhere in the span file.
    assert not mobile_in(tree) and not mobile_in(spans_text)
    assert not any(n in spans_text or n[-8:] in spans_text for n in numbers)
    assert own.group(1) in spans_text
