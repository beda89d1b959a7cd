"""Verification tells a case only what it has committed: a check whose commit fails leaves no record, sends no
signal and restores nothing; the same request sent again is recorded once and restores the line once."""

from __future__ import annotations

import asyncpg
import grpc
import pytest

from carrier.verification.v1 import verification_pb2 as vpb
from contracts.case import CaseStatus
from tests.helpers import open_case, register_line
from tests.verification.test_tiers import online, reach, stub

MSISDN, HOLDER = "19320004040", "holder-44-4040"

# A deferred constraint trigger runs at COMMIT: the transaction does everything, then its commit fails with a
# serialization failure (a transient error, answered UNAVAILABLE) for the case named in the flag table.
FAIL_COMMIT = """
CREATE TABLE IF NOT EXISTS verification.test_fail_commit (case_id text PRIMARY KEY);
CREATE OR REPLACE FUNCTION verification.test_fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM verification.test_fail_commit f WHERE f.case_id = NEW.case_id) THEN
        RAISE EXCEPTION 'commit refused by the test' USING ERRCODE = '40001';
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS test_fail_commit ON verification.case_signals;
CREATE CONSTRAINT TRIGGER test_fail_commit AFTER INSERT ON verification.case_signals
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION verification.test_fail_commit();
"""


async def test_a_failed_commit_tells_the_case_nothing_and_the_retry_restores_once(stack) -> None:
    await register_line(stack.cfg, MSISDN, "44", HOLDER)
    case_id = await open_case(stack, MSISDN, "medium", "restrict")
    await reach(stack, case_id, "warned")
    db = await asyncpg.connect(stack.cfg.database_url)
    try:
        await db.execute(FAIL_COMMIT)
        await db.execute("INSERT INTO verification.test_fail_commit VALUES ($1)", case_id)
        request = online(case_id, MSISDN, HOLDER)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub(stack).SubmitOnlineVerification(request)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE

        for table in ("verifications", "case_signals"):
            assert await db.fetchval(f"SELECT count(*) FROM verification.{table} WHERE case_id = $1", case_id) == 0
        handle = stack.client.get_workflow_handle(case_id, result_type=CaseStatus)
        assert (await handle.query("status", result_type=CaseStatus)).stage in ("warned", "warning_delivered")

        await db.execute("DELETE FROM verification.test_fail_commit WHERE case_id = $1", case_id)
        out = await stub(stack).SubmitOnlineVerification(request)  # the caller retries the same request
        assert out.outcome.result == vpb.RESULT_PASSED
        done = await handle.result()
        assert done.stage == "restored" and [h.stage for h in done.history].count("restored") == 1
        assert await db.fetchval("SELECT count(*) FROM verification.verifications WHERE case_id = $1", case_id) == 1
        restores = await db.fetchval(
            "SELECT count(*) FROM suspension.line_history WHERE case_id = $1 AND to_state = $2", case_id, 5
        )
        assert restores == 1
    finally:
        await db.execute("DROP TRIGGER IF EXISTS test_fail_commit ON verification.case_signals")
        await db.close()
