"""Holder lookup across provinces, lockouts, sealed evidence, knowledge factors, a policy change without a
release, and a status that reads the same from every channel."""

from __future__ import annotations

import dataclasses
import pathlib
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest

from carrier.common.v1 import common_pb2
from carrier.simulator.v1 import simulator_pb2, simulator_pb2_grpc
from carrier.verification.v1 import verification_pb2 as vpb
from carrier.verification.v1 import verification_pb2_grpc
from pscommon import codec
from pscommon.errors import parse_details
from services.verification import server as verification_server
from services.verification import store
from tests.helpers import AsAllowed, connect, open_case, register_line, rid
from tests.verification.test_tiers import VERIFICATION, online, reach, stub

REGISTRY = "/carrier.registry.v1.RegistryService/GetSubscriber"


async def fault(stack, target: str, fail_next: int = 0, latency_ms: int = 0) -> None:
    await simulator_pb2_grpc.FaultInjectionServiceStub(connect(stack.cfg, "simulators", "ops")).SetFault(
        simulator_pb2.SetFaultRequest(
            fault=simulator_pb2.Fault(target=target, error="UNAVAILABLE", fail_next=fail_next, latency_ms=latency_ms)
        )
    )


async def clear_faults(stack) -> None:
    await simulator_pb2_grpc.FaultInjectionServiceStub(connect(stack.cfg, "simulators", "ops")).ClearFaults(
        simulator_pb2.ClearFaultsRequest()
    )


async def test_xinjiang_customer_service_confirms_a_guangdong_holder_in_one_request(stack):
    msisdn, holder = "19330000001", "holder-44-3001"
    await register_line(stack.cfg, msisdn, "44", holder)
    ask = vpb.LookupHolderRequest(msisdn=msisdn, caller_province="65", claimed_holder_ref=holder)
    got = await stub(stack).LookupHolder(ask)
    assert got.holder_confirmed and got.home_province == "44" and got.masked_msisdn == "193****0001"
    wrong = await stub(stack).LookupHolder(
        vpb.LookupHolderRequest(msisdn=msisdn, caller_province="65", claimed_holder_ref="someone-else")
    )
    assert not wrong.holder_confirmed

    try:
        await fault(stack, REGISTRY, fail_next=2)  # a flaky registry: gRPC retries it within the same request
        assert (await stub(stack).LookupHolder(ask)).holder_confirmed
        await fault(stack, REGISTRY, fail_next=1000)  # the province's registry is down
        with pytest.raises(grpc.aio.AioRpcError) as down:
            await stub(stack).LookupHolder(ask)
        assert down.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "registry of province 44" in down.value.details() and "3 attempts" in down.value.details()
        assert parse_details(down.value)[0].metadata["province"] == "44"
        await fault(stack, REGISTRY, latency_ms=5000)  # hangs: the request times out rather than waiting for it
        with pytest.raises(grpc.aio.AioRpcError) as slow:
            await stub(stack).LookupHolder(ask, timeout=10)
        assert slow.value.code() == grpc.StatusCode.UNAVAILABLE and "DEADLINE_EXCEEDED" in slow.value.details()
    finally:
        await clear_faults(stack)


async def test_failed_checks_lock_the_line_out_and_say_when_it_lifts(stack):
    msisdn, holder = "19330000002", "holder-44-3002"
    await register_line(stack.cfg, msisdn, "44", holder)
    case_id = await open_case(stack, msisdn, "medium", "restrict")
    await reach(stack, case_id, "warned")
    v = stub(stack)
    lefts = []
    for i in range(5):
        out = await v.SubmitOnlineVerification(online(case_id, msisdn, "forged-holder", caller_id=f"app-{i}"))
        assert out.outcome.result == vpb.RESULT_FAILED and "HOLDER_MATCH_FAILED" in out.outcome.failures
        lefts.append(out.outcome.attempts_left)
    assert lefts == [4, 3, 2, 1, 0]
    before = datetime.now(UTC)
    with pytest.raises(grpc.aio.AioRpcError) as locked:  # even the real holder waits until the lockout lifts
        await v.SubmitOnlineVerification(online(case_id, msisdn, holder))
    assert locked.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, _ = parse_details(locked.value)
    assert info.reason == "TOO_MANY_FAILED_ATTEMPTS" and info.metadata["scope"] == "line"
    lifts = datetime.fromisoformat(info.metadata["lifts_at"])
    assert timedelta(hours=23) < lifts - before <= timedelta(hours=24, minutes=1)


