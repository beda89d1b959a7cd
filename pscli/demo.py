"""`psctl demo`: three lines through the running stack, and what became of each.

A scam line gets suspended; a 14-year customer making many remote calls is warned, verifies online and
is restored; a courier's delivery burst is left alone. Fresh numbers each run, so it can be replayed.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import grpc
from temporalio.client import Client

from carrier.common.v1 import common_pb2
from carrier.registry.v1 import registry_pb2, registry_pb2_grpc
from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from carrier.suspension.v1 import suspension_pb2, suspension_pb2_grpc
from contracts.case import CASE_RENEWED, QUERY_STATUS, UPDATE_WAIT_STAGE, Action, CaseStatus, RiskLevel, Stage
from contracts.pb import ACTION_OF, RISK_LEVEL_OF
from pscli.portal_client import holder_link, verify_online
from pscli.sms_inbox import link_in, warning_sms
from pscommon import temporal
from pscommon.channels import channel
from pscommon.config import Settings, settings
from pscommon.identity import line_hash, mask
from pscommon.tls import TlsFiles


@dataclass
class Line:
    role: str
    msisdn: str
    province: str
    opened_at: str
    enterprise: str = ""
    holder_ref: str = field(default_factory=lambda: f"holder-{uuid.uuid4().hex[:10]}")
    expect: str = ""


def _number(prefix: str, rng: random.Random) -> str:
    return prefix + "".join(rng.choice("0123456789") for _ in range(8))


def _cdr(line: Line, peer: str, province: str, out: bool, at: datetime, duration: int) -> scoring_pb2.Cdr:
    c = scoring_pb2.Cdr(
        msisdn=line.msisdn,
        peer=peer,
        peer_province=province,
        direction=scoring_pb2.DIRECTION_OUT if out else scoring_pb2.DIRECTION_IN,
        service=scoring_pb2.SERVICE_KIND_VOICE,
        duration_s=duration,
        roaming=scoring_pb2.ROAMING_NONE,
        imei=f"86{line.msisdn}01",  # one handset per line, new each run: runs on one data folder stay apart
        cell_id="460-00-22817-10391",
    )
    c.start.FromDatetime(at)
    return c


def scenario(rng: random.Random, t0: datetime) -> tuple[list[Line], list[scoring_pb2.Cdr]]:
    fraud = Line(
        "scam line", _number("193", rng), "44", (t0 - timedelta(days=20)).date().isoformat(), expect="SUSPENDED"
    )
    customer = Line("14-year customer", _number("139", rng), "44", "2012-05-01", expect="RESTORED")
    courier = Line("courier", _number("135", rng), "51", "2019-03-15", enterprise="SF-Express", expect="ACTIVE")
    cdrs: list[tuple[datetime, scoring_pb2.Cdr]] = []
    for i in range(20):  # scam: a call every two minutes to strangers in other provinces, half unanswered
        at = t0 + timedelta(minutes=2 * i)
        cdrs.append((at, _cdr(fraud, _number("137", rng), "51", True, at, 0 if i % 2 else 18)))
    friends = [_number("138", rng) for _ in range(6)]
    for i, f in enumerate(friends):  # the customer's contacts called earlier in the week
        at = t0 - timedelta(days=2, minutes=i)
        cdrs.append((at, _cdr(customer, f, "11", False, at, 120)))
    for i in range(20):  # then a busy hour of calls to other provinces, mostly to numbers new to the line
        at = t0 + timedelta(minutes=2 * i)
        peer = friends[i] if i < 2 else _number("136", rng)
        cdrs.append((at, _cdr(customer, peer, "11", True, at, 95)))
    for i in range(22):  # courier: short local calls to parcel recipients, many call back
        at = t0 + timedelta(minutes=4 * i)
        peer = _number("158", rng)
        cdrs.append((at, _cdr(courier, peer, "51", True, at, 25)))
        if i % 2 == 0:
            cdrs.append((at + timedelta(minutes=1), _cdr(courier, peer, "51", False, at + timedelta(minutes=1), 15)))
    cdrs.sort(key=lambda t: t[0])
    return [fraud, customer, courier], [c for _, c in cdrs]


async def _register(cfg: Settings, lines: list[Line]) -> None:
    registry = registry_pb2_grpc.RegistryServiceStub(channel(cfg.simulators_addr, TlsFiles.of_principal(cfg, "ops")))
    scoring = scoring_pb2_grpc.ScoringServiceStub(channel(cfg.scoring_addr, TlsFiles.of_principal(cfg, "mediation")))
    for ln in lines:
        await registry.RegisterSubscriber(
            registry_pb2.RegisterSubscriberRequest(
                request_id=uuid.uuid4().hex,
                subscriber=registry_pb2.Subscriber(
                    msisdn=ln.msisdn,
                    province=ln.province,
                    holder_ref=ln.holder_ref,
                    opened_at=ln.opened_at,
                    enterprise=ln.enterprise,
                    language="zh",
                ),
            )
        )
        await scoring.UpsertSubscriber(
            scoring_pb2.UpsertSubscriberRequest(
                request_id=uuid.uuid4().hex,
                msisdn=ln.msisdn,
                home_province=ln.province,
                opened_at=ln.opened_at,
                enterprise=ln.enterprise,
                language="zh",
            )
        )


async def run_demo() -> int:
    cfg = settings()
    started = time.monotonic()
    rng = random.Random()
    lines, cdrs = scenario(rng, datetime.now(UTC) - timedelta(hours=2))
    await _register(cfg, lines)

    async def stream():
        for i in range(0, len(cdrs), 25):
            yield scoring_pb2.IngestCdrsRequest(request_id=uuid.uuid4().hex, cdrs=cdrs[i : i + 25])

    mediation = channel(cfg.scoring_addr, TlsFiles.of_principal(cfg, "mediation"))
    resp = await scoring_pb2_grpc.ScoringServiceStub(mediation).IngestCdrs(stream())
    by_hash = {d.line_hash: d for d in resp.decisions}  # the last decision of each line wins
    client = await temporal.connect(cfg, wait_s=5)
    suspension = suspension_pb2_grpc.SuspensionServiceStub(
        channel(cfg.suspension_addr, TlsFiles.of_principal(cfg, "ops"))
    )
    failures = 0
    print(f"\nPlayed {len(cdrs)} CDRs of {len(lines)} lines (case policy: {cfg.case_policy}).\n")
    for ln in lines:
        d = by_hash.get(line_hash(ln.msisdn, cfg.line_hash_key))
        stages: list[str] = []
        if d is not None:
            handle = client.get_workflow_handle(d.case_id, result_type=CaseStatus)
            if ln.expect == "RESTORED":
                await reach(client, d.case_id, Stage.WARNED)
                # The holder opens the link of the warning SMS and passes the online check on the portal's page.
                link, bad_sms = await received_link(cfg, d.case_id, mask(ln.msisdn))
                failures += bad_sms
                try:
                    status_url = await verify_online(link, ln.msisdn, ln.holder_ref)
                    print(f"      online check sent through the page; live status: {status_url}")
                    await reach(client, d.case_id, Stage.RESTORED)
                except (RuntimeError, aiohttp.ClientError) as err:
                    print(f"      the holder's page failed: {err}", file=sys.stderr)
                    failures += 1
            else:
                await reach(client, d.case_id, Stage.SUSPENDED)
            status = await handle.query(QUERY_STATUS, result_type=CaseStatus)
            stages = [f"{h.stage} {h.at[11:19]}" for h in status.history]
        try:
            got = await suspension.GetLine(suspension_pb2.GetLineRequest(msisdn=ln.msisdn))
            state = common_pb2.LineState.Name(got.line.state).removeprefix("LINE_STATE_")
            sync = "network in sync" if got.in_sync else "NETWORK OUT OF SYNC"
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.NOT_FOUND:
                raise
            state, sync = "ACTIVE", "never barred"
        ok = state == ln.expect
        failures += not ok
        level = RISK_LEVEL_OF[d.risk_level] if d else RiskLevel.LOW
        action = ACTION_OF[d.action] if d else Action.NONE
        print(
            f"{'OK ' if ok else 'BAD'} {mask(ln.msisdn)}  {ln.role:<17} risk={level:<8} action={action:<9} line={state} ({sync})"
        )
        for r in d.reasons if d else []:
            print(f"      · {r.text_en}  /  {r.text_zh}")
        for r in d.mitigations if d else []:
            print(f"      + in the holder's favour: {r.text_en}  /  {r.text_zh}")
        if d is not None and stages:
            print(f"      stages: {' → '.join(stages)} (UTC)")
            print(f"      {temporal.case_url(cfg, d.case_id)}")
        print()
    print(f"demo finished in {time.monotonic() - started:.1f}s; Temporal UI: {cfg.temporal_ui_url}")
    print(f"find a case by number: .venv/bin/psctl case find {lines[0].msisdn}")
    print("stop the stack with `make down`; `make clean` also removes its data")
    if failures:
        print(f"{failures} expectation(s) not met", file=sys.stderr)
        return 1
    return 0


async def received_link(cfg: Settings, case_id: str, masked: str) -> tuple[str, bool]:
    """The link in the warning SMS the holder received; when there is none to read, one signed here with the stack's
    link keys (saying so). True with it when the SMS went out without a link (a fault of the stack)."""
    try:
        sms = await warning_sms(cfg.database_url, case_id)
    except (OSError, asyncpg.PostgresError) as err:
        sms, why = None, f"could not be read from notify's store ({type(err).__name__})"
    else:
        why = "carries no link" if sms else "was not found in notify's store within 30 s"
    link = link_in(sms.body, cfg.verify_url_base) if sms else None
    if sms is not None and link is not None:
        when = f"delivered {sms.delivered_at:%H:%M:%S} UTC" if sms.delivered_at else "not delivered yet"
        print(f"holder's link, from the warning SMS to {masked} ({when}): {link}")
        return link, False
    print(f"      the warning SMS to {masked} {why}; the demo signs the holder's link itself", file=sys.stderr)
    link = holder_link(cfg, case_id, "zh")
    print(f"holder's link (signed by the demo, NOT read from the SMS): {link}")
    return link, sms is not None


async def reach(client: Client, case_id: str, stage: Stage) -> CaseStatus:
    """Waits until the case enters `stage`, following it when it renews its history."""
    return await temporal.update_following_runs(client, case_id, UPDATE_WAIT_STAGE, stage, CaseStatus, CASE_RENEWED)
