"""The reviewer's session cookie: signed, expiring, and nothing else accepted."""

from __future__ import annotations

from services.portal.reviewer.session import LIFETIME_S, Sessions


def test_a_session_survives_its_cookie_until_it_expires() -> None:
    sessions = Sessions(b"k" * 32)
    s = sessions.new("reviewer-1", now=1_000_000)
    cookie = sessions.dump(s)
    assert sessions.load(cookie, now=1_000_000 + LIFETIME_S - 1) == s
    assert sessions.load(cookie, now=1_000_000 + LIFETIME_S) is None


def test_a_forged_or_foreign_cookie_is_no_session() -> None:
    sessions, other = Sessions(b"k" * 32), Sessions(b"x" * 32)
    cookie = sessions.dump(sessions.new("reviewer-1"))
    body, sig = cookie.rsplit(".", 1)
    assert sessions.load(other.dump(other.new("reviewer-1"))) is None
    assert sessions.load(f"{body}x.{sig}") is None
    assert sessions.load("") is None and sessions.load("no-dot") is None
    forged_body = sessions.dump(sessions.new("reviewer-2")).rsplit(".", 1)[0]
    assert sessions.load(f"{forged_body}.{sig}") is None
