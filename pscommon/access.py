"""Who may call which method: the versioned access table (contracts/access.yaml), checked on every call.

A caller is the principal its certificate names (spiffe://<trust domain>/<role>/<id>). A method absent from
the table is refused to everyone. Identity that matters to a decision (a reviewer, an authority) is read from
`caller()`, never from a request field.
"""

from __future__ import annotations

import contextvars
import pathlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import yaml

from pscommon.identity import Principal

ANY = "*"
_METHOD_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.]*\.[A-Z][A-Za-z0-9]*/[A-Z][A-Za-z0-9]*", re.ASCII)

_caller: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("caller", default=None)


class AccessTableError(ValueError):
    pass


@dataclass(frozen=True)
class AccessTable:
    version: str
    roles: frozenset[str]
    methods: dict[str, frozenset[str]]  # "package.Service/Method" -> roles allowed ("*": any known role)

    def allows(self, method: str, role: str) -> bool:
        allowed = self.methods.get(method, frozenset())
        return role in allowed or (ANY in allowed and role in self.roles)

    def roles_for(self, method: str) -> frozenset[str]:
        allowed = self.methods.get(method, frozenset())
        return self.roles if ANY in allowed else allowed

    def require_rows(self, methods: Iterable[str]) -> None:
        """Refuses to serve a method the table does not mention (a new RPC must be given its callers)."""
        missing = sorted(set(methods) - set(self.methods))
        if missing:
            raise AccessTableError(f"access table {self.version} has no row for {', '.join(missing)}")


def load(path: pathlib.Path | str) -> AccessTable:
    raw = yaml.safe_load(pathlib.Path(path).read_text())
    try:
        version = str(raw["version"])
        roles = frozenset(str(r) for r in raw["roles"])
        methods: dict[str, frozenset[str]] = {}
        for service, rows in raw["services"].items():
            for method, allowed in rows.items():
                name = f"{service}/{method}"
                if not _METHOD_RE.fullmatch(name):
                    raise AccessTableError(f"{name!r} is not a package.Service/Method name")
                if not isinstance(allowed, list) or not all(isinstance(r, str) for r in allowed):
                    raise AccessTableError(f"{name}: give a list of roles")
                unknown = set(allowed) - roles - {ANY}
                if unknown:
                    raise AccessTableError(f"{name}: unknown roles {sorted(unknown)}; roles: {sorted(roles)}")
                methods[name] = frozenset(allowed)
    except (KeyError, TypeError, AttributeError) as err:
        raise AccessTableError(f"{path}: missing or malformed {err}") from err
    return AccessTable(version, roles, methods)


def caller() -> Principal:
    """The principal of the call being served (set by the server's guard before any handler runs)."""
    principal = _caller.get()
    if principal is None:
        raise LookupError("no authenticated caller in this context")
    return principal


def set_caller(principal: Principal | None) -> contextvars.Token[Principal | None]:
    return _caller.set(principal)


def reset_caller(token: contextvars.Token[Principal | None]) -> None:
    _caller.reset(token)
