"""atheris harness: the host-side handshake and session state machine under any message order.

Run: ``python tests/fuzz/fuzz_session.py -max_total_time=60`` (pip install -e .[fuzz]).
A host session is fed a fuzzed sequence of messages (valid ones of every type, mutated ones,
and raw bytes) at fuzzed times; each must be accepted or refused with a
:class:`ProtocolError`, never another exception, and after a refusal the session stays closed.
"""

from __future__ import annotations

import json
import sys

import atheris

with atheris.instrument_imports():
    from rdesk.protocol.errors import ProtocolError
    from rdesk.protocol.messages import PROTOCOL_NAME, PROTOCOL_VERSION, Hello
    from rdesk.protocol.session import Session
    from rdesk.protocol.states import Role

NONCE = "A" * 24
TEMPLATES = [
    {"t": "auth", "version": PROTOCOL_VERSION, "nonce": NONCE, "method": "password",
     "secret": "s", "name": "n"},
    {"t": "ack", "seq": 0},
    {"t": "ping", "id": 1},
    {"t": "pong", "id": 1},
    {"t": "pointer", "x": 1, "y": 2, "buttons": 0},
    {"t": "wheel", "x": 1, "y": 2, "dx": 0, "dy": 1},
    {"t": "key", "keysym": 97, "down": True},
    {"t": "sync", "id": 3},
    {"t": "refresh"},
    {"t": "close", "code": 1000, "reason": ""},
    {"t": "welcome", "role": "control", "viewer_id": 1, "width": 1, "height": 1, "name": ""},
]
VALUES: list[object] = [0, -1, 2**31, 2**64, 1.5, "", "x" * 300, None, True, [], {}, NONCE]


def _message(fdp: atheris.FuzzedDataProvider) -> str | bytes:
    choice = fdp.ConsumeIntInRange(0, 3)
    if choice == 0:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
    if choice == 1:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 64))
    template = dict(TEMPLATES[fdp.ConsumeIntInRange(0, len(TEMPLATES) - 1)])
    if choice == 3 and len(template) > 1:
        key = sorted(template)[fdp.ConsumeIntInRange(0, len(template) - 1)]
        template[key] = VALUES[fdp.ConsumeIntInRange(0, len(VALUES) - 1)]
    return json.dumps(template)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    now = 0.0
    session = Session(Role.HOST, now)
    session.send(Hello(PROTOCOL_NAME, PROTOCOL_VERSION, NONCE, "password", "fuzz"), now)
    for _ in range(fdp.ConsumeIntInRange(1, 12)):
        now += fdp.ConsumeIntInRange(0, 100_000) / 1000
        try:
            session.handle_timer(now)
            session.receive(_message(fdp), now)
        except ProtocolError:
            # Once refused, everything after is refused too (no resurrection).
            try:
                session.receive(json.dumps(TEMPLATES[2]), now)
            except ProtocolError:
                return
            raise AssertionError("session accepted a message after refusing one") from None


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
