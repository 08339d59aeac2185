"""atheris harness: the wire codec and the viewer's framebuffer must refuse any input cleanly.

Run: ``python tests/fuzz/fuzz_codec.py -max_total_time=60`` (pip install -e .[fuzz]).
Every input must either decode or raise :class:`RemoteProtocolError`; a decoded control
message must re-encode to something that decodes to the same message; a decoded update must
apply to a small framebuffer or be refused with :class:`RemoteProtocolError`.
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from rdesk.client.framebuffer import Framebuffer
    from rdesk.protocol.codec import decode, encode
    from rdesk.protocol.errors import RemoteProtocolError
    from rdesk.protocol.updates import Update


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    as_text = fdp.ConsumeBool()
    payload: str | bytes = (
        fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes()) if as_text
        else fdp.ConsumeBytes(fdp.remaining_bytes())
    )
    try:
        message = decode(payload)
    except RemoteProtocolError:
        return
    if isinstance(message, Update):
        framebuffer = Framebuffer(64, 48)
        with contextlib.suppress(RemoteProtocolError):
            framebuffer.apply(message)
        return
    again = decode(encode(message))
    assert again == message, (message, again)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
