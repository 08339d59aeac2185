"""atheris harness: the raw lane's wire formats and tickets under any input.

Run: ``python tests/relay/fuzz_rawlane.py -max_total_time=60`` (pip install -e .[fuzz]).
The preamble parser must give back a ticket that re-encodes to its input or raise
:class:`RawLaneError`; the status check must pass only ``GO`` and otherwise raise
:class:`RawLaneError` with one line; a refusal built from any reason is one bounded line; the
lanes query never raises and names only ``raw`` and ``ws``; :class:`Tickets` driven by fuzzed
operations at fuzzed times stays bounded, gives a ticket once, and nothing for a forged one.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from rdesk.protocol.rawlane import (
        GO,
        MAX_REASON,
        PREAMBLE_BYTES,
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
    from rdesk.relay.tickets import Tickets


def _one_line(exc: RawLaneError) -> None:
    assert str(exc) and "\n" not in str(exc), repr(exc)


def _wire(fdp: atheris.FuzzedDataProvider) -> None:
    data = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 2 * PREAMBLE_BYTES))
    if fdp.ConsumeBool():  # most random bytes fail at the magic: start from a good one
        data = preamble(data[:TICKET_BYTES].ljust(TICKET_BYTES, b"\0"))[
            :fdp.ConsumeIntInRange(0, PREAMBLE_BYTES + 2)] + data[TICKET_BYTES:]
    try:
        assert preamble(parse_preamble(data)) == data
    except RawLaneError as exc:
        _one_line(exc)
    status, line = fdp.ConsumeBytes(1), fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300))
    try:
        check_status(status, line)
        assert status == GO
    except RawLaneError as exc:
        _one_line(exc)
        assert status != GO
    shown = parse_refusal(line)
    assert shown.isprintable() and 0 < len(shown) <= MAX_REASON
    made = refusal(fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 300)))
    assert made[:1] == REFUSED and made.count(b"\n") == 1 and len(made) <= MAX_REASON + 2
    assert parse_lanes(fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 400))) <= {"raw", "ws"}


def _tickets(fdp: atheris.FuzzedDataProvider) -> None:
    store = Tickets(lifetime=fdp.ConsumeIntInRange(1, 20), capacity=fdp.ConsumeIntInRange(1, 8))
    now, live = 0.0, []
    for _ in range(fdp.ConsumeIntInRange(0, 40)):
        now += fdp.ConsumeIntInRange(0, 5000) / 1000
        op = fdp.ConsumeIntInRange(0, 4)
        if op == 0:
            live.append(store.issue(f"s{fdp.ConsumeIntInRange(0, 3)}", "host", now))
        elif op == 1 and live:
            ticket = live.pop(fdp.ConsumeIntInRange(0, len(live) - 1))
            store.take(ticket, now)
            assert store.take(ticket, now) is None, "a ticket was good twice"
        elif op == 2:
            forged = fdp.ConsumeBytes(TICKET_BYTES)
            if forged not in live:
                assert store.take(forged, now) is None, "a forged ticket named something"
        elif op == 3:
            store.sweep(now)
        else:
            store.forget(f"s{fdp.ConsumeIntInRange(0, 3)}")
        assert len(store) <= store.capacity


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        _wire(fdp)
    else:
        _tickets(fdp)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
