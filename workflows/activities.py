"""Activities of the case: each calls one service over gRPC, idempotent by a request_id from the workflow."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from carrier.common.v1 import common_pb2
from carrier.notify.v1 import notify_pb2, notify_pb2_grpc
from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from carrier.suspension.v1 import suspension_pb2, suspension_pb2_grpc
from carrier.verification.v1 import verification_pb2, verification_pb2_grpc
from contracts.case import Delivery, DeliveryAttempt, DeliveryStatus, ReasonText, RiskLevel, Route
from contracts.pb import RISK_LEVEL_PB, ROUTE_OF
from pscommon.channels import channel
from pscommon.config import Settings
from pscommon.errors import parse_details
from pscommon.tls import TlsFiles
from workflows import metrics as case_metrics
from workflows import policy

# Errors that a retry cannot fix: the workflow must decide.
_PERMANENT = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
}
# Errors of a process or its dependency away for a moment: Temporal retries the step.
_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
log = logging.getLogger(__name__)


@dataclass
class LineChange:
    request_id: str
    msisdn: str
    home_province: str
    case_id: str
    target_state: str  # LINE_STATE_* name
    reason: str
    actor_kind: str = ""  # default: the case workflow itself
    actor_id: str = ""


@dataclass
class NotifyArgs:
    request_id: str
    msisdn: str
    home_province: str
    case_id: str
    template: str  # TEMPLATE_* name
    language: str
    reasons: list[ReasonText]
    line_state: str
    deadline: str | None  # RFC 3339
    next_step_zh: str
    next_step_en: str
    pending_action: str = ""  # a warning: restrict | suspend, what happens without verification


@dataclass
class OutcomeArgs:
    request_id: str
    msisdn: str
    case_id: str
    outcome: str  # OUTCOME_* name


@dataclass
class RouteText:
    zh: str
    en: str
    route: Route | None


async def _call(rpc: Any, request: Any, timeout: float) -> Any:
    """One RPC; errors a retry cannot fix become non-retryable (their ErrorInfo reason in the details), the rest
    are retried by Temporal within the case policy's attempts. A transient one (a service or its database
    restarting) is a benign, retryable failure: one log line, not a warning with a traceback per attempt."""
    try:
        return await rpc(request, timeout=timeout)
    except grpc.aio.AioRpcError as err:
        if err.code() in _PERMANENT:
            info, _ = parse_details(err)
            reason = info.reason if info is not None else ""
            raise ApplicationError(err.details() or "", reason, type=err.code().name, non_retryable=True) from err
        if err.code() in _TRANSIENT:
            log.info("%s: %s, Temporal retries the step", _rpc_name(rpc), err.code().name)
            raise ApplicationError(
                err.details() or "", type=err.code().name, category=ApplicationErrorCategory.BENIGN
            ) from err
        raise


def _rpc_name(rpc: Any) -> str:
    method = getattr(rpc, "_method", b"")
    return (method.decode() if isinstance(method, bytes) else str(method)).rsplit("/", 1)[-1] or "rpc"


_STATUS = {
    notify_pb2.DELIVERY_STATUS_PENDING: DeliveryStatus.PENDING,
    notify_pb2.DELIVERY_STATUS_DELIVERED: DeliveryStatus.DELIVERED,
    notify_pb2.DELIVERY_STATUS_FAILED: DeliveryStatus.FAILED,
}


def _name(enum: Any, value: int, prefix: str) -> str:
    return "" if value == 0 else enum.Name(value).removeprefix(prefix).lower()


def delivery(resp: notify_pb2.GetNotificationResponse) -> Delivery:
    return Delivery(
        notification_id=resp.notification_id,
        status=_STATUS[resp.status],
        channel=_name(notify_pb2.Channel, resp.delivered_channel, "CHANNEL_"),
        at=resp.delivered_at.ToDatetime().isoformat() + "Z" if resp.HasField("delivered_at") else "",
        location=resp.location,
        country=resp.country,
        attempts=[
            DeliveryAttempt(
                channel=_name(notify_pb2.Channel, a.channel, "CHANNEL_"),
                outcome=a.outcome,
                error_class=_name(notify_pb2.ErrorClass, a.error_class, "ERROR_CLASS_"),
                at=a.at.ToDatetime().isoformat() + "Z",
                detail=a.detail,
            )
            for a in resp.attempts
        ],
    )


class CaseActivities:
    def __init__(self, cfg: Settings) -> None:
        self.cfg = cfg
        self.suspension = suspension_pb2_grpc.SuspensionServiceStub(
            channel(cfg.suspension_addr, TlsFiles.from_settings(cfg))
        )
        self.notify = notify_pb2_grpc.NotifyServiceStub(channel(cfg.notify_addr, TlsFiles.from_settings(cfg)))
        self.scoring = scoring_pb2_grpc.ScoringServiceStub(channel(cfg.scoring_addr, TlsFiles.from_settings(cfg)))
        self.verification = verification_pb2_grpc.VerificationServiceStub(
            channel(cfg.verification_addr, TlsFiles.from_settings(cfg))
        )

    @activity.defn
    async def load_case_policy(self) -> policy.CasePolicy:
        return policy.load(self.cfg.case_policy)

    @activity.defn
    async def restore_route(self, risk_level: RiskLevel, msisdn: str) -> RouteText:
        """How the holder can restore, in words, from the verification policy in force and the line's history."""
        resp = await _call(
            self.verification.GetRequirements,
            verification_pb2.GetRequirementsRequest(risk_level=RISK_LEVEL_PB[risk_level], msisdn=msisdn),
            10,
        )
        first = resp.requirements[0]
        link = self.cfg.verify_url_base
        online = first.route == verification_pb2.ROUTE_ONLINE
        return RouteText(
            zh=f"{first.description_zh}（{link}）" if online else first.description_zh,
            en=f"{first.description_en} ({link})" if online else first.description_en,
            route=ROUTE_OF[first.route],
        )

    @activity.defn
    async def escalate_review(self, request_id: str, review_id: str) -> None:
        req = verification_pb2.EscalateReviewRequest(request_id=request_id, review_id=review_id)
        await _call(self.verification.EscalateReview, req, 10)

    @activity.defn
    async def change_line_state(self, change: LineChange) -> str:
        """The line's state afterwards. A line already in the target state (an operator, another case, or this
        step's earlier attempt under another request id got there first) is the outcome the case wanted."""
        try:
            return await self._change_line_state(change)
        except ApplicationError as err:
            if err.type == grpc.StatusCode.FAILED_PRECONDITION.name and "ALREADY_IN_STATE" in err.details:
                return change.target_state
            raise

    async def _change_line_state(self, change: LineChange) -> str:
        resp = await _call(
            self.suspension.ChangeLineState,
            suspension_pb2.ChangeLineStateRequest(
                request_id=change.request_id,
                msisdn=change.msisdn,
                home_province=change.home_province,
                target_state=common_pb2.LineState.Value(change.target_state),
                actor=common_pb2.Actor(
                    kind=change.actor_kind or "workflow", id=change.actor_id or "protective-suspension-case"
                ),
                case_id=change.case_id,
                reason=change.reason,
            ),
            15,
        )
        return common_pb2.LineState.Name(resp.line.state)

    @activity.defn
    async def send_notification(self, args: NotifyArgs) -> str:
        req = notify_pb2.SendNotificationRequest(
            request_id=args.request_id,
            msisdn=args.msisdn,
            home_province=args.home_province,
            case_id=args.case_id,
            template=notify_pb2.Template.Value(args.template),
            language=args.language,
            reasons=[
                common_pb2.Reason(code=r.code, text_zh=r.text_zh, text_en=r.text_en, weight=r.weight)
                for r in args.reasons
            ],
            line_state=common_pb2.LineState.Value(args.line_state),
            next_step_zh=args.next_step_zh,
            next_step_en=args.next_step_en,
        )
        if args.deadline:
            req.deadline.FromDatetime(datetime.fromisoformat(args.deadline))
        if args.pending_action:
            req.pending_action = common_pb2.Action.Value(f"ACTION_{args.pending_action.upper()}")
        resp = await _call(self.notify.SendNotification, req, 15)
        return resp.notification_id

    @activity.defn
    async def get_delivery(self, notification_id: str) -> Delivery:
        """The notification as it stands (attempts so far), without waiting."""
        req = notify_pb2.GetNotificationRequest(notification_id=notification_id)
        return delivery(await _call(self.notify.GetNotification, req, 10))

    @activity.defn
    async def record_outcome(self, args: OutcomeArgs) -> None:
        await _call(
            self.scoring.RecordOutcome,
            scoring_pb2.RecordOutcomeRequest(
                request_id=args.request_id,
                msisdn=args.msisdn,
                case_id=args.case_id,
                outcome=scoring_pb2.Outcome.Value(args.outcome),
            ),
            10,
        )
        case_metrics.case_closed(args.outcome)

    def all(self) -> list:
        return [
            self.load_case_policy,
            self.restore_route,
            self.escalate_review,
            self.change_line_state,
            self.send_notification,
            self.get_delivery,
            self.record_outcome,
        ]
