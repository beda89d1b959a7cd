"""The local stack's settings file (KEY=VALUE lines), shared by every process and by psctl."""

from __future__ import annotations

import os
import pathlib

DEFAULT_FILE = pathlib.Path(".local") / "stack.env"


def load_env(path: pathlib.Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def write_env(path: pathlib.Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)


def apply_local_env(path: pathlib.Path | None = None) -> bool:
    """Makes psctl talk to the local stack when no explicit environment is given."""
    values = load_env(path or pathlib.Path(os.environ.get("PSP_ENV_FILE", DEFAULT_FILE)))
    for k, v in values.items():
        os.environ.setdefault(k, v)
    return bool(values)
