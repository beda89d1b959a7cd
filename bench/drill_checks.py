"""After the kills: wait (bounded) for the cases to come to rest, then hold the platform to what it promises.

Each check is a count with examples (numbers masked):
- cases lost: a line the scorecard acts on without a decision, a decision never opened, or no workflow for it;
- cases stuck: running, but not in the stage the case should rest in (or in needs_attention), or not ended;
- cases failed: the workflow failed, was terminated, timed out or was cancelled;
- lines out of sync: suspension's database and the simulated HLR disagree (GetLine.in_sync, and read apart);
- notifications sent twice: the SMSC accepted an SMS of one notification again while the one before it had no
  receipt saying it failed (from notify's attempts; an SMSC message notify never recorded shows as a receipt
  that matches no attempt, the SMS sent by a dispatcher killed before it could record it);
- receipts lost: an SMS the SMSC accepted whose receipt notify never stored (the SMSC always sends one, and keeps
  it for the next bind when notify is away); one due while notify was SIGKILLed is a note, not a finding: smpp34
  acknowledges a deliver_sm before notify sees it, so a kill -9 loses what it took and had not stored yet (known,
  services/notify/smpp_link.py);
- wrong outcomes: the line's state, scoring's action, or how the warning reached a roamer, against the kind;
- tracebacks in the stack's process logs.
"""

from __future__ import annotations

import asyncio
import pathlib
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import grpc
from drill_calls import Calls, GaveUp, masked
from drill_cases import Trace
from drill_kills import Kill
from drill_lines import HOME
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from carrier.common.v1 import common_pb2
from carrier.hlr.v1 import hlr_pb2, hlr_pb2_grpc
from carrier.suspension.v1 import suspension_pb2, suspension_pb2_grpc
from contracts.case import QUERY_STATUS, CaseStatus
from pscommon import temporal
from pscommon.config import Settings
from pscommon.identity import mask

FAILED_STATUSES = {
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT,
    WorkflowExecutionStatus.CANCELED,
}
RECEIPT_FAILED = {"UNDELIV", "EXPIRED", "REJECTD", "DELETED", "UNKNOWN"}
SMS_CHANNELS = (1, 5)  # sms, alternate_contact: the channels that go through the SMSC
# A receipt comes 0.05 s after the SMSC accepts (simulators/smsc.py) and notify stores it within milliseconds; a
# notify kill this soon after the acceptance may have taken the receipt with it.
RECEIPT_DUE_S = 1.0
BARRING_FIELDS = ("outgoing_voice", "outgoing_sms", "incoming_voice", "incoming_sms", "data", "international")
CHECKS = (
    "cases lost",
    "cases stuck",
    "cases failed",
    "lines out of sync",
    "notifications sent twice",
    "receipts lost",
    "wrong outcomes",
    "tracebacks",
)


@dataclass
class Seen:
    """A case as Temporal has it."""

    status: WorkflowExecutionStatus | None = None  # None: no such workflow
    stage: str = ""


@dataclass
class Findings:
    found: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in CHECKS})
    notes: list[str] = field(default_factory=list)  # what explains a finding (known defects, timings)
    unsettled: int = 0

    lines: dict[str, list[int | None]] = field(default_factory=lambda: {name: [] for name in CHECKS})
    excused: list[str] = field(default_factory=list)  # findings set aside (--tolerate-scoring-loss)

    def add(self, check: str, example: str) -> None:
        self.found[check].append(masked(example))
        self.lines[check].append(None)

    def add_line(self, index: int, check: str, example: str) -> None:
        """A finding about the drill's line `index`."""
        self.add(check, example)
        self.lines[check][-1] = index

    def excuse(self, indices: set[int], why: str) -> None:
        """Sets aside every finding about these lines, keeping it as an excused note."""
        for check in CHECKS:
            keep = [(e, i) for e, i in zip(self.found[check], self.lines[check], strict=True) if i not in indices]
            self.excused += [
                f"{check}: {e} [{why}]"
                for e, i in zip(self.found[check], self.lines[check], strict=True)
                if i in indices
            ]
            self.found[check] = [e for e, _ in keep]
            self.lines[check] = [i for _, i in keep]


