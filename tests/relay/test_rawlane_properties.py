"""Properties of the raw lane's wire formats: the 41-byte preamble, the relay's status answer,
the one-time tickets and the ``?lanes=`` query.

Each parser, fed anything, either gives back what was encoded or refuses with its documented
error (:class:`RawLaneError`, one line) — never another exception; the lanes query never
raises at all. The tickets are checked against a model under any sequence of issues, takes,
sweeps, forgets and clock steps.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from rdesk.protocol.rawlane import (
    GO,
    MAGIC,
    MAX_REASON,
    PREAMBLE_BYTES,
    RAW_VERSION,
    REFUSED,
    TICKET_BYTES,
    RawLaneError,
    check_status,
    parse_preamble,
    parse_refusal,
    preamble,
    refusal,
)
from rdesk.relay.conn import parse_lanes
from rdesk.relay.tickets import HOST, VIEWER, Ticket, Tickets

tickets = st.binary(min_size=TICKET_BYTES, max_size=TICKET_BYTES)


def _one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text and "\n" not in text and len(text) < 200, text


# --- the preamble ---------------------------------------------------------------------------


@given(tickets)
def test_a_preamble_carries_its_ticket_and_nothing_else(ticket: bytes) -> None:
    data = preamble(ticket)
    assert len(data) == PREAMBLE_BYTES == 41
    assert data[:8] == MAGIC and data[8] == RAW_VERSION
    assert parse_preamble(data) == ticket


@settings(max_examples=500)
@given(st.one_of(st.binary(max_size=200),
                 tickets.map(lambda t: MAGIC + bytes([RAW_VERSION]) + t),
                 st.binary(max_size=40).map(lambda b: MAGIC + b),
                 st.tuples(st.integers(0, 255), tickets).map(
                     lambda vt: MAGIC + bytes([vt[0]]) + vt[1])))
def test_any_bytes_are_a_preamble_or_refused_in_one_line(data: bytes) -> None:
    try:
        ticket = parse_preamble(data)
    except RawLaneError as exc:
        _one_line(exc)
        assert (len(data) != PREAMBLE_BYTES or not data.startswith(MAGIC)
                or data[8] != RAW_VERSION)
    else:
        assert preamble(ticket) == data


@given(tickets, st.data())
def test_a_truncated_or_oversized_preamble_is_refused_by_its_size(
        ticket: bytes, data: st.DataObject) -> None:
    whole = preamble(ticket)
    cut = data.draw(st.integers(0, PREAMBLE_BYTES - 1))
    extra = data.draw(st.binary(min_size=1, max_size=64))
    for bad in (whole[:cut], whole + extra):
        with pytest.raises(RawLaneError, match=f"a preamble is 41 bytes, not {len(bad)}$"):
            parse_preamble(bad)


@given(st.binary(max_size=100).filter(lambda b: len(b) != TICKET_BYTES))
def test_only_a_ticket_of_its_size_makes_a_preamble(ticket: bytes) -> None:
    with pytest.raises(RawLaneError, match=f"a ticket is 32 bytes, not {len(ticket)}$"):
        preamble(ticket)


# --- the status answer ----------------------------------------------------------------------


@settings(max_examples=300)
@given(st.text(max_size=400))
def test_a_refusal_is_one_bounded_line_whatever_the_reason(reason: str) -> None:
    line = refusal(reason)
    assert line[:1] == REFUSED and line.endswith(b"\n") and line.count(b"\n") == 1
    assert len(line) <= 1 + MAX_REASON + 1
    shown = parse_refusal(line[1:])
    assert shown and shown.isprintable() and len(shown) <= MAX_REASON


@given(st.text(st.characters(categories=["L", "N", "P"]), min_size=1, max_size=40))
def test_a_short_printable_reason_survives_the_round_trip(reason: str) -> None:
    assert parse_refusal(refusal(reason)[1:]) == reason


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_any_line_after_refused_is_shown_safely(line: bytes) -> None:
    shown = parse_refusal(line)
    assert shown and shown.isprintable() and "\n" not in shown and len(shown) <= MAX_REASON


@given(st.binary(max_size=1), st.binary(max_size=200))
def test_a_status_is_go_or_a_one_line_error(status: bytes, line: bytes) -> None:
    try:
        check_status(status, line)
    except RawLaneError as exc:
        _one_line(exc)
        assert status != GO
        if status == REFUSED:
            assert str(exc) == f"the relay refused it: {parse_refusal(line)}"
    else:
        assert status == GO


def test_status_errors_say_which() -> None:
    for status, why in ((b"", "the relay closed the connection"),
                        (b"\x16", "not a raw lane status: byte 0x16"),
                        (REFUSED, "the relay refused it: busy")):
        with pytest.raises(RawLaneError, match=f"^{why}$"):
            check_status(status, b"busy\n")


# --- the lanes query ------------------------------------------------------------------------


@settings(max_examples=500)
@given(st.text(max_size=600))
def test_any_path_names_a_subset_of_the_lanes(path: str) -> None:
    assert parse_lanes(path) <= {"raw", "ws"}
    assert parse_lanes("/connect?" + path) <= {"raw", "ws"}


@given(st.lists(st.sampled_from(["raw", "ws", "tcp", "", "RAW", "raw "]), max_size=6),
       st.sampled_from(["/connect", "/host"]))
def test_the_lanes_asked_for_are_the_known_names_given(names: list[str], path: str) -> None:
    assert parse_lanes(f"{path}?lanes={','.join(names)}") == {"raw", "ws"} & set(names)


def test_the_lanes_query_as_sent() -> None:
    assert parse_lanes("/connect?lanes=raw,ws") == {"raw", "ws"}
    assert parse_lanes("/host?lanes=raw") == {"raw"}
    assert parse_lanes("/connect") == parse_lanes("/connect?lanes=") == frozenset()
    assert parse_lanes("/connect?lanes=raw&lanes=ws") == {"raw", "ws"}
    # Bounded: a name past the 8th, or past the query's first 256 characters, is not read.
    assert parse_lanes("/connect?lanes=" + "x," * 8 + "raw") == frozenset()
    assert parse_lanes("/connect?pad=" + "x" * 300 + "&lanes=raw") == frozenset()


# --- the tickets, against a model -----------------------------------------------------------


@dataclasses.dataclass
class _Issued:
    session: str
    end: str
    expires: float


class TicketsMachine(RuleBasedStateMachine):
    """:class:`Tickets` against a dictionary: single use, lifetime, capacity (oldest first),
    forget by session, sweep; a forged ticket names nothing."""

    issued = Bundle("issued")

    @initialize(capacity=st.integers(1, 6), lifetime=st.floats(0.5, 20))
    def start(self, capacity: int, lifetime: float) -> None:
        self.tickets = Tickets(lifetime=lifetime, capacity=capacity)
        self.model: dict[bytes, _Issued] = {}  # insertion order: oldest first
        self.now = 1000.0

    @rule(target=issued, session=st.sampled_from(["s1", "s2", "s3"]),
          end=st.sampled_from([HOST, VIEWER]))
    def issue(self, session: str, end: str) -> bytes:
        ticket = self.tickets.issue(session, end, self.now)
        assert len(ticket) == TICKET_BYTES and ticket not in self.model
        self.model[ticket] = _Issued(session, end, self.now + self.tickets.lifetime)
        while len(self.model) > self.tickets.capacity:
            del self.model[next(iter(self.model))]
        return ticket

    @rule(ticket=issued)
    def take(self, ticket: bytes) -> None:
        want = self.model.pop(ticket, None)
        got = self.tickets.take(ticket, self.now)
        if want is None or self.now >= want.expires:
            assert got is None
        else:
            assert got == Ticket(want.session, want.end, want.expires)
        assert self.tickets.take(ticket, self.now) is None  # never twice

    @rule(ticket=tickets)
    def forged(self, ticket: bytes) -> None:
        if ticket not in self.model:
            assert self.tickets.take(ticket, self.now) is None

    @rule(step=st.floats(0, 30))
    def wait(self, step: float) -> None:
        self.now += step

    @rule()
    def sweep(self) -> None:
        self.tickets.sweep(self.now)
        self.model = {t: i for t, i in self.model.items() if self.now < i.expires}

    @rule(session=st.sampled_from(["s1", "s2", "s3"]))
    def forget(self, session: str) -> None:
        self.tickets.forget(session)
        self.model = {t: i for t, i in self.model.items() if i.session != session}

    @invariant()
    def bounded(self) -> None:
        assert len(self.tickets) == len(self.model) <= self.tickets.capacity


TestTickets = TicketsMachine.TestCase
TestTickets.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
