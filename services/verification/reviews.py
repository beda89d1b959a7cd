"""The manual review queue: appeals, restores the policy wants approved, terminations after confirmed fraud.

Opening, asking for more, claiming, deciding and escalating a review; who may do what is `review_rules`. The
holder's own words are sealed evidence, opened only for the reviewer who claimed the review (each opening recorded).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from carrier.verification.v1 import verification_pb2 as vpb
from contracts.case import CaseStatus, ReviewDecided, ReviewKind, ReviewOpened, case_line_hash
from contracts.pb import DECISION_OF, REVIEW_KIND_OF, REVIEW_KIND_PB
from pscommon.codec import Sealer
from pscommon.db import Conn
from pscommon.errors import failed_precondition, invalid_argument, not_found, permission_denied
from pscommon.idempotency import Tx
from services.verification import review_rules, store
from services.verification.case_gateway import CaseGateway
from services.verification.policy import Policy, documents_asked

log = logging.getLogger(__name__)


class Reviews:
    def __init__(self, policy: Callable[[], Policy], case: CaseGateway, sealer: Sealer) -> None:
        self.policy = policy
        self.case = case
        self.sealer = sealer

    async def open(
        self, tx: Tx, case_id: str, case: CaseStatus, kind: ReviewKind, p: Policy, evidence_count: int = 0
    ) -> asyncpg.Record:
        """Queues a review of the case (one waiting at a time); the caller tells the case."""
        if await store.waiting_review(tx.conn, case_id) is not None:
            raise failed_precondition("a review of this case is already waiting for a decision", "REVIEW_WAITING")
        return await store.open_review(
            tx.conn,
            review_id=uuid.uuid4(),
            kind=REVIEW_KIND_PB[kind],
            status=vpb.REVIEW_STATUS_OPEN,
            case_id=case_id,
            line_hash=case_line_hash(case_id),
            masked_msisdn=case.masked_msisdn,
            home_province=case.home_province,
            evidence_count=evidence_count,
            due_at=datetime.now(UTC) + timedelta(seconds=p.review_sla_s),
        )

    async def appeal(
        self, tx: Tx, case_id: str, explanation: str, evidence_refs: Sequence[str], review_id: str
    ) -> asyncpg.Record:
        """A new appeal, or (with `review_id`) what a reviewer asked for: the review waits for a decision again."""
        p = self.policy()
        case = await self.case.status(case_id)
        if review_id:
            row = await store.review(tx.conn, uuid.UUID(review_id), lock=True)
            if row is None or row["case_id"] != case_id:
                raise not_found("review of this case", "REVIEW_NOT_FOUND")
            if row["status"] != vpb.REVIEW_STATUS_MORE_REQUESTED:
                raise failed_precondition("the reviewer has not asked for more on this review", "NOTHING_ASKED")
            row = await store.update_review(
                tx.conn,
                row["review_id"],
                status=vpb.REVIEW_STATUS_CLAIMED if row["claimed_by"] else vpb.REVIEW_STATUS_OPEN,
                due_at=datetime.now(UTC) + timedelta(seconds=p.review_sla_s),
                evidence_count=row["evidence_count"] + len(evidence_refs),
                escalated=False,
            )
        else:
            row = await self.open(tx, case_id, case, ReviewKind.APPEAL, p, len(evidence_refs))
        items = [("explanation", explanation)] + [("evidence_ref", r) for r in evidence_refs]
        await store.seal_evidence(tx.conn, self.sealer, row["review_id"], items, p.evidence_retention_s)
        opened = ReviewOpened(str(row["review_id"]), REVIEW_KIND_OF[row["kind"]], p.review_sla_s)
        await self.case.tell(tx, case_id, opened, case)
        return row

    async def claim(self, tx: Tx, review_id: str, reviewer: str) -> asyncpg.Record:
        row = await self._locked(tx, review_id)
        try:
            review_rules.check_claim(row["status"], row["claimed_by"], reviewer, row["first_approved_by"])
        except review_rules.ReviewRefused as refused:
            if refused.reason == "FOUR_EYES":
                raise permission_denied(str(refused), refused.reason) from refused
            raise failed_precondition(str(refused), refused.reason) from refused
        return await store.update_review(
            tx.conn, row["review_id"], status=vpb.REVIEW_STATUS_CLAIMED, claimed_by=reviewer
        )

    async def decide(
        self, tx: Tx, review_id: str, reviewer: str, decision: vpb.Decision.ValueType, note: str, more_requested: str
    ) -> asyncpg.Record:
        row = await self._locked(tx, review_id)
        try:
            review_rules.check_decision(row["status"], row["claimed_by"], reviewer, row["kind"], decision)
        except review_rules.ReviewRefused as refused:
            if refused.reason == "REVIEW_CLAIMED_BY_ANOTHER":
                raise permission_denied(str(refused), refused.reason) from refused
            raise failed_precondition(str(refused), refused.reason) from refused
        asked = ""
        if decision == vpb.DECISION_ASK_FOR_MORE:
            wording = documents_asked(self.policy(), more_requested)
            if wording is None:
                known = ", ".join(sorted(self.policy().documents))
                raise invalid_argument([("more_requested", f"give codes of the policy's documents: {known}")])
            asked = f"{wording[0]} / {wording[1]}"
        first = row["first_approved_by"]
        status = review_rules.status_after(decision, row["kind"], first)
        if status == vpb.REVIEW_STATUS_SECOND_APPROVAL:
            # Four eyes: the first approval of a termination goes back to the queue for another reviewer.
            return await store.update_review(
                tx.conn, row["review_id"], status=status, first_approved_by=reviewer, claimed_by="", decision_note=note
            )
        row = await store.update_review(
            tx.conn,
            row["review_id"],
            status=status,
            decision=decision,
            decision_note=note,
            more_requested=more_requested,
            decided_at=datetime.now(UTC),
        )
        decided = ReviewDecided(
            review_id=str(row["review_id"]),
            kind=REVIEW_KIND_OF[row["kind"]],
            decision=DECISION_OF[decision],
            reviewer_id=f"{first}+{reviewer}" if first else reviewer,
            note="",  # reviewers' notes stay with the reviews; the case and the holder never carry them
            more_requested=asked,
        )
        await self.case.tell(tx, row["case_id"], decided)
        return row

    async def escalate(self, tx: Tx, review_id: str) -> asyncpg.Record:
        row = await self._locked(tx, review_id)
        if row["status"] in review_rules.WAITING:
            row = await store.update_review(tx.conn, row["review_id"], escalated=True)
            log.warning("review %s escalated: its SLA ran out", row["review_id"])
        return row

    async def get(self, conn: Conn | asyncpg.Pool, review_id: str) -> asyncpg.Record:
        """A review whatever its status; its sealed evidence stays sealed (that is `evidence`)."""
        row = await store.review(conn, uuid.UUID(review_id))
        if row is None:
            raise not_found("review", "REVIEW_NOT_FOUND")
        return row

    async def evidence(self, conn: Conn, review_id: str, reviewer: str) -> tuple[asyncpg.Record, str, list[str]]:
        """The claimed review with its explanation and evidence references, decrypted; the opening is recorded
        (call inside a transaction: the record and the reading stand or fall together)."""
        row = await store.review(conn, uuid.UUID(review_id), lock=True)
        if row is None:
            raise not_found("review", "REVIEW_NOT_FOUND")
        try:
            review_rules.check_evidence_view(row["status"], row["claimed_by"], reviewer)
        except review_rules.ReviewRefused as refused:
            raise permission_denied(str(refused), refused.reason) from refused
        await store.record_evidence_view(conn, row["review_id"], reviewer)
        owner = row["review_id"]
        texts = await store.open_evidence(conn, self.sealer, [owner], "explanation")
        refs = await store.open_evidence(conn, self.sealer, [owner], "evidence_ref")
        return row, "\n\n".join(texts.get(owner, [])), refs.get(owner, [])

    async def _locked(self, tx: Tx, review_id: str) -> asyncpg.Record:
        row = await store.review(tx.conn, uuid.UUID(review_id), lock=True)
        if row is None:
            raise not_found("review", "REVIEW_NOT_FOUND")
        return row
