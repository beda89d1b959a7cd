"""Which stack psctl talks to: the settings file of a local stack's data folder, found from anywhere.

In order: PSP_ENV_FILE (a settings file), PSP_DATA_DIR (a data folder), a `.local/stack.env` in the working
directory or any folder above it, then the `.local/stack.env` of the checkout psctl is installed from. Settings
already in the environment win over the file's (production: no file, everything from the environment)."""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass, field

from pscommon.config import apply_env_file

SETTINGS_FILE = "stack.env"
CHECKOUT = pathlib.Path(__file__).resolve().parents[1]


@dataclass
class Found:
    env_file: pathlib.Path | None
    looked_at: list[str] = field(default_factory=list)

    def explain(self) -> str:
        where = "\n".join(f"  - {w}" for w in self.looked_at)
        return (
            "psctl: no stack settings found, and PSP_CODEC_KEYS is not set in the environment. Looked at:\n"
            f"{where}\n"
            "Start the local stack (`make up` in the checkout), or point psctl at one: PSP_DATA_DIR=DATA_FOLDER "
            "or PSP_ENV_FILE=DATA_FOLDER/stack.env."
        )


def find_settings(cwd: pathlib.Path | None = None) -> Found:
    looked: list[str] = []
    if named := os.environ.get("PSP_ENV_FILE"):
        path = pathlib.Path(named).expanduser()
        looked.append(f"PSP_ENV_FILE={named}" + ("" if path.is_file() else " (no such file)"))
        return Found(path if path.is_file() else None, looked)
    if folder := os.environ.get("PSP_DATA_DIR"):
        path = pathlib.Path(folder).expanduser() / SETTINGS_FILE
        looked.append(f"PSP_DATA_DIR={folder} ({path}" + (")" if path.is_file() else ": no such file)"))
        return Found(path if path.is_file() else None, looked)
    looked.append("PSP_ENV_FILE and PSP_DATA_DIR (not set)")
    start = (cwd or pathlib.Path.cwd()).resolve()
    for above in (start, *start.parents):
        path = above / ".local" / SETTINGS_FILE
        if path.is_file():
            return Found(path, looked)
    looked.append(f".local/{SETTINGS_FILE} in {start} and every folder above it")
    path = CHECKOUT / ".local" / SETTINGS_FILE
    if path.is_file():
        return Found(path, looked)
    looked.append(f"{path} (the checkout psctl is installed from)")
    return Found(None, looked)


def load_settings() -> Found:
    """Applies the settings file found (if any) to the environment, and says where it looked."""
    found = find_settings()
    if found.env_file is not None:
        apply_env_file(found.env_file)
        os.environ.setdefault("PSP_ENV_FILE", str(found.env_file))
    return found


def configured() -> bool:
    """Enough settings to reach a stack: payloads can be read (the one setting with no default)."""
    return bool(os.environ.get("PSP_CODEC_KEYS"))
