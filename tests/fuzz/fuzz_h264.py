"""atheris harness: the viewer's pre-decoder H.264 checks must refuse any input cleanly.

Run: ``python tests/fuzz/fuzz_h264.py -max_total_time=60`` (pip install -e .[fuzz]).
Every input must pass :func:`check_key_unit` or raise :class:`H264Error`; a parsed SPS's size
is positive.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from rdesk.protocol.h264 import H264Error, check_key_unit, parse_sps


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    width, height = fdp.ConsumeIntInRange(16, 4096), fdp.ConsumeIntInRange(16, 4096)
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    for check in (lambda: parse_sps(b"\x67" + body), lambda: check_key_unit(body, (width,
                                                                                   height))):
        try:
            sps = check()
        except H264Error:
            continue
        assert sps.width > 0 and sps.height > 0


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
