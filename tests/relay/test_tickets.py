"""The raw lane's pure parts: the preamble and status codec, and the one-time tickets."""

from __future__ import annotations

import pytest

from rdesk.protocol.rawlane import (
    MAX_REASON,
    PREAMBLE_BYTES,
    REFUSED,
    RawLaneError,
    parse_preamble,
    parse_refusal,
    preamble,
    refusal,
)
from rdesk.relay.tickets import HOST, VIEWER, Tickets


def test_preamble_round_trip_and_refusals() -> None:
    ticket = bytes(range(32))
    data = preamble(ticket)
    assert len(data) == PREAMBLE_BYTES and parse_preamble(data) == ticket
    for bad, why in ((data[:-1], "a preamble is 41 bytes, not 40"),
                     (b"x" + data[1:], "not a raw lane preamble"),
                     (data[:8] + b"\x02" + data[9:], "raw lane version 2 is not supported")):
        with pytest.raises(RawLaneError, match=why):
            parse_preamble(bad)
    with pytest.raises(RawLaneError):
        preamble(b"short")


def test_refusal_is_one_bounded_line() -> None:
    line = refusal("too\nmany   sockets " + "x" * 500)
    assert line.startswith(REFUSED) and line.endswith(b"\n") and line.count(b"\n") == 1
    assert len(line) == 1 + MAX_REASON + 1
    assert parse_refusal(line[1:]).startswith("too many sockets x")
    assert parse_refusal(b"\x1b[31mred\n") == "?[31mred"
    assert parse_refusal(b"") == "refused"


def test_a_ticket_is_good_once_within_its_lifetime() -> None:
    tickets = Tickets(lifetime=10, capacity=3)
    host, viewer = tickets.issue("s1", HOST, 0), tickets.issue("s1", VIEWER, 0)
    assert host != viewer and len(host) == 32
    found = tickets.take(host, 9.9)
    assert found is not None and (found.session, found.end) == ("s1", HOST)
    assert tickets.take(host, 1) is None  # used
    assert tickets.take(viewer, 10) is None  # lapsed
    late = tickets.issue("s2", VIEWER, 0)
    tickets.forget("s2")
    assert tickets.take(late, 1) is None and len(tickets) == 0
    many = [tickets.issue(f"s{i}", HOST, 0) for i in range(5)]  # bounded: the oldest go
    assert len(tickets) == 3 and tickets.take(many[0], 1) is None
    assert tickets.take(many[4], 1) is not None
    tickets.sweep(11)
    assert len(tickets) == 0