async def test_one_caller_failing_on_many_lines_is_locked_out(stack):
    v = stub(stack)
    caller = f"agent-{rid()[:6]}"
    # policy.yaml: a caller may fail 20 times an hour; 4 failures on each of 5 lines stay under each line's 5.
    cases = []
    for i in range(6):
        msisdn = f"1934000{i:04d}"
        await register_line(stack.cfg, msisdn, "44", f"holder-44-34{i:02d}")
        cases.append((await open_case(stack, msisdn, "medium", "restrict"), msisdn))
    for case_id, msisdn in cases[:5]:
        for _ in range(4):
            await v.SubmitOnlineVerification(online(case_id, msisdn, "forged-x", caller_id=caller))
    case_id, msisdn = cases[5]  # a line this caller never failed on, with the right holder
    with pytest.raises(grpc.aio.AioRpcError) as locked:
        await v.SubmitOnlineVerification(online(case_id, msisdn, "holder-44-3405", caller_id=caller))
    assert parse_details(locked.value)[0].metadata["scope"] == "caller"


async def test_evidence_is_sealed_kept_for_its_retention_and_never_logged(stack, caplog):
    msisdn, holder = "19330000003", "holder-44-3003"
    await register_line(
        stack.cfg,
        msisdn,
        "44",
        holder,
        service_password="730519",
        recent_contacts=("13800000001", "13800000002", "13800000003"),
    )
    case_id = await open_case(stack, msisdn, "medium", "restrict")
    await reach(stack, case_id, "warned")
    v = stub(stack)
    wrong = await v.SubmitOnlineVerification(
        online(case_id, msisdn, holder, knowledge=vpb.KnowledgeFactors(service_password="000000"))
    )
    assert wrong.outcome.result == vpb.RESULT_FAILED and wrong.outcome.failures == ["SERVICE_PASSWORD_FAILED"]
    req = online(
        case_id,
        msisdn,
        holder,
        knowledge=vpb.KnowledgeFactors(service_password="730519", recent_contacts=["13800000001", "13800000003"]),
    )
    out = await v.SubmitOnlineVerification(req)
    assert out.outcome.result == vpb.RESULT_PASSED

    conn = await asyncpg.connect(stack.cfg.database_url)
    try:
        await conn.execute("SET search_path TO verification")
        rows = await conn.fetch(
            "SELECT kind, sealed, expires_at - stored_at AS kept FROM evidence WHERE owner_id = $1",
            uuid.UUID(out.outcome.verification_id),
        )
        assert {r["kind"] for r in rows} == {"holder_ref", "liveness_token"}
        assert all(req.liveness_token.encode() not in bytes(r["sealed"]) for r in rows)
        assert all(r["kept"] == timedelta(days=180) for r in rows)
        sealer = codec.sealer_from_settings(stack.cfg.codec_keys, stack.cfg.codec_active_key)
        vid = uuid.UUID(out.outcome.verification_id)
        assert await store.open_evidence(conn, sealer, [vid], "liveness_token") == {vid: [req.liveness_token]}
        await conn.execute("UPDATE evidence SET expires_at = now() - interval '1 second' WHERE owner_id = $1", vid)
        pool = await asyncpg.create_pool(stack.cfg.database_url, server_settings={"search_path": "verification"})
        assert await store.purge_expired_evidence(pool) >= 2
        await pool.close()
        assert not await conn.fetchval("SELECT count(*) FROM evidence WHERE owner_id = $1", vid)
    finally:
        await conn.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert req.liveness_token not in logged and holder not in logged and "730519" not in logged


