"""The generic bounds walker: a message its service checks itself is left to the service, its count is not."""

from __future__ import annotations

from carrier.scoring.v1 import scoring_pb2
from pscommon import bounds


def test_elements_checked_by_their_service_are_counted_but_not_walked(monkeypatch) -> None:
    walked: list[str] = []
    value = bounds._value
    monkeypatch.setattr(bounds, "_value", lambda f, v, path, found: walked.append(path) or value(f, v, path, found))
    bad = scoring_pb2.Cdr(msisdn="\x00", peer="x" * 500)  # scoring names these fields itself (requests.py)
    assert bounds.violations(scoring_pb2.ScoreCdrsRequest(request_id="r", cdrs=[bad] * 3)) == []
    assert walked == ["request_id"]
    many = scoring_pb2.ScoreCdrsRequest(request_id="r", cdrs=[scoring_pb2.Cdr()] * 5001)
    assert bounds.violations(many) == [("cdrs", "at most 5000 elements, got 5001")]


def test_other_fields_beside_them_are_still_checked() -> None:
    found = bounds.violations(scoring_pb2.ScoreCdrsRequest(request_id="a\x00", cdrs=[scoring_pb2.Cdr()]))
    assert found == [("request_id", "must not contain control characters")]
