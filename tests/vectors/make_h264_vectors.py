"""Write ``tests/vectors/h264.json``: SPS and key-unit vectors from the Python reference
(``rdesk/protocol/h264.py``), for the browser's ``rdesk/web/core/h264.js``.

Run ``python tests/vectors/make_h264_vectors.py`` (PyAV needed: some units are real libx264
output) after changing either parser and commit the JSON. ``tests/protocol/test_h264_vectors.py``
checks every vector against the Python parser, ``tests/web/h264.test.mjs`` against the
JavaScript one, so the two cannot drift apart.

Each vector is ``{name, kind, data, size?, expect}``: ``kind`` ``"sps"`` (``data`` is one SPS
NAL unit, read by ``parse_sps``) or ``"key"`` (``data`` is an access unit checked by
``check_key_unit`` against ``size`` [w, h]); ``data`` in standard base64; ``expect`` is the
parsed SPS's fields, or ``"error"``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from rdesk.protocol.h264 import H264Error, check_key_unit, parse_sps
from tests.h264units import encode, panning
from tests.protocol.test_h264 import build_sps, key_unit

OUT = Path(__file__).with_name("h264.json")


def _expect(kind: str, data: bytes, size: tuple[int, int] | None) -> Any:
    try:
        sps = parse_sps(data) if kind == "sps" else check_key_unit(data, size or (0, 0))
    except H264Error:
        return "error"
    return dataclasses.asdict(sps)


def cases() -> list[tuple[str, str, bytes, tuple[int, int] | None]]:
    """(name, kind, data, size) of every vector."""
    sps_1080 = build_sps()
    x264 = {size: encode(panning(*size, 1))[0][1] for size in ((64, 48), (100, 50), (34, 18))}
    out: list[tuple[str, str, bytes, tuple[int, int] | None]] = [
        ("1080p cropped from 1088", "sps", sps_1080, None),
        ("no cropping", "sps", build_sps(width_mbs=4, height_units=3, crop=None), None),
        ("50000x50000", "sps", build_sps(width_mbs=3125, height_units=3125, crop=None), None),
        ("interlaced", "sps", build_sps(frame_mbs_only=False, crop=(0, 0, 0, 2)), None),
        ("poc type 1", "sps", build_sps(poc_type=1), None),
        ("poc type 2", "sps", build_sps(poc_type=2), None),
        ("high profile 4:2:0", "sps", build_sps(profile=100), None),
        ("high profile 4:4:4", "sps", build_sps(profile=244, chroma=3, crop=(0, 0, 0, 8)), None),
        ("high profile scaling lists", "sps", build_sps(profile=100, scaling=True), None),
        ("high 10-bit", "sps", build_sps(profile=110, depth=10), None),
        ("cropping leaves nothing", "sps", build_sps(width_mbs=1, crop=(4, 4, 0, 0)), None),
        ("truncated", "sps", sps_1080[:7], None),
        ("header only", "sps", sps_1080[:1], None),
        ("not an SPS", "sps", b"\x68" + sps_1080[1:], None),
        ("forbidden bit", "sps", b"\xe7" + sps_1080[1:], None),
        ("exp-Golomb too long", "sps", b"\x67\x42\xc0\x28" + b"\0\0\3\0\0\3\0\x01", None),
        ("too long", "sps", sps_1080 + b"\x55" * 1024, None),
        ("1080p key unit", "key", key_unit(sps_1080), (1920, 1080)),
        ("1080p key unit for 1920x1088", "key", key_unit(sps_1080), (1920, 1088)),
        ("50000x50000 key unit", "key",
         key_unit(build_sps(width_mbs=3125, height_units=3125, crop=None)), (64, 48)),
        ("high profile key unit", "key", key_unit(build_sps(profile=100)), (1920, 1080)),
        ("interlaced key unit", "key",
         key_unit(build_sps(frame_mbs_only=False, crop=(0, 0, 0, 2))), (1920, 1080)),
        ("two SPS", "key", b"\0\0\1" + sps_1080 + key_unit(sps_1080), (1920, 1080)),
        ("no PPS", "key", b"\0\0\1" + sps_1080 + b"\0\0\1\x65\x88\x84", (1920, 1080)),
        ("no IDR", "key", key_unit(sps_1080).replace(b"\0\0\1\x65", b"\0\0\1\x41"), (1920, 1080)),
        ("nothing", "key", b"", (64, 48)),
        ("no start code", "key", sps_1080, (1920, 1080)),
    ]
    for (w, h), unit in x264.items():
        out.append((f"libx264 {w}x{h}", "key", unit, (w, h)))
    out.append(("libx264 64x48 for 64x64", "key", x264[(64, 48)], (64, 64)))
    return out


def build() -> list[dict[str, Any]]:
    vectors = []
    for name, kind, data, size in cases():
        vector: dict[str, Any] = {"name": name, "kind": kind,
                                  "data": base64.b64encode(data).decode()}
        if size is not None:
            vector["size"] = list(size)
        vector["expect"] = _expect(kind, data, size)
        vectors.append(vector)
    return vectors


def main() -> int:
    OUT.write_text(json.dumps(build(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
