"""Every shell command the README and docs/ show, run as a reader would: against a local stack (`python -m stack
up` in a folder of its own, on free ports, after `psctl demo`), from a folder outside the checkout, with
`.venv/bin` on PATH.

A ```sh block says what it is after the language: `needs-stack` (run here, in order, after the demo; NUMBER and
CASE_ID stand for the demo's scam line and its case, default ports are mapped to the test stack's) or `not-run`
(bootstraps, the whole suite, or a second stack: tests/devstack covers those). An unmarked block in the README
fails the test, so a new command there is either run here or says why not; docs/ also holds production runbooks
(kubectl), whose blocks are run only when marked `needs-stack`.

The session `stack` fixture of tests/conftest.py cannot stand in: its time-skipping server has no visibility
queries (`psctl case find`, `psctl case list`), and it has no codec server or settings file."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from pscli.views import VIEWS
from stack import ports as stack_ports

REPO = pathlib.Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent> *)```sh(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S)
MARKERS = {"needs-stack", "not-run"}


@dataclass(frozen=True)
class Block:
    where: str
    marker: str
    commands: list[str]


def _commands(body: str) -> list[str]:
    joined = textwrap.dedent(body).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def shell_blocks() -> list[Block]:
    found = []
    for path in DOCUMENTS:
        text = path.read_text()
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            words = set(m["info"].split())
            marker = ",".join(sorted(words & MARKERS))
            found.append(Block(f"{path.relative_to(REPO)}:{line}", marker, _commands(m["body"])))
    return found


def test_every_shell_block_says_whether_it_is_run() -> None:
    blocks = shell_blocks()
    assert any(b.marker == "needs-stack" for b in blocks)
    unmarked = [b.where for b in blocks if b.marker not in MARKERS and b.where.startswith("README.md:")]
    assert not unmarked, f"mark these ```sh blocks `needs-stack` or `not-run`: {unmarked}"


@dataclass
class LocalStack:
    data: pathlib.Path
    ports: dict[str, int]
    elsewhere: pathlib.Path  # a working folder outside the checkout
    env: dict[str, str]
    number: str = ""
    case_id: str = ""

    def run(self, command: str, cwd: pathlib.Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=cwd or self.elsewhere,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def as_documented(self, command: str) -> str:
        """The command for this stack: placeholders filled in, default ports moved to the stack's."""
        command = command.replace("CASE_ID", self.case_id).replace("NUMBER", self.number)
        for name, default in stack_ports.DEFAULTS.items():
            command = re.sub(rf"127\.0\.0\.1:{default}\b", f"127.0.0.1:{self.ports[name]}", command)
        return command


