"""IngestCdrs applies each batch as its own request: a refused batch names itself, and a batch sent again
answers with the decisions it took the first time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from pscommon.errors import parse_details
from tests.helpers import connect, register_line, rid, scam_burst

MSISDN = "19355501919"


async def test_a_refused_batch_names_itself_and_a_resent_batch_answers_its_decisions(stack):
    await register_line(stack.cfg, MSISDN, "44", "holder-batches")
    burst = scam_burst(MSISDN, datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=50), calls=20)
    good = scoring_pb2.IngestCdrsRequest(request_id=rid(), cdrs=burst)
    bad = scoring_pb2.IngestCdrsRequest(request_id="x", cdrs=burst[:1])
    stub = scoring_pb2_grpc.ScoringServiceStub(connect(stack.cfg, "scoring", "mediation"))

    async def stream(*batches: scoring_pb2.IngestCdrsRequest):
        for b in batches:
            yield b

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.IngestCdrs(stream(good, bad))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, violations = parse_details(refused.value)
    assert info is not None and info.metadata["batch_index"] == "1"
    assert [f for f, _ in violations] == ["request_id"]

    # The caller never saw the first batch's decisions: sending it again gives them, and scores nothing twice.
    again = await stub.IngestCdrs(stream(good))
    assert again.batches_repeated == 1 and again.batches_accepted == 0 and again.cdrs_accepted == 0
    assert again.decisions, "the scam burst took decisions the first time"
    assert {d.case_id for d in again.decisions} == {again.decisions[0].case_id}
    assert again.decisions[-1].action == 4  # suspended
    assert again.decisions[0].reasons and again.decisions[0].masked_msisdn.endswith(MSISDN[-4:])
    reader = scoring_pb2_grpc.ScoringServiceStub(connect(stack.cfg, "scoring", "customer-service"))
    got = await reader.GetAssessment(scoring_pb2.GetAssessmentRequest(msisdn=MSISDN))
    assert got.features["calls_1h"] == 20


async def test_bytes_that_do_not_parse_are_refused_as_the_batch_they_are(stack):
    """A second message that is not an IngestCdrsRequest at all: the first batch stays applied and the error
    names the second (batch_index 1), so the caller knows what was taken."""
    msisdn = "19355501920"
    await register_line(stack.cfg, msisdn, "44", "holder-batches-2")
    burst = scam_burst(msisdn, datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=50), calls=3)
    good = scoring_pb2.IngestCdrsRequest(request_id=rid(), cdrs=burst).SerializeToString()
    channel = connect(stack.cfg, "scoring", "mediation")
    call = channel.stream_unary(
        "/carrier.scoring.v1.ScoringService/IngestCdrs",
        request_serializer=None,
        response_deserializer=scoring_pb2.IngestCdrsResponse.FromString,
    )

    async def raw():
        yield good
        yield b"\x00\x00"

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(raw())
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, violations = parse_details(refused.value)
    assert info is not None and info.metadata["batch_index"] == "1"
    assert [f for f, _ in violations] == ["request"]
    reader = scoring_pb2_grpc.ScoringServiceStub(connect(stack.cfg, "scoring", "customer-service"))
    got = await reader.GetAssessment(scoring_pb2.GetAssessmentRequest(msisdn=msisdn))
    assert got.features["calls_1h"] == 3
