"""Verification's way to the case workflow: read its status, and tell it things only after our own commit.

A signal is written to the outbox (`case_signals`) in the transaction that records its cause (a passed check,
an appeal, a decision, an authority order); the relay sends it once that transaction has committed, so a case
never restores a line whose verification was not recorded, and a recorded one always reaches its case.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from contracts.case import FINAL_STAGES, QUERY_STATUS, CaseEvent, CaseStatus, signal_for
from pscommon.errors import ServiceError, failed_precondition, not_found, unavailable
from pscommon.idempotency import Tx
from pscommon.outbox import Relay
from services.verification import store

log = logging.getLogger(__name__)


class CaseGateway:
    def __init__(self, client: Client, pool: asyncpg.Pool) -> None:
        self.client = client
        self.relay = Relay(
            "case signals", pool, store.claim_signals, self._send, store.mark_signal_sent, store.release_signals
        )

    async def status(self, case_id: str) -> CaseStatus:
        """The case as it stands; NOT_FOUND when no case has this id, UNAVAILABLE when Temporal cannot answer."""
        try:
            status: CaseStatus = await self.client.get_workflow_handle(case_id).query(
                QUERY_STATUS, result_type=CaseStatus
            )
            return status
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise not_found("case", "CASE_NOT_FOUND") from err
            raise unavailable("case workflow service") from err

    async def tell(self, tx: Tx, case_id: str, event: CaseEvent, case: CaseStatus | None = None) -> None:
        """Queues the event's signal for the case in this transaction; it is sent after the commit. Refused with
        CASE_NOT_OPEN when the case has ended (`case`: its status, if the caller has just read it)."""
        if case is None:
            try:
                case = await self.status(case_id)
            except ServiceError as err:
                if err.reason != "CASE_NOT_FOUND":
                    raise
        if case is None or case.stage in FINAL_STAGES:
            raise failed_precondition("no open case with this case_id", "CASE_NOT_OPEN")
        payload = json.dumps(dataclasses.asdict(event))
        row_id = await store.enqueue_signal(tx.conn, case_id, signal_for(event), payload)
        tx.after_commit(lambda: self.relay.deliver_now([row_id]))

    async def _send(self, row: asyncpg.Record) -> None:
        try:
            await self.client.get_workflow_handle(row["case_id"]).signal(row["signal"], json.loads(row["payload"]))
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            # The case closed between our check and the commit: nobody is left to tell.
            log.warning("case %s closed before its %s signal could be sent", row["case_id"], row["signal"])
