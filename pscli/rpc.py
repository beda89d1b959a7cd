"""`psctl rpc SERVICE/METHOD JSON [--as PRINCIPAL]`: any RPC by hand, with a platform certificate.

The request is JSON in the proto's own mapping (field names as in the .proto, or lowerCamel); the method is found
in the generated descriptors, so nothing has to be installed or reflected. The answer is printed as JSON; a
refusal as its status code, message, ErrorInfo and field violations."""

from __future__ import annotations

import importlib
import json
import pathlib
import pkgutil
import sys
from dataclasses import dataclass

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

import carrier
from pscommon.config import Settings, settings
from pscommon.tls import TlsFiles

# Which address serves a proto package: our four services, and the simulated outside systems on one port.
OWN_SERVICES = ("scoring", "suspension", "notify", "verification")


@dataclass(frozen=True)
class Target:
    method: MethodDescriptor
    address: str

    @property
    def path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"


def services() -> list[ServiceDescriptor]:
    """Imports every generated module so the default pool holds every service of protos/."""
    found: list[ServiceDescriptor] = []
    for info in pkgutil.walk_packages(carrier.__path__, "carrier."):
        if info.name.endswith("_pb2"):
            found += list(importlib.import_module(info.name).DESCRIPTOR.services_by_name.values())
    return sorted(found, key=lambda s: s.full_name)


def resolve(name: str, cfg: Settings) -> Target:
    """`VerificationService/GetCaseStatus` or `carrier.verification.v1.VerificationService/GetCaseStatus`."""
    service_name, _, method_name = name.partition("/")
    if not method_name:
        raise LookupError(f"{name}: expected SERVICE/METHOD, e.g. VerificationService/GetCaseStatus")
    known = services()
    matches = [s for s in known if service_name in (s.full_name, s.name)]
    if not matches:
        raise LookupError(f"{service_name}: no such service; known: {', '.join(s.name for s in known)}")
    service = matches[0]
    method = service.methods_by_name.get(method_name)
    if method is None:
        raise LookupError(f"{service.name} has no method {method_name}; it has: {', '.join(service.methods_by_name)}")
    area = service.full_name.split(".")[1]
    address = getattr(cfg, f"{area}_addr") if area in OWN_SERVICES else cfg.simulators_addr
    return Target(method, address)


def _request_text(arg: str) -> str:
    if arg == "-":
        return sys.stdin.read()
    if arg.startswith("@"):
        return pathlib.Path(arg[1:]).read_text()
    return arg


def _message(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def describe_refusal(err: grpc.Call) -> list[str]:
    """The status code and message, then each detail: ErrorInfo, field violations, anything else as JSON."""
    lines = [f"{err.code().name}: {err.details()}"]
    for key, value in err.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        for detail in status_pb2.Status.FromString(value).details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                meta = ", ".join(f"{k}={v}" for k, v in sorted(info.metadata.items()))
                lines.append(f"  reason: {info.reason} (domain {info.domain})" + (f"; {meta}" if meta else ""))
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                lines += [f"  field {v.field}: {v.description}" for v in bad.field_violations]
            else:
                lines.append(f"  {detail.type_url}: {json_format.MessageToJson(detail, indent=None)}")
    return lines


def call(name: str, request_json: str, principal: str, timeout_s: float = 10.0) -> int:
    cfg = settings()
    try:
        target = resolve(name, cfg)
    except LookupError as err:
        print(f"psctl rpc: {err}", file=sys.stderr)
        return 2
    method = target.method
    if method.client_streaming:
        print(f"psctl rpc: {target.path} takes a stream of requests; psctl rpc calls unary methods", file=sys.stderr)
        return 2
    request_type, response_type = _message(method.input_type), _message(method.output_type)
    try:
        request = json_format.Parse(_request_text(request_json) or "{}", request_type())
    except (json_format.ParseError, json.JSONDecodeError, OSError) as err:
        print(f"psctl rpc: the request is not a {method.input_type.full_name}: {err}", file=sys.stderr)
        return 2
    tls = TlsFiles.of_principal(cfg, principal) if cfg.pki_dir else TlsFiles.from_settings(cfg)
    if not tls.cert.exists():
        print(f"psctl rpc: no certificate for {principal} at {tls.cert} (psctl pki issue ROLE ID)", file=sys.stderr)
        return 2
    return _invoke(target, request, response_type, tls, timeout_s)


def _invoke(target: Target, request: Message, response_type: type[Message], tls: TlsFiles, timeout_s: float) -> int:
    serialize, parse = (lambda m: m.SerializeToString()), response_type.FromString
    with grpc.secure_channel(target.address, tls.channel_credentials()) as ch:
        try:
            if target.method.server_streaming:
                for item in ch.unary_stream(target.path, serialize, parse)(request, timeout=timeout_s):
                    print(_json(item))
            else:
                print(_json(ch.unary_unary(target.path, serialize, parse)(request, timeout=timeout_s)))
        except grpc.RpcError as err:
            assert isinstance(err, grpc.Call)  # what a failed call raises
            print("\n".join(describe_refusal(err)))
            return 1
    return 0


def _json(msg: Message) -> str:
    return json_format.MessageToJson(msg, preserving_proto_field_name=True, ensure_ascii=False, indent=2)
