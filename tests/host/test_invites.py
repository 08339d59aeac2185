"""One-time invite codes (rdesk/host/security/invites.py)."""

import pytest

from rdesk.host.security.invites import MAX_INVITES, InviteBook


def test_code_grants_its_role_once_until_expiry() -> None:
    book = InviteBook()
    code = book.create("view", 60, now=0)
    assert code.startswith("inv-") and len(code) == 23
    assert book.redeem(code.upper(), now=1) == "view"  # case-insensitive, as typed by people
    assert book.redeem(code, now=2) is None  # used
    late = book.create("control", 60, now=0)
    assert book.redeem(late, now=61) is None  # expired
    assert book.redeem("inv-aaaa-bbbb-cccc-dddd", now=0) is None


def test_bad_requests_and_bound() -> None:
    book = InviteBook()
    with pytest.raises(ValueError):
        book.create("admin", 60, now=0)
    with pytest.raises(ValueError):
        book.create("view", 0, now=0)
    codes = [book.create("view", 60, now=0) for _ in range(MAX_INVITES + 5)]
    assert len(book) == MAX_INVITES
    assert book.redeem(codes[0], now=1) is None  # the oldest were dropped
    assert book.redeem(codes[-1], now=1) == "view"
