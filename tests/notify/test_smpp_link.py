"""What the SMPP link makes of the SMSC's answers, and that it keeps every receipt it took across a stop."""

import asyncio
from datetime import timedelta

import pytest
import smpp34

from services.notify import smpp_link, store
from services.notify.receipts import Receipt, encode_sms, parse_receipt
from services.notify.smpp_link import RECEIPT_QUEUE, THROTTLED, SmppLink, nack_status, validity_period
from tests.notify.conftest import eventually


def test_a_generic_nack_keeps_its_status_so_a_busy_smsc_is_retried_not_crashed_on():
    status = nack_status(smpp34.SmppError("ESME_RSYSERR (0x00000008)"))
    assert status == smpp34.ESME_RSYSERR
    assert nack_status(smpp34.SmppError("ESME_RTHROTTLED (0x00000058)")) in THROTTLED
    assert nack_status(smpp34.SmppError("session closed")) == smpp34.ESME_RUNKNOWNERR


def test_receipt_text_gives_id_stat_and_network_error():
    r = parse_receipt(
        b"id:abc123 sub:001 dlvrd:000 submit date:2611221000 done date:2611221001 stat:UNDELIV err:001 text:"
    )
    assert r is not None and (r.message_id, r.stat, r.err, r.error_class) == ("abc123", "UNDELIV", "001", "absent")
    assert parse_receipt(b"not a receipt") is None


def test_chinese_goes_as_ucs2_and_validity_is_relative():
    assert encode_sms("核验") == (0x08, "核验".encode("utf-16-be"))
    assert encode_sms("verify") == (0x00, b"verify")
    assert validity_period(timedelta(hours=24, minutes=5)) == "000001000500000R"


@pytest.mark.parametrize("queue", [RECEIPT_QUEUE, 4])  # 4: most receipts still in the smpp34 core at stop
async def test_every_receipt_taken_before_stop_is_stored_when_stop_returns(stack, notify_pool, monkeypatch, queue):
    """SIGTERM with the database lagging: what the session acknowledged is in memory only (the SMSC will not
    send it again), so stop unbinds, reads what the core took and stores it all before it returns."""
    monkeypatch.setattr(smpp_link, "RECEIPT_QUEUE", queue)
    database_answers = asyncio.Event()

    async def slow_store(batch: list[Receipt]) -> None:
        await database_answers.wait()
        await store.record_receipts(notify_pool, batch)

    cfg = stack.cfg
    link = SmppLink(cfg.smsc_host, cfg.smsc_port, cfg.smsc_system_id, cfg.smsc_password, slow_store, drain_s=10)
    await link.start()
    ids = [await link.submit(f"1390000{i:04d}", "your line will be restricted") for i in range(20)]
    await eventually(lambda: asyncio.sleep(0, link.backlog() == min(20, queue + 1)))
    await asyncio.sleep(0.3)  # the SMSC sends each receipt 50 ms after its submit: by now all were acknowledged
    stopping = asyncio.create_task(link.stop())
    await asyncio.sleep(0.2)
    database_answers.set()
    await stopping
    stored = {r["smsc_message_id"] for r in await notify_pool.fetch("SELECT smsc_message_id FROM receipts")}
    assert stored == set(ids)
    assert link.backlog() == 0