def rested(t: Trace, seen: Seen) -> bool:
    if seen.status in FAILED_STATUSES or seen.status == WorkflowExecutionStatus.COMPLETED:
        return True
    return seen.stage == t.line.kind.final_stage and not t.line.kind.completes


async def describe(client: Client, calls: Calls, case_id: str) -> Seen:
    try:
        desc = await calls.temporal("describe", client.get_workflow_handle(case_id).describe)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return Seen()
        raise
    return Seen(desc.status, desc.typed_search_attributes.get(temporal.CASE_STAGE) or "")


async def settle(
    client: Client, calls: Calls, traces: list[Trace], deadline_s: float, db_url: str, hashes: list[str]
) -> dict[str, Seen]:
    """Polls every case until it rests where its kind should (or has ended), and scoring's case opener until it
    has delivered every decision of the drill's lines (a decision it held when PostgreSQL was killed stays leased
    for a while), for at most `deadline_s`."""
    seen: dict[str, Seen] = {}
    for t in traces:  # a case whose driver stopped early cannot reach its resting stage: seen once, not waited for
        if t.case_id and t.stopped:
            seen[t.case_id] = await describe(client, calls, t.case_id)
    waiting = [t for t in traces if t.case_id and not t.stopped]
    give_up_at = time.monotonic() + deadline_s
    unopened = 1
    while True:
        for t in waiting:
            seen[t.case_id] = await describe(client, calls, t.case_id)
        waiting = [t for t in waiting if not rested(t, seen[t.case_id])]
        if unopened:
            unopened = await _unopened(db_url, hashes)
        if (not waiting and not unopened) or time.monotonic() > give_up_at:
            break
        await asyncio.sleep(2.0)
    return seen


async def _unopened(db_url: str, hashes: list[str]) -> int:
    try:
        conn = await asyncpg.connect(db_url)
    except (OSError, asyncpg.PostgresError):
        return 1
    try:
        q = "SELECT count(*) FROM scoring.decisions WHERE opened_at IS NULL AND line_hash = ANY($1)"
        return int(await conn.fetchval(q, hashes))
    finally:
        await conn.close()


