"""The kill drill, short: 24 cases of every kind through the whole embedded stack (its own ports and folder) while
each of scoring, suspension, notify, verification, the worker, PostgreSQL and the Temporal server is SIGKILLed
once; nothing may be lost, stuck, failed, sent twice or left out of sync (bench/drill.py, three seeds at full size
in the closing figures).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_a_short_kill_drill_finds_nothing() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    for name in [k for k in env if k.startswith("PSP_") or k == "DATABASE_URL"]:
        del env[name]  # the drill's own stack, whatever stack the rest of the suite runs
    argv = [sys.executable, str(REPO / "bench" / "drill.py"), "--seed", "1", "--cases", "24", "--kills", "7"]
    argv += ["--stage-wait-s", "120", "--settle-s", "90"]
    drill = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = drill.communicate(timeout=260)
    except subprocess.TimeoutExpired:
        drill.terminate()  # SIGTERM: the drill stops its stack (a SIGKILL would leave the stack running)
        stdout, stderr = drill.communicate(timeout=30)
        pytest.fail(f"the drill took more than 260 s\n{stdout[-6000:]}\n{stderr[-3000:]}")
    assert drill.returncode == 0, f"drill exit {drill.returncode}\n{stdout[-6000:]}\n{stderr[-3000:]}"
    assert "seed 1: PASS" in stdout
