"""What the suspension service accepts: every field checked before anything happens."""

from __future__ import annotations

import re

from carrier.common.v1 import common_pb2
from carrier.suspension.v1 import suspension_pb2
from pscommon.validation import Violations

LINE_HASH_RE = re.compile(r"[0-9a-f]{20}")
TARGET_STATES = set(common_pb2.LineState.values()) - {common_pb2.LINE_STATE_UNSPECIFIED, common_pb2.LINE_STATE_ACTIVE}


def check_change(request: suspension_pb2.ChangeLineStateRequest) -> None:
    v = Violations()
    v.request_id(request.request_id)
    v.msisdn(request.msisdn)
    v.province(request.home_province, "home_province")
    v.enum(request.target_state, "target_state", TARGET_STATES)
    v.required(request.actor.kind, "actor.kind")
    v.required(request.actor.id, "actor.id")
    v.required(request.case_id, "case_id")
    v.required(request.reason, "reason")
    v.raise_if_any()


def check_get_line(request: suspension_pb2.GetLineRequest) -> None:
    v = Violations()
    v.msisdn(request.msisdn)
    v.raise_if_any()


def check_list_history(request: suspension_pb2.ListLineHistoryRequest) -> None:
    v = Violations()
    if request.line_hash:
        v.check(not request.msisdn, "msisdn", "give the number or its line_hash, not both")
        v.check(
            LINE_HASH_RE.fullmatch(request.line_hash) is not None, "line_hash", "must be a line hash as in case ids"
        )
    else:
        v.msisdn(request.msisdn)
    v.raise_if_any()
