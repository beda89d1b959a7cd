"""The case contract's enums beside their protobuf counterparts: one table each way, checked at import.

A proto enum value is named `<PREFIX><MEMBER>` (RISK_LEVEL_HIGH for RiskLevel.HIGH); a member without a proto
value fails at import, not in a request."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from carrier.common.v1 import common_pb2
from carrier.verification.v1 import verification_pb2
from contracts.case import Action, Authority, OperatorChoice, OrderKind, ReviewDecision, ReviewKind, RiskLevel, Route

E = TypeVar("E", bound=StrEnum)


def _to_pb(members: type[E], pb_enum: Any, prefix: str) -> dict[E, Any]:
    return {m: pb_enum.Value(f"{prefix}{m.name}") for m in members}


def _reverse(table: Mapping[E, int]) -> dict[int, E]:
    return {v: k for k, v in table.items()}


RISK_LEVEL_PB: dict[RiskLevel, common_pb2.RiskLevel.ValueType] = _to_pb(RiskLevel, common_pb2.RiskLevel, "RISK_LEVEL_")
RISK_LEVEL_OF = _reverse(RISK_LEVEL_PB)
ACTION_PB: dict[Action, common_pb2.Action.ValueType] = _to_pb(Action, common_pb2.Action, "ACTION_")
ACTION_OF = _reverse(ACTION_PB)
ROUTE_PB: dict[Route, verification_pb2.Route.ValueType] = _to_pb(Route, verification_pb2.Route, "ROUTE_")
ROUTE_OF = _reverse(ROUTE_PB)
REVIEW_KIND_PB: dict[ReviewKind, verification_pb2.ReviewKind.ValueType] = _to_pb(
    ReviewKind, verification_pb2.ReviewKind, "REVIEW_KIND_"
)
REVIEW_KIND_OF = _reverse(REVIEW_KIND_PB)
DECISION_PB: dict[ReviewDecision, verification_pb2.Decision.ValueType] = _to_pb(
    ReviewDecision, verification_pb2.Decision, "DECISION_"
)
DECISION_OF = _reverse(DECISION_PB)
AUTHORITY_PB: dict[Authority, verification_pb2.Authority.ValueType] = _to_pb(
    Authority, verification_pb2.Authority, "AUTHORITY_"
)
AUTHORITY_OF = _reverse(AUTHORITY_PB)
ORDER_PB: dict[OrderKind, verification_pb2.Order.ValueType] = _to_pb(OrderKind, verification_pb2.Order, "ORDER_")
ORDER_OF = _reverse(ORDER_PB)
OPERATOR_CHOICE_PB: dict[OperatorChoice, verification_pb2.OperatorChoice.ValueType] = _to_pb(
    OperatorChoice, verification_pb2.OperatorChoice, "OPERATOR_CHOICE_"
)
OPERATOR_CHOICE_OF = _reverse(OPERATOR_CHOICE_PB)