class Inspector:
    """Reads what the platform holds once the drill is over and sorts it into findings."""

    def __init__(
        self, client: Client, calls: Calls, db_url: str, hash_of, data: pathlib.Path, kills: list[Kill]
    ) -> None:
        self.client = client
        self.calls = calls
        self.db_url = db_url
        self.hash_of = hash_of
        self.data = data
        self.kills = kills
        self.f = Findings()
        # lines whose acknowledged CDRs scoring lost to a kill (scoring keeps its windows in snapshots only)
        self.scoring_lost: set[int] = set()
        # lines with two cases open at once (scoring's case opener delivered a later decision before an earlier one)
        self.split_lines: set[int] = set()

    async def run(self, traces: list[Trace], seen: dict[str, Seen]) -> Findings:
        self.f.unsettled = sum(1 for t in traces if t.case_id and not rested(t, seen.get(t.case_id, Seen())))
        hashes = {self.hash_of(t.line.msisdn): t for t in traces}
        conn = await asyncpg.connect(self.db_url)
        try:
            await self.cases(conn, traces, hashes, seen)
            await self.notifications(conn, list(hashes))
        finally:
            await conn.close()
        await self.lines(traces)
        self.tracebacks()
        return self.f

    # ---- cases --------------------------------------------------------------------------------------

    async def cases(self, conn: asyncpg.Connection, traces: list[Trace], hashes: dict, seen: dict) -> None:
        rows = await conn.fetch(
            "SELECT line_hash, case_id, action, opened_at FROM scoring.decisions WHERE line_hash = ANY($1) ORDER BY id",
            list(hashes),
        )
        by_line: dict[str, list[asyncpg.Record]] = {}
        for r in rows:
            by_line.setdefault(r["line_hash"], []).append(r)
        # A batch scoring acknowledged: recorded whole, or (with shards) in parts, one per partition it touched.
        parts = await conn.fetchval("SELECT to_regclass('scoring.ingested_parts') IS NOT NULL")
        acked = {
            r["request_id"]
            for r in await conn.fetch(
                "SELECT request_id FROM scoring.ingested_batches WHERE request_id = ANY($1)"
                + (" UNION SELECT request_id FROM scoring.ingested_parts WHERE request_id = ANY($1)" if parts else ""),
                [b for t in traces for b in t.batch_ids],
            )
        }
        for h, t in hashes.items():
            who = f"{mask(t.line.msisdn)} {t.line.kind.name}"
            decided = by_line.get(h, [])
            if not decided:
                self._lost_without_decision(t, who, acked)
                continue
            for r in decided:
                if r["opened_at"] is None:
                    self.f.add_line(
                        t.line.index,
                        "cases lost",
                        f"{who}: decision for {r['case_id']} never opened (no workflow started)",
                    )
            running = []
            for cid in sorted({r["case_id"] for r in decided}):
                s = seen.get(cid) or await describe(self.client, self.calls, cid)
                seen[cid] = s
                if s.status is None:
                    self.f.add_line(t.line.index, "cases lost", f"{who}: scoring decided for {cid}; no such workflow")
                elif s.status == WorkflowExecutionStatus.RUNNING:
                    running.append(f"{cid} at {s.stage}")
            if len(running) > 1:  # one open case per line: a second one splits the line's decisions
                self.split_lines.add(t.line.index)
                self.f.add_line(
                    t.line.index, "cases stuck", f"{who}: {len(running)} cases open at once: {', '.join(running)}"
                )
            strongest = max((r["action"] for r in decided), key=["none", "warn", "restrict", "suspend"].index)
            if strongest != t.line.expected[-1]:
                during = self._killed_during(t)
                why = (
                    f"killed during its CDRs or before the next snapshot: {', '.join(during)}"
                    if during
                    else "no kill during its CDRs"
                )
                self.f.add_line(
                    t.line.index,
                    "wrong outcomes",
                    f"{who}: scoring's strongest action {strongest}, the scorecard says {t.line.expected[-1]} ({why};"
                    f" bursts sent {len(t.ingest_spans)} of {len(t.line.bursts)}"
                    + (f"; driver: {t.stopped}" if t.stopped else "")
                    + ")",
                )
                if "scoring" in during:
                    self.f.notes.append(f"{who}: acknowledged CDRs lost with scoring's windows (known, scoring)")
                    self.scoring_lost.add(t.line.index)
            await self._case(t, who, decided[0]["case_id"], seen.get(decided[0]["case_id"], Seen()))

    def _lost_without_decision(self, t: Trace, who: str, acked: set[str]) -> None:
        taken = sum(b in acked for b in t.batch_ids)
        during = self._killed_during(t)
        why = f"{taken} of {len(t.batch_ids)} batches acknowledged"
        why += (
            f"; killed during its CDRs or before the next snapshot: {', '.join(during)}"
            if during
            else "; no kill during its CDRs"
        )
        self.f.add_line(
            t.line.index, "cases lost", f"{who}: scorecard says {t.line.expected[-1]}, scoring decided nothing ({why})"
        )
        if "scoring" in during and taken == len(t.batch_ids):
            self.f.notes.append(f"{who}: acknowledged CDRs lost with scoring's windows (known, scoring)")
            self.scoring_lost.add(t.line.index)

    def _killed_during(self, t: Trace) -> list[str]:
        """The processes killed while the line's CDRs were being sent (first send to last answer), and scoring
        until its next window snapshot after them (what scoring may lose to a kill)."""
        lag = Settings().scoring_snapshot_s
        return [
            k.name
            for k in self.kills
            if k.done_at is not None
            and any(a <= k.done_at <= b + (lag if k.name == "scoring" else 0.0) for a, b in t.ingest_spans)
        ]

    async def _case(self, t: Trace, who: str, case_id: str, s: Seen) -> None:
        kind = t.line.kind
        if s.status is None:
            return
        if s.status in FAILED_STATUSES:
            self.f.add_line(t.line.index, "cases failed", f"{who} {case_id}: {s.status.name}")
            return
        status = await self._status(case_id)
        if s.status == WorkflowExecutionStatus.RUNNING and (kind.completes or s.stage != kind.final_stage):
            extra = ""
            if status is not None and status.attention is not None:
                extra = f" (step '{status.attention.step}': {status.attention.error[:160]})"
            self.f.add_line(
                t.line.index,
                "cases stuck",
                f"{who} {case_id}: running at {s.stage}, should be {kind.final_stage}{extra}",
            )
        elif s.status == WorkflowExecutionStatus.COMPLETED and s.stage != kind.final_stage:
            self.f.add_line(
                t.line.index, "wrong outcomes", f"{who} {case_id}: ended {s.stage}, should be {kind.final_stage}"
            )
        if status is None:
            return
        stages = [h.stage for h in status.history]
        if kind.escalate_to and "escalated" not in stages:
            self.f.add_line(
                t.line.index, "wrong outcomes", f"{who} {case_id}: never escalated (stages {' → '.join(stages)})"
            )
        if kind.name == "roamer":
            d = status.warning_delivery
            how = f"{d.status} by {d.channel or '-'} at {d.location or '?'}" if d else "no delivery outcome"
            if d is None or d.channel != "push" or d.location != "roaming_international":
                self.f.add_line(
                    t.line.index, "wrong outcomes", f"{who} {case_id}: warning {how}; a roamer's warning goes by push"
                )

    async def _status(self, case_id: str) -> CaseStatus | None:
        handle = self.client.get_workflow_handle(case_id)
        try:
            return await self.calls.temporal("query", lambda: handle.query(QUERY_STATUS, result_type=CaseStatus))
        except (RPCError, GaveUp) as err:
            self.f.notes.append(f"{case_id}: status query failed ({type(err).__name__})")
            return None

    # ---- lines against the network ------------------------------------------------------------------

    async def lines(self, traces: list[Trace]) -> None:
        ops = self.calls.stub("suspension", "ops", suspension_pb2_grpc.SuspensionServiceStub)
        hlr = self.calls.stub("simulators", "suspension", hlr_pb2_grpc.HlrServiceStub)  # as suspension reads it
        sem = asyncio.Semaphore(16)

        async def one(t: Trace) -> None:
            who = f"{mask(t.line.msisdn)} {t.line.kind.name}"
            async with sem:
                net = await self.calls.call(
                    hlr.GetBarring, hlr_pb2.GetBarringRequest(province=HOME, msisdn=t.line.msisdn)
                )
                try:
                    got = await self.calls.call(
                        ops.GetLine,
                        suspension_pb2.GetLineRequest(msisdn=t.line.msisdn),
                        expected=frozenset({grpc.StatusCode.NOT_FOUND}),
                    )
                except grpc.aio.AioRpcError as err:
                    if err.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                    got = None
            network = {f: getattr(net.barring, f) for f in BARRING_FIELDS}
            state = "LINE_STATE_ACTIVE" if got is None else common_pb2.LineState.Name(got.line.state)
            if got is None and any(network.values()):
                self.f.add_line(
                    t.line.index, "lines out of sync", f"{who}: no record, barred in the HLR {_barred(network)}"
                )
            elif got is not None:
                recorded = {f: getattr(got.line.barring, f) for f in BARRING_FIELDS}
                if not got.in_sync or recorded != network:
                    self.f.add_line(
                        t.line.index,
                        "lines out of sync",
                        f"{who}: {state} barring {_barred(recorded)}, HLR {_barred(network)} (in_sync {got.in_sync})",
                    )
            if state != t.line.kind.final_state:
                self.f.add_line(
                    t.line.index, "wrong outcomes", f"{who}: line {state}, should be {t.line.kind.final_state}"
                )

        await asyncio.gather(*(one(t) for t in traces))

    # ---- notifications and receipts -----------------------------------------------------------------

    async def notifications(self, conn: asyncpg.Connection, hashes: list[str]) -> None:
        rows = await conn.fetch(
            "SELECT a.notification_id, a.seq, a.channel, a.outcome, a.smsc_message_id, a.at, n.case_id,"
            " r.stat, r.received_at FROM notify.attempts a JOIN notify.notifications n USING (notification_id)"
            " LEFT JOIN notify.receipts r ON r.smsc_message_id = a.smsc_message_id"
            " WHERE n.line_hash = ANY($1) AND a.channel = ANY($2) ORDER BY a.notification_id, a.channel, a.seq",
            hashes,
            list(SMS_CHANNELS),
        )
        orphans = await conn.fetch(
            "SELECT smsc_message_id, stat, received_at FROM notify.receipts r WHERE NOT EXISTS"
            " (SELECT 1 FROM notify.attempts a WHERE a.smsc_message_id = r.smsc_message_id) ORDER BY received_at"
        )
        last: dict[tuple, asyncpg.Record] = {}  # (notification, channel) -> its latest accepted SMS
        resent: list[asyncpg.Record] = []  # SMS sent after an attempt a killed dispatcher left unknown
        interrupted: set[tuple] = set()  # channels with an interrupted attempt since their last accepted SMS
        for r in rows:
            key = (r["notification_id"], r["channel"])
            nid = str(r["notification_id"])[:8]
            if r["outcome"] == "interrupted":
                interrupted.add(key)
            if r["smsc_message_id"] is None:
                continue
            if r["stat"] is None:
                what = (
                    f"notification {nid} ({r['case_id']}) attempt {r['seq']}: SMSC message {r['smsc_message_id']}"
                    f" accepted at {r['at']:%H:%M:%S.%f}, no receipt stored"
                )
                if self._notify_killed_within(r["at"].timestamp(), RECEIPT_DUE_S):
                    self.f.notes.append(f"{what}; notify was SIGKILLed as it came (known, smpp34 acknowledges first)")
                else:
                    self.f.add("receipts lost", what)
            before = last.get(key)
            if before is not None and before["stat"] not in RECEIPT_FAILED:
                self.f.add(
                    "notifications sent twice",
                    f"notification {nid} ({r['case_id']}): attempt {r['seq']} sent while attempt {before['seq']}"
                    f" ({before['stat'] or 'no receipt'}) had not failed",
                )
            elif key in interrupted:
                resent.append(r)
            interrupted.discard(key)
            last[key] = r
        self._pair_orphans(list(orphans), resent)

    def _notify_killed_within(self, since: float, window_s: float) -> bool:
        return any(
            k.name == "notify" and k.wall is not None and since <= k.wall <= since + window_s for k in self.kills
        )

    def _pair_orphans(self, orphans: list[asyncpg.Record], resent: list[asyncpg.Record]) -> None:
        """An orphan receipt is an SMS the SMSC accepted that notify never recorded: a dispatcher was killed between
        the SMSC's answer and its own write, and the attempt was closed as interrupted. When the channel was tried
        again after it (paired by time) and the orphan did not fail, the holder got the SMS twice. An orphan that
        failed, or that nothing followed, was no double send: notify's record lacks that attempt's outcome (a note)."""
        pool = sorted(resent, key=lambda r: r["at"])
        for o in orphans:
            if not pool:
                self.f.notes.append(
                    f"SMSC message {o['smsc_message_id']} ({o['stat']}) matches no attempt: sent by a dispatcher"
                    " killed before it recorded it (its attempt reads interrupted); not sent again"
                )
                continue
            r = min(pool, key=lambda r: abs((r["at"] - o["received_at"]).total_seconds()))
            pool.remove(r)
            what = (
                f"notification {str(r['notification_id'])[:8]} ({r['case_id']}): an SMS the SMSC accepted"
                f" ({o['smsc_message_id']}, {o['stat']}) was never recorded (attempt interrupted by a kill), and"
                f" attempt {r['seq']} sent it again"
            )
            if o["stat"] in RECEIPT_FAILED:
                self.f.notes.append(f"{what}; the first was not delivered, so no double SMS")
            else:
                self.f.add("notifications sent twice", what)

    # ---- logs -----------------------------------------------------------------------------------------

    def tracebacks(self) -> None:
        for log in sorted((self.data / "logs").glob("*.log")):
            text = log.read_text(errors="replace")
            count = text.count("Traceback (most recent call last)")
            if not count:
                continue
            last = Counter(_exceptions(text)).most_common(3)
            kinds = ", ".join(f"{name} ×{n}" for name, n in last) or "?"
            self.f.add("tracebacks", f"{log.name}: {count} ({kinds})")


EXC_RE = re.compile(
    r"(?:\\n|\n)([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Cancelled|Timeout)\w*)(?::|\\n|\n|\")"
)


def _exceptions(text: str) -> list[str]:
    """The exception named at the end of each traceback (its class only: messages may carry data)."""
    out = []
    for part in text.split("Traceback (most recent call last)")[1:]:
        found = EXC_RE.findall(part[:20000])
        if found:
            out.append(found[-1] if "During handling" not in part else found[0])
    return out


def _barred(b: dict[str, bool]) -> str:
    on = [f for f, v in b.items() if v]
    return "{" + ",".join(on) + "}" if on else "{}"
