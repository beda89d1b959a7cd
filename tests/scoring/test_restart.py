"""A restarted scoring service still remembers the last hour of every line (windows snapshotted to PostgreSQL)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from services.scoring import server as scoring_server
from tests.helpers import connect, ingest, register_line, scam_burst

MSISDN = "19355501818"


async def test_restart_keeps_the_last_hour_of_a_suspicious_line(stack):
    await register_line(stack.cfg, MSISDN, "44", "holder-restart")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=50)
    burst = scam_burst(MSISDN, start, calls=19)
    first = await ingest(stack.cfg, burst[:18])
    assert first.decisions and first.decisions[-1].action == 4  # suspended after a few of the 18

    old = stack.services["scoring"]
    await old.stop(0.5)  # graceful: the snapshot is flushed on the way out
    stack.services["scoring"] = await scoring_server.start(
        dataclasses.replace(stack.cfg, principal="scoring"), old.port
    )

    stub = scoring_pb2_grpc.ScoringServiceStub(connect(stack.cfg, "scoring", "customer-service"))
    got = await stub.GetAssessment(scoring_pb2.GetAssessmentRequest(msisdn=MSISDN))
    assert got.features["calls_1h"] == 18
    assert got.features["new_peers_1h"] == 18
    assert got.assessment.action == 4
    # The open case is remembered too: the 19th call neither opens nor joins another case.
    after = await ingest(stack.cfg, burst[18:])
    assert after.cdrs_accepted == 1 and not after.decisions
