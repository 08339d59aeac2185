"""atheris harness: the relay's codec and state machines under any input and message order.

Run: ``python tests/relay/fuzz_relay.py -max_total_time=60`` (pip install -e .[fuzz]).
Every input must decode to a message that re-encodes to itself, or raise
:class:`RelayProtocolError`; each relay-side machine fed a fuzzed sequence of messages (valid
ones, mutated ones, raw text and bytes) at fuzzed times must accept or refuse each with a
:class:`RelayProtocolError`, never another exception, and stay closed after a refusal.
"""

from __future__ import annotations

import json
import sys

import atheris

with atheris.instrument_imports():
    from rdesk.relay.messages import RelayProtocolError, decode, encode
    from rdesk.relay.protocol import RelayDataMachine, RelayHostMachine, RelayViewerMachine

ID = "0000-0000-00000"
TEMPLATES: list[dict[str, object]] = [
    {"t": "register", "id": ID, "spki": "MFkw", "token": None, "version": 1},
    {"t": "prove", "sig": "A" * 88},
    {"t": "heartbeat"},
    {"t": "data", "id": ID, "session": "s" * 22, "sig": "A" * 88},
    {"t": "connect", "id": ID, "version": 1},
    {"t": "registered", "id": ID, "heartbeat": 20},
    {"t": "move", "reason": "x", "url": None},
    {"t": "rendezvous_raw", "session": "s" * 22, "url": None, "address": "relay.example",
     "port": 8444, "ticket": "A" * 43 + "="},
    {"t": "raw", "address": None, "port": 8444, "ticket": "A" * 43 + "="},
]
VALUES: list[object] = [0, -1, 65536, 2**64, 1.5, "", "x" * 300, None, True, [], {}, ID,
                        "A" * 88, "A" * 43 + "=", "a\nb"]


def _message(fdp: atheris.FuzzedDataProvider) -> str | bytes:
    choice = fdp.ConsumeIntInRange(0, 3)
    if choice == 0:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
    if choice == 1:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 256))
    template = dict(TEMPLATES[fdp.ConsumeIntInRange(0, len(TEMPLATES) - 1)])
    if choice == 3:
        key = [*sorted(template), "extra"][fdp.ConsumeIntInRange(0, len(template))]
        template[key] = VALUES[fdp.ConsumeIntInRange(0, len(VALUES) - 1)]
    return json.dumps(template)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    first = _message(fdp)
    try:
        message = decode(first)
    except RelayProtocolError:
        pass
    else:
        assert decode(encode(message)) == message, message
    machine = [
        lambda: RelayHostMachine(0.0, nonce=b"n" * 32, relay_fingerprint="SHA256:x",
                                 enrol=lambda token: None),
        lambda: RelayDataMachine(0.0, relay_fingerprint="SHA256:x"),
        lambda: RelayViewerMachine(0.0),
    ][fdp.ConsumeIntInRange(0, 2)]()
    now = 0.0
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        now += fdp.ConsumeIntInRange(0, 20_000) / 1000
        try:
            machine.check_timer(now)
            machine.receive(_message(fdp), now)
        except RelayProtocolError:
            assert machine.closed
            try:
                machine.receive(json.dumps(TEMPLATES[2]), now)
            except RelayProtocolError:
                return
            raise AssertionError("machine accepted a message after refusing one") from None


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
