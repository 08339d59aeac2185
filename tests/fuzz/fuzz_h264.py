"""atheris harness: the viewer's pre-decoder H.264 checks must refuse any input cleanly.

Run: ``python tests/fuzz/fuzz_h264.py -max_total_time=60`` (pip install -e .[fuzz]).
Every input must pass :func:`check_key_unit` or raise :class:`H264Error`; a parsed SPS's size
is positive; :func:`sps_colour` gives a description (8-bit code points) or ``None``, or raises
:class:`H264Error` where :func:`parse_sps` does.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from rdesk.protocol.h264 import H264Error, check_key_unit, parse_sps, sps_colour


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
    try:
        colour = sps_colour(b"\x67" + body)
    except H264Error:
        return
    assert colour is None or max(colour.primaries, colour.transfer, colour.matrix) <= 255


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