def _reader_env(data: pathlib.Path) -> dict[str, str]:
    """A shell with .venv/bin on PATH and none of the stack's settings: psctl has to find them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PSP_", "TEMPORAL_")) and k != "DATABASE_URL"}
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)  # this checkout's code, whichever checkout the venv was installed from
    env["PSP_DATA_DIR"] = str(data)
    return env


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    root = pathlib.Path(tempfile.mkdtemp(prefix="psp-docs-"))
    data, elsewhere = root / "data", root / "elsewhere"
    elsewhere.mkdir()
    ports = stack_ports.free()
    up_env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("PSP_")}
    up_env["PSP_STACK_PORTS"] = stack_ports.render(ports)

    def stack(command: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "stack", command, "--data-dir", str(data)]
        return subprocess.run(argv, cwd=REPO, env=up_env, capture_output=True, text=True, timeout=180)

    try:
        started = stack("up")
        assert started.returncode == 0, started.stdout + started.stderr
        s = LocalStack(data, ports, elsewhere, _reader_env(data))
        demo = s.run("psctl demo")
        assert demo.returncode == 0, demo.stdout + demo.stderr
        found = re.search(r"psctl case find (1\d{10})", demo.stdout)
        assert found, demo.stdout
        s.number = found[1]
        cases = s.run(f"psctl case find {s.number}")
        case_id = re.search(r"case-[0-9a-f]{20}-\d+", cases.stdout)
        assert cases.returncode == 0 and case_id, cases.stdout + cases.stderr
        s.case_id = case_id[0]
        yield s
    finally:
        stack("down")
        shutil.rmtree(root, ignore_errors=True)


# What a command's output must show, by how it starts; anything else must at least print something.
EXPECTED: list[tuple[str, Callable[[LocalStack, str], object]]] = [
    ("psctl case find", lambda s, out: s.case_id in out and "stage=" in out),
    ("psctl case status", lambda s, out: s.case_id in out and "stage=suspended" in out and "next:" in out),
    ("psctl case trace", lambda s, out: out.startswith(f"{s.case_id}:") and "the case's own" in out),
    ("psctl views", lambda s, out: "needs-attention" in out and "roamers-not-reached" in out and "query=" in out),
    ("psctl case list --view suspended", lambda s, out: s.case_id in out and "suspended" in out),
    ("psctl case list", lambda s, out: "case(s):" in out and "Temporal UI:" in out),
    ("psctl rpc VerificationService/GetCaseStatus", lambda s, out: json.loads(out)["case_id"] == s.case_id),
    ("psctl rpc SuspensionService/GetLine", lambda s, out: json.loads(out)["line"]["state"] == "LINE_STATE_SUSPENDED"),
    ("psctl rpc", lambda s, out: isinstance(json.loads(out), dict)),
    ("temporal workflow query", lambda s, out: '"stage":"suspended"' in out.replace(" ", "")),
    ("temporal workflow metadata", lambda s, out: "**Notifications**" in out and not UUID.search(out)),
]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _check(s: LocalStack, documented: str, out: str) -> bool:
    for prefix, ok in EXPECTED:
        if documented.startswith(prefix):
            return bool(ok(s, out))
    return bool(out.strip())


STACK_COMMANDS = [(b.where, c) for b in shell_blocks() if b.marker == "needs-stack" for c in b.commands]


@pytest.mark.parametrize(("where", "documented"), STACK_COMMANDS, ids=[c for _, c in STACK_COMMANDS])
def test_documented_command_works_from_another_folder(local_stack: LocalStack, where: str, documented: str) -> None:
    done = local_stack.run(local_stack.as_documented(documented))
    shown = f"{where}: {documented}\n{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, shown
    assert "Traceback" not in done.stderr, shown
    assert _check(local_stack, documented, done.stdout), shown


def test_psctl_finds_a_checkouts_data_folder_by_walking_up(local_stack: LocalStack) -> None:
    checkout = local_stack.data.parent / "checkout"
    (checkout / "sub" / "dir").mkdir(parents=True)
    (checkout / ".local").symlink_to(local_stack.data)
    env = {k: v for k, v in local_stack.env.items() if k != "PSP_DATA_DIR"}
    done = subprocess.run(
        ["psctl", "case", "find", local_stack.number],
        cwd=checkout / "sub" / "dir",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and local_stack.case_id in done.stdout, done.stdout + done.stderr


def test_psctl_without_settings_says_where_it_looked(local_stack: LocalStack) -> None:
    empty = local_stack.data.parent / "empty"
    empty.mkdir(exist_ok=True)
    done = local_stack.run(f"psctl case find {local_stack.number}", PSP_DATA_DIR=str(empty))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "PSP_CODEC_KEYS is not set" in done.stderr
    assert f"PSP_DATA_DIR={empty} ({empty / 'stack.env'}: no such file)" in done.stderr


def test_psctl_rpc_prints_a_refusal_with_its_code_reason_and_fields(local_stack: LocalStack) -> None:
    bad = local_stack.run("""psctl rpc VerificationService/GetCaseStatus '{"msisdn": "12"}'""")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert bad.stdout.startswith("INVALID_ARGUMENT: ") and "reason: INVALID_FIELD" in bad.stdout
    assert "field msisdn: must be an 11-digit mobile number" in bad.stdout
    denied = local_stack.run("psctl rpc VerificationService/ListReviews '{}' --as app")
    assert denied.returncode == 1 and denied.stdout.startswith("PERMISSION_DENIED: "), denied.stdout
    unknown = local_stack.run("psctl rpc VerificationService/Nope '{}'")
    assert unknown.returncode == 2 and "GetCaseStatus" in unknown.stderr, unknown.stderr


def test_case_details_render_as_tables_in_the_temporal_ui(local_stack: LocalStack) -> None:
    """The UI renders details server-side (/render); its cells have no padding, so ours carry no-break spaces."""
    s = local_stack
    codec = f"http://127.0.0.1:{s.ports['codec']}"
    shown = s.run(
        f"temporal workflow metadata --address 127.0.0.1:{s.ports['temporal']} --workflow-id {s.case_id}"
        f" --codec-endpoint {codec} -o json"
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    details = json.loads(shown.stdout)["queryResult"][0]["currentDetails"]
    ui = f"http://127.0.0.1:{s.ports['temporal-ui']}/render?content={urllib.parse.quote(details)}"
    with urllib.request.urlopen(ui, timeout=30) as answer:
        page = answer.read().decode()
    body = page[page.index("<main>") :]
    # Stages, the warning's delivery attempts, notifications by purpose / channel / outcome.
    assert body.count("<table>") == 3, body
    headers = re.findall(r"<th>([^<]*)</th>", body)
    assert headers[:2] == ["stage\u00a0\u00a0\u00a0", "at"], headers
    assert "purpose\u00a0\u00a0\u00a0" in headers and "count" in headers, headers
    assert not UUID.search(body)


@pytest.mark.parametrize("view", [v.name for v in VIEWS])
def test_every_view_is_a_query_the_server_runs(local_stack: LocalStack, view: str) -> None:
    done = local_stack.run(f"psctl case list --view {view} --province 44")
    assert done.returncode == 0, done.stdout + done.stderr
    listed = set(re.findall(r"case-[0-9a-f]{20}-\d+", done.stdout))
    # The demo's scam line is suspended in province 44 at extreme risk, its warning delivered at home.
    expected = view in ("suspended-in-province", "barred-in-province", "extreme-risk-open")
    assert (local_stack.case_id in listed) == expected, done.stdout
