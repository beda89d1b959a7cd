"""`psctl case trace CASE_ID|MSISDN`: a case's spans across services, as the local stack's span receiver kept them.

The case's own trace is the one its workflow details name (scoring opens it, the worker and the services it calls
continue it). A call made to the case later (a verification submitted, a reviewer's decision, an operator's
action) signals or updates the workflow from a trace of its own: every trace with a span on the case's workflow
is printed too, after the case's. Each span shows its service, name, duration and status only: no attribute is
printed, and the store keeps none that could hold a phone number.
"""

from __future__ import annotations

import asyncio
import pathlib
import re
from collections.abc import Iterator, Sequence

import grpc
from temporalio.service import RPCError, RPCStatusCode

from carrier.verification.v1 import verification_pb2 as vpb
from pscommon import spans as span_store
from pscommon import temporal
from pscommon.config import settings
from pscommon.identity import is_msisdn
from pscommon.spans import SpanRecord

_TRACE_IN_DETAILS = re.compile(r"\*\*Trace\*\* `([0-9a-f]{32})`")
_GRPC_CODES = {code.value[0]: code.name for code in grpc.StatusCode}
NAME_WIDTH = 72


def trace_in_details(details: str) -> str:
    found = _TRACE_IN_DETAILS.search(details)
    return found.group(1) if found else ""


def status_of(s: SpanRecord) -> str:
    """ERROR for a span that failed; else a call's gRPC status (OK, NOT_FOUND ...), else ok or - (none set)."""
    code = s.attributes.get("rpc.grpc.status_code")
    grpc_code = _GRPC_CODES.get(code, str(code)) if isinstance(code, int) else ""
    if s.status == "error":
        return f"ERROR {grpc_code}".rstrip()
    return grpc_code or {"ok": "ok"}.get(s.status, "-")


def _tree(spans: Sequence[SpanRecord]) -> Iterator[tuple[int, SpanRecord, bool]]:
    """(depth, span, whether its parent is missing from the store) in tree order, siblings by start time."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[SpanRecord]] = {}
    roots: list[SpanRecord] = []
    for s in sorted(spans, key=lambda s: (s.start_ns, s.end_ns)):
        if s.parent_id and s.parent_id in ids and s.parent_id != s.span_id:
            children.setdefault(s.parent_id, []).append(s)
        else:
            roots.append(s)
    stack = [(0, r, bool(r.parent_id)) for r in reversed(roots)]
    seen: set[str] = set()
    while stack:
        depth, s, orphan = stack.pop()
        if s.span_id in seen:
            continue
        seen.add(s.span_id)
        yield depth, s, orphan
        stack += [(depth + 1, c, False) for c in reversed(children.get(s.span_id, []))]


def render_trace(trace_id: str, spans: Sequence[SpanRecord], title: str) -> list[str]:
    services = sorted({s.service for s in spans})
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    lines = [
        f"trace {trace_id}  {title}: {len(spans)} spans, {(end - start) / 1e6:.1f} ms, services: {', '.join(services)}"
    ]
    for depth, s, orphan in _tree(spans):
        name = "  " * (depth + 1) + s.name + (" (called from outside the stack)" if orphan else "")
        lines.append(f"{name:<{NAME_WIDTH}} {s.service:<14} {s.duration_ms:>10.1f} ms  {status_of(s)}")
    return lines


def render_case(case_id: str, case_trace: str, traces: dict[str, list[SpanRecord]]) -> list[str]:
    """Every trace of the case, its own first, then the later ones in the order they began."""
    ordered = sorted(traces.items(), key=lambda kv: (kv[0] != case_trace, kv[1][0].start_ns))
    lines = [f"{case_id}: {len(traces)} trace{'s' if len(traces) != 1 else ''}"]
    if case_trace and case_trace not in traces:
        lines.append(f"trace {case_trace}  (the case's own, from its details): no span of it is kept")
    for n, (trace_id, spans) in enumerate(ordered):
        title = "the case's own (scoring opened it)" if trace_id == case_trace else f"a later call to the case ({n})"
        lines += ["", *render_trace(trace_id, spans, title)]
    if any(s.service == "worker" and s.name.startswith("StartActivity:") for t in traces.values() for s in t):
        lines += ["", "(the worker marks each workflow step with an instant span; RunActivity spans hold the time)"]
    return lines


async def _case_and_trace(case: str) -> tuple[str, str]:
    """The case id (a number is looked up with GetCaseStatus) and the trace id its workflow details name."""
    if is_msisdn(case):
        from pscli.case import _verification

        st = await _verification().GetCaseStatus(vpb.GetCaseStatusRequest(msisdn=case), timeout=10)
        case = st.case_id
    client = await temporal.connect(settings(), wait_s=5)
    desc = await client.get_workflow_handle(case).describe()
    return case, trace_in_details(await desc.static_details() or "")


def trace_case(case: str) -> int:
    path = pathlib.Path(settings().span_file)
    if not path.exists():
        print(f"no span file at {path.resolve()}: is the local stack up (make up)? PSP_SPAN_FILE names another")
        return 1
    try:
        case_id, case_trace = asyncio.run(_case_and_trace(case))
    except grpc.aio.AioRpcError as err:
        print(f"{err.code().name}: {err.details()}")
        return 1
    except RPCError as err:
        print(f"{case}: {'no such case' if err.status == RPCStatusCode.NOT_FOUND else err.message}")
        return 1
    except RuntimeError as err:  # Temporal not reachable
        print(f"{case}: {err}")
        return 1
    traces = span_store.traces_of(span_store.read(path), case_id, [case_trace] if case_trace else [])
    if not traces:
        print(f"{case_id}: no span of it in {path} (spans are kept from the stack's start, the oldest rotated out)")
        return 1
    print("\n".join(render_case(case_id, case_trace, traces)))
    return 0
