"""Signed link tokens: bound to the case, short, expiring, refused when changed, rotated by key id."""

from __future__ import annotations

import base64

import pytest

from pscommon import links
from pscommon.identity import line_hash
from tests.portal.conftest import LINK_KEYS, signer

CASE = f"case-{line_hash('19880000001', 'k')}-3"


def test_a_token_names_the_case_and_language_only_and_is_short():
    token = signer().sign(CASE, "en", now=1_800_000_000)
    got = signer().verify(token, now=1_800_000_000)
    assert got == links.Link(CASE, "en", 1_800_000_000 + 3600)
    assert len(token) <= 48 and "19880000001" not in token and CASE not in token


def test_any_changed_byte_is_refused_as_tampered():
    token = signer().sign(CASE, "zh", now=1_800_000_000)
    kid, body = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(body + "=="))
    for i in range(len(raw)):
        forged = bytearray(raw)
        forged[i] ^= 0x01
        b64 = base64.urlsafe_b64encode(bytes(forged)).decode().rstrip("=")
        with pytest.raises(links.LinkError) as err:
            signer().verify(f"{kid}.{b64}", now=1_800_000_000)
        assert err.value.reason == "tampered"


def test_expired_unknown_key_and_malformed_tokens_are_refused():
    token = signer(ttl_s=60).sign(CASE, "zh", now=1_800_000_000)
    with pytest.raises(links.LinkError, match="expired"):
        signer().verify(token, now=1_800_000_061)
    with pytest.raises(links.LinkError, match="unknown_key"):
        signer().verify("zz" + token[2:], now=1_800_000_000)
    for bad in ("", "p1", "p1.", "p1.!!!!", "p1." + "A" * 100, "no dot here"):
        with pytest.raises(links.LinkError, match="malformed"):
            signer().verify(bad)


def test_rotation_old_links_stay_valid_while_their_key_is_listed():
    old = signer(active="p0").sign(CASE, "zh")
    assert signer(active="p1").verify(old).case_id == CASE
    without_old = links.LinkSigner({"p1": LINK_KEYS["p1"]}, "p1")
    with pytest.raises(links.LinkError, match="unknown_key"):
        without_old.verify(old)


def test_only_case_ids_are_signed():
    with pytest.raises(ValueError):
        signer().sign("19880000001", "zh")
