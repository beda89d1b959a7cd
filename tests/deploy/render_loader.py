"""deploy/k8s/render.py, loaded from its path (deploy/ is no package) once for the tests that use it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

RENDER_PY = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "render.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_k8s_render", RENDER_PY)
    assert spec is not None and spec.loader is not None, f"cannot load {RENDER_PY}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


render = sys.modules.get("deploy_k8s_render") or _load()