async def test_a_policy_change_applies_to_new_checks_without_a_release(stack, tmp_path: pathlib.Path):
    table = tmp_path / "policy.yaml"
    shipped = verification_server.policy_mod.DEFAULT_PATH.read_text()
    table.write_text(shipped)
    svc = await verification_server.start(
        dataclasses.replace(stack.cfg, verification_policy=str(table), principal="verification"), 0
    )
    try:
        there = dataclasses.replace(stack.cfg, verification_addr=f"127.0.0.1:{svc.port}")
        v = AsAllowed(there, "verification", verification_pb2_grpc.VerificationServiceStub, VERIFICATION)
        high = vpb.GetRequirementsRequest(risk_level=common_pb2.RISK_LEVEL_HIGH)
        before = await v.GetRequirements(high)
        assert before.policy_version == "2026-11-default" and before.requirements[0].route == vpb.ROUTE_IN_PERSON
        # Shenzhen-style change: high risk may now restore online, without the hall.
        table.write_text(
            shipped.replace('version: "2026-11-default"', 'version: "2026-12-shenzhen"').replace(
                "  high:\n    - route: in_person",
                "  high:\n    - route: online\n      evidence: [holder_match, liveness,"
                " risk_notice]\n    - route: in_person",
            )
        )
        after = await v.GetRequirements(high)
        assert after.policy_version == "2026-12-shenzhen"
        assert [r.route for r in after.requirements] == [vpb.ROUTE_ONLINE, vpb.ROUTE_IN_PERSON]

        msisdn, holder = "19330000004", "holder-44-3004"
        await register_line(stack.cfg, msisdn, "44", holder)
        case_id = await open_case(stack, msisdn, "high", "restrict")
        await reach(stack, case_id, "warned")
        out = await v.SubmitOnlineVerification(online(case_id, msisdn, holder, common_pb2.RISK_LEVEL_HIGH))
        assert out.outcome.result == vpb.RESULT_PASSED and out.outcome.policy_version == "2026-12-shenzhen"
        conn = await asyncpg.connect(stack.cfg.database_url)
        try:
            recorded = await conn.fetchval(
                "SELECT policy_version FROM verification.verifications WHERE verification_id = $1::uuid",
                out.outcome.verification_id,
            )
        finally:
            await conn.close()
        assert recorded == "2026-12-shenzhen"
    finally:
        await svc.stop(0.5)


async def test_every_channel_reads_the_same_status(stack):
    msisdn, holder = "19330000005", "holder-44-3005"
    await register_line(stack.cfg, msisdn, "44", holder)
    case_id = await open_case(stack, msisdn, "high", "restrict")
    await stack.env.sleep(timedelta(hours=25))
    await reach(stack, case_id, "restricted")
    v = stub(stack)
    asks = [
        vpb.GetCaseStatusRequest(msisdn=msisdn, caller_province="65", caller_channel="customer_service"),
        vpb.GetCaseStatusRequest(msisdn=msisdn, caller_province="44", caller_channel="hall"),
        vpb.GetCaseStatusRequest(case_id=case_id, caller_channel="app"),
    ]
    seen = [await v.GetCaseStatus(a) for a in asks]
    assert seen[0] == seen[1] == seen[2]
    s = seen[0]
    assert s.case_id == case_id and s.stage == "restricted" and s.line_state == common_pb2.LINE_STATE_RESTRICTED
    assert s.risk_level == common_pb2.RISK_LEVEL_HIGH and s.masked_msisdn == "193****0005"
    assert "never called before" in s.reasons[0].text_en and s.reasons[0].text_zh
    assert "business hall" in s.next_step_en and "any province" in s.where_en and s.where_zh
    assert s.HasField("deadline") and [h.stage for h in s.history][:2] == ["warned", "warning_delivered"]

    appeal = await v.SubmitAppeal(
        vpb.SubmitAppealRequest(
            request_id=rid(), case_id=case_id, msisdn=msisdn, caller_province="65", explanation="it was me"
        )
    )
    await reach(stack, case_id, "in_review")
    seen = [await v.GetCaseStatus(a) for a in asks]
    assert seen[0] == seen[1] == seen[2]
    s = seen[0]
    assert s.stage == "in_review" and s.review.review_id == appeal.review.review_id and not s.review.explanation
    assert s.HasField("estimated_restore_at") and s.estimated_restore_at.ToDatetime() > s.deadline.ToDatetime()
    assert "reviewer" in s.next_step_en

    with pytest.raises(grpc.aio.AioRpcError) as none:
        await v.GetCaseStatus(vpb.GetCaseStatusRequest(msisdn="19339999999"))
    assert none.value.code() == grpc.StatusCode.NOT_FOUND
