"""Shared test helpers: talking to the in-process stack like any other carrier system would."""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import grpc

from carrier.registry.v1 import registry_pb2, registry_pb2_grpc
from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from carrier.verification.v1 import verification_pb2, verification_pb2_grpc
from contracts import ACCESS_TABLE
from pscommon import access
from pscommon.channels import channel
from pscommon.config import Settings
from pscommon.pki import CALLERS, SERVERS
from pscommon.tls import TlsFiles

TABLE = access.load(ACCESS_TABLE)
# One local principal per role (the first the local PKI issues).
PRINCIPAL_OF_ROLE = {role: name for name, role in reversed([*SERVERS.items(), *CALLERS.items()])}


def rid() -> str:
    return uuid.uuid4().hex


def tls_as(cfg: Settings, principal: str) -> TlsFiles:
    """The certificate of `principal` (reviewer-1, mediation, ops ...) from the tests' CA."""
    return TlsFiles.in_folder(pathlib.Path(cfg.pki_dir), principal)


def connect(cfg: Settings, service: str, principal: str) -> grpc.aio.Channel:
    """A channel to `service` (scoring, suspension, notify, verification, simulators) calling as `principal`."""
    return channel(getattr(cfg, f"{service}_addr"), tls_as(cfg, principal))


def allowed_principal(method: str) -> str:
    """A local principal the access table lets call `method` ("package.Service/Method")."""
    roles = sorted(TABLE.roles_for(method))
    assert roles, f"nobody may call {method}"
    return PRINCIPAL_OF_ROLE[roles[0]]


async def register_line(
    cfg,
    msisdn: str,
    province: str,
    holder_ref: str,
    opened_at: str = "2026-10-01",
    enterprise: str = "",
    *,
    email: str = "",
    push_token: str = "",
    alternate_contact: str = "",
    service_password: str = "",
    recent_contacts: tuple[str, ...] = (),
) -> None:
    await registry_pb2_grpc.RegistryServiceStub(connect(cfg, "simulators", "ops")).RegisterSubscriber(
        registry_pb2.RegisterSubscriberRequest(
            request_id=rid(),
            subscriber=registry_pb2.Subscriber(
                msisdn=msisdn,
                province=province,
                holder_ref=holder_ref,
                opened_at=opened_at,
                language="zh",
                email=email,
                push_token=push_token,
                alternate_contact=alternate_contact,
                service_password=service_password,
                recent_contacts=recent_contacts,
            ),
        )
    )
    await scoring_pb2_grpc.ScoringServiceStub(connect(cfg, "scoring", "mediation")).UpsertSubscriber(
        scoring_pb2.UpsertSubscriberRequest(
            request_id=rid(),
            msisdn=msisdn,
            home_province=province,
            opened_at=opened_at,
            enterprise=enterprise,
            language="zh",
        )
    )


def scam_burst(msisdn: str, start: datetime, calls: int = 20) -> list[scoring_pb2.Cdr]:
    """Calls every two minutes to distinct numbers in another province, half unanswered."""
    cdrs = []
    for i in range(calls):
        c = scoring_pb2.Cdr(
            msisdn=msisdn,
            peer=f"137{i:08d}",
            peer_province="51",
            direction=scoring_pb2.DIRECTION_OUT,
            service=scoring_pb2.SERVICE_KIND_VOICE,
            duration_s=0 if i % 2 else 25,
            cell_id="460-00-22817-10391",
            roaming=scoring_pb2.ROAMING_NONE,
            imei="356938035643809",
        )
        c.start.FromDatetime(start + timedelta(minutes=2 * i))
        cdrs.append(c)
    return cdrs


async def ingest(cfg, cdrs: list[scoring_pb2.Cdr], batch: int = 50) -> scoring_pb2.IngestCdrsResponse:
    async def batches():
        for i in range(0, len(cdrs), batch):
            yield scoring_pb2.IngestCdrsRequest(request_id=rid(), cdrs=cdrs[i : i + batch])

    return await scoring_pb2_grpc.ScoringServiceStub(connect(cfg, "scoring", "mediation")).IngestCdrs(batches())


async def open_case(stack, msisdn: str, risk_level: str, action: str, seq: int = 1, province: str = "44") -> str:
    """Starts a case for a registered line as scoring would when it crosses a threshold; returns its id."""
    from contracts.case import WORKFLOW_NAME, Assessment, CaseInput, ReasonText
    from pscommon.identity import line_hash, mask

    h = line_hash(msisdn, stack.cfg.line_hash_key)
    case_id = f"case-{h}-{seq}"
    reasons = [
        ReasonText(
            "CALL_BURST_NEW_PEERS",
            "1小时内向23个从未联系过的号码拨出电话",
            "23 calls in 1 hour to numbers never called before",
            0.6,
        )
    ]
    assessment = Assessment(risk_level, action, 0.8, reasons, "2026-11-20T09:00:00+00:00")
    case = CaseInput(msisdn, h, mask(msisdn), province, "zh", assessment)
    await stack.client.start_workflow(WORKFLOW_NAME, case, id=case_id, task_queue=stack.cfg.task_queue)
    return case_id


class AsAllowed:
    """A stub of `service` whose every call goes out as a principal the access table lets call that method
    (tests of behaviour behind the trust boundary; the boundary itself is tested in tests/security)."""

    def __init__(self, cfg: Settings, service: str, stub_class: type, full_name: str) -> None:
        self.cfg, self.service, self.stub_class, self.full_name = cfg, service, stub_class, full_name

    def __getattr__(self, method: str) -> object:
        principal = allowed_principal(f"{self.full_name}/{method}")
        return getattr(self.stub_class(connect(self.cfg, self.service, principal)), method)


async def reach(stack, case_id: str, stage: str):
    """Returns the case's status once it has entered `stage` (the workflow's wait_for_stage update), following
    the case when it renews its history."""
    from contracts.case import CASE_RENEWED, UPDATE_WAIT_STAGE, CaseStatus
    from pscommon import temporal

    return await temporal.update_following_runs(
        stack.client, case_id, UPDATE_WAIT_STAGE, stage, CaseStatus, CASE_RENEWED
    )


async def appeal_in_review(
    stack, msisdn: str, explanation: str = "I deliver parcels before the holiday", refs: Sequence[str] = ()
) -> tuple[str, str]:
    """A restricted line's case with the holder's appeal waiting for a reviewer: (case id, review id)."""
    await register_line(stack.cfg, msisdn, "44", f"holder-44-{msisdn[-4:]}")
    case_id = await open_case(stack, msisdn, "high", "restrict")
    await stack.env.sleep(timedelta(hours=25))
    await reach(stack, case_id, "restricted")
    app = verification_pb2_grpc.VerificationServiceStub(connect(stack.cfg, "verification", "app"))
    appeal = await app.SubmitAppeal(
        verification_pb2.SubmitAppealRequest(
            request_id=rid(),
            case_id=case_id,
            msisdn=msisdn,
            caller_province="44",
            explanation=explanation,
            evidence_refs=list(refs) or ["upload-courier-badge"],
        )
    )
    await reach(stack, case_id, "in_review")
    return case_id, appeal.review.review_id
