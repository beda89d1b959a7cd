"""deploy/k8s/render.py is the source of the generated manifests: the committed files must be exactly its
output (test_k8s_manifests.py then validates those files), and every command it gives must exist."""

from __future__ import annotations

import ast
import difflib
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.render_loader import render

ROOT = Path(__file__).resolve().parents[2]
FIX = "run `.venv/bin/python deploy/k8s/render.py` and commit the result"


def test_committed_manifests_are_the_generator_output() -> None:
    diffs = []
    for name, rendered in render.render().items():
        path = render.K8S_DIR / name
        committed = path.read_text(encoding="utf-8") if path.exists() else ""
        if committed != rendered:
            diff = difflib.unified_diff(
                committed.splitlines(keepends=True),
                rendered.splitlines(keepends=True),
                f"deploy/k8s/{name} (committed)",
                f"deploy/k8s/{name} (render.py)",
                n=1,
            )
            diffs.append("".join(diff)[:2000])
    if diffs:
        pytest.fail(
            f"deploy/k8s/ is not what deploy/k8s/render.py renders; {FIX}.\n\n" + "\n".join(diffs), pytrace=False
        )


def test_no_stray_manifests() -> None:
    stray = [p for p in render.drift() if "neither generated nor hand-written" in p]
    assert not stray, f"deploy/k8s/: {stray}; add the file to render.py's HAND_WRITTEN or remove it"


def test_rendering_is_deterministic() -> None:
    assert render.render() == render.render()


@pytest.mark.parametrize("process", render.PROCESSES, ids=[p.name for p in render.PROCESSES])
def test_command_runs_a_module_of_the_repository(process: Any) -> None:
    """`python -m <module>` must name a file of the repository that runs something when executed."""
    module: str = process.module
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists() and (package_main := ROOT / module.replace(".", "/") / "__main__.py").is_file():
        path = package_main  # a package: python -m runs its __main__.py
    assert path.is_file(), f"render.py runs `python -m {module}`, but {path.relative_to(ROOT)} does not exist"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    runs = any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in ast.walk(tree))
    assert runs, f'{path.relative_to(ROOT)} has no `if __name__ == "__main__":` block'


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    """`render.py --check` (for CI or a pre-commit hook) fails on a changed file, passes on a fresh render."""
    assert render.main(["--out", str(tmp_path)]) == 0
    assert render.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "worker.yaml").write_text("# edited by hand\n", encoding="utf-8")
    assert render.main(["--check", "--out", str(tmp_path)]) == 1
    assert render.drift(tmp_path) == ["worker.yaml: differs from what render.py produces"]
