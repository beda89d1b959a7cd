"""Errors as google.rpc.Status with one ErrorInfo (AIP-193) and, for bad input, a BadRequest."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "protective-suspension.carrier"


class ServiceError(Exception):
    """Raised by service code; the server interceptor turns it into a rich gRPC status."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str,
        violations: Iterable[tuple[str, str]] = (),
        metadata: dict[str, str] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.violations = list(violations)
        self.metadata = metadata or {}
        self.retry_after_s = retry_after_s

    def to_status(self) -> grpc.Status:
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata))
        status.details.append(info)
        if self.violations:
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in self.violations
                ]
            )
            detail = any_pb2.Any()
            detail.Pack(bad)
            status.details.append(detail)
        if self.retry_after_s is not None:
            retry = error_details_pb2.RetryInfo()
            retry.retry_delay.FromTimedelta(timedelta(seconds=max(0.0, self.retry_after_s)))
            detail = any_pb2.Any()
            detail.Pack(retry)
            status.details.append(detail)
        return rpc_status.to_status(status)


MAX_VIOLATIONS = 20  # so a BadRequest always fits the client's metadata limit


def invalid_argument(violations: list[tuple[str, str]]) -> ServiceError:
    """INVALID_ARGUMENT naming the bad fields: the first 20, and how many there were in all."""
    shown = violations[:MAX_VIOLATIONS]
    more = len(violations) - len(shown)
    fields = ", ".join(f for f, _ in shown) + (f" and {more} more" if more else "")
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"invalid fields: {fields}"[:1000],
        "INVALID_FIELD",
        shown,
        metadata={"violations": str(len(violations))},
    )


def unauthenticated(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, message, "UNKNOWN_PRINCIPAL")


def not_found(what: str, reason: str = "NOT_FOUND") -> ServiceError:
    return ServiceError(grpc.StatusCode.NOT_FOUND, f"{what} not found", reason)


def failed_precondition(message: str, reason: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.FAILED_PRECONDITION, message, reason)


def unavailable(dependency: str, cause: grpc.aio.AioRpcError | None = None, **metadata: str) -> ServiceError:
    detail = f" ({cause.code().name})" if cause is not None else ""
    return ServiceError(
        grpc.StatusCode.UNAVAILABLE,
        f"{dependency} is unavailable{detail}; retry later",
        "DEPENDENCY_UNAVAILABLE",
        metadata={"dependency": dependency, **metadata},
    )


def resource_exhausted(message: str, reason: str, retry_after_s: float, metadata: dict[str, str]) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, message, reason, metadata=metadata, retry_after_s=retry_after_s
    )


def permission_denied(message: str, reason: str, metadata: dict[str, str] | None = None) -> ServiceError:
    return ServiceError(grpc.StatusCode.PERMISSION_DENIED, message, reason, metadata=metadata)


def parse_details(err: grpc.aio.AioRpcError) -> tuple[error_details_pb2.ErrorInfo | None, list[tuple[str, str]]]:
    """Client side: the ErrorInfo and field violations carried by a failed call."""
    info = None
    violations: list[tuple[str, str]] = []
    for key, value in err.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations += [(v.field, v.description) for v in bad.field_violations]
    return info, violations
