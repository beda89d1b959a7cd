"""What the SMPP link makes of the SMSC's answers."""

from datetime import timedelta

import smpp34

from services.notify.receipts import encode_sms, parse_receipt
from services.notify.smpp_link import THROTTLED, nack_status, validity_period


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
