"""Orders from the police or the regulator: restore a line, or confirm fraud (a reviewer then decides whether the
line is terminated; any appeal waiting is moot)."""

from __future__ import annotations

from collections.abc import Callable

from carrier.verification.v1 import verification_pb2 as vpb
from contracts.case import AuthorityOrder, OrderKind, ReviewKind, ReviewOpened
from pscommon.idempotency import Tx
from services.verification import store
from services.verification.case_gateway import CaseGateway
from services.verification.policy import Policy
from services.verification.reviews import Reviews


class AuthorityOrders:
    def __init__(self, policy: Callable[[], Policy], case: CaseGateway, reviews: Reviews) -> None:
        self.policy = policy
        self.case = case
        self.reviews = reviews

    async def submit(self, tx: Tx, case_id: str, order: AuthorityOrder) -> None:
        case = await self.case.status(case_id)
        await self.case.tell(tx, case_id, order, case)
        if order.order != OrderKind.CONFIRM_FRAUD:
            return
        waiting = await store.waiting_review(tx.conn, case_id)
        if waiting is not None:
            await store.update_review(
                tx.conn,
                waiting["review_id"],
                status=vpb.REVIEW_STATUS_REJECTED,
                decision_note=f"superseded: fraud confirmed by the {order.authority}",
            )
        p = self.policy()
        row = await self.reviews.open(tx, case_id, case, ReviewKind.TERMINATION, p)
        await self.case.tell(
            tx, case_id, ReviewOpened(str(row["review_id"]), ReviewKind.TERMINATION, p.review_sla_s), case
        )
