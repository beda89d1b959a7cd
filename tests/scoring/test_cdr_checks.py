"""Scoring checks CDRs itself (the generic walker leaves them to it): every bad field is named."""

from __future__ import annotations

import time

from carrier.scoring.v1 import scoring_pb2
from pscommon.validation import Violations
from services.scoring import requests


def cdr(**fields: object) -> scoring_pb2.Cdr:
    c = scoring_pb2.Cdr(msisdn="13800000001", peer="13900000002", peer_province="44", direction=1, service=1, roaming=1)
    c.start.seconds = int(time.time()) - 60
    for name, value in fields.items():
        if name == "nanos":
            c.start.nanos = value  # type: ignore[assignment]
        else:
            setattr(c, name, value)
    return c


def named(*cdrs: scoring_pb2.Cdr) -> list[str]:
    v = Violations()
    requests.cdr_rows(v, cdrs)
    return [field for field, _ in v.items]


def test_a_good_cdr_passes() -> None:
    assert named(cdr(), cdr(nanos=999_999_999, country="CN")) == []


def test_bad_start_nanos_and_country_are_named() -> None:
    assert named(cdr(), cdr(nanos=-1)) == ["cdrs[1].start.nanos"]
    assert named(cdr(nanos=1_000_000_000), cdr(country="China")) == ["cdrs[0].start.nanos", "cdrs[1].country"]
