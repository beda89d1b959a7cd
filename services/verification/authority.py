"""Orders from the police or the regulator: restore a line, or confirm fraud (a reviewer then decides whether the
line is terminated; any appeal waiting is moot)."""

from __future__ import annotations

from collections.abc import Callable

from carrier.verification.v1 import verification_pb2 as vpb
from contracts.case import AuthorityOrder, OrderKind, ReviewKind, ReviewOpened
from pscommon.errors import permission_denied
from pscommon.idempotency import Tx
from pscommon.identity import Principal
from services.verification import store
from services.verification.case_gateway import CaseGateway
from services.verification.policy import Policy
from services.verification.reviews import Reviews


class AuthorityOrders:
    def __init__(self, policy: Callable[[], Policy], case: CaseGateway, reviews: Reviews) -> None:
        self.policy = policy
        self.case = case
        self.reviews = reviews

    async def submit(
        self, tx: Tx, request_id: str, case_id: str, order: AuthorityOrder, note: str, by: Principal
    ) -> None:
        """Recorded with the principal that submitted it, which must be the authority it speaks for."""
        if by.role != order.authority:
            raise permission_denied(
                f"role {by.role!r} cannot give an order of the {order.authority}",
                "AUTHORITY_NOT_YOURS",
                {"authority": order.authority, "role": by.role},
            )
        case = await self.case.status(case_id)
        await store.record_order(tx.conn, request_id, case_id, order, note, by.name)
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
