"""The SPS parser and the key-unit check: exact on SPSs built bit by bit, refusing anything
else with H264Error only, and agreeing with what libx264 writes (when PyAV is installed)."""

from __future__ import annotations

import contextlib
import fractions

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdesk.protocol.h264 import (
    MAX_SPS_BYTES,
    Colour,
    H264Error,
    check_key_unit,
    nal_types,
    nal_units,
    parse_sps,
    sps_colour,
)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class BitWriter:
    """Writes an SPS the way an encoder does: fixed fields, exp-Golomb, RBSP trailing bits,
    then emulation prevention."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> None:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(2 * code.bit_length() - 1, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def nal(self, header: int = 0x67) -> bytes:
        bits = [*self.bits, 1]
        bits += [0] * (-len(bits) % 8)
        raw = bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))
        out = bytearray([header])
        zeros = 0
        for byte in raw:
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)


def build_sps(*, profile: int = 66, width_mbs: int = 120, height_units: int = 68,
              frame_mbs_only: bool = True, crop: tuple[int, int, int, int] | None = (0, 0, 0, 4),
              chroma: int = 1, poc_type: int = 0, scaling: bool = False, depth: int = 8,
              vui: bool = False, sar: int | None = None, overscan: bool = False,
              colour: tuple[int, int, int, bool] | None = None) -> bytes:
    w = BitWriter()
    w.u(8, profile)
    w.u(8, 0xC0)
    w.u(8, 40)
    w.ue(0)
    if profile in (100, 110, 122, 244):
        w.ue(chroma)
        if chroma == 3:
            w.u(1, 0)
        w.ue(depth - 8)
        w.ue(depth - 8)
        w.u(1, 0)
        w.u(1, int(scaling))
        if scaling:
            w.u(1, 1)  # list 0 present (it follows its flag at once), the others absent
            for _ in range(16):
                w.se(1)
            w.u(7 if chroma != 3 else 11, 0)
    w.ue(0)  # log2_max_frame_num_minus4
    w.ue(poc_type)
    if poc_type == 0:
        w.ue(2)
    elif poc_type == 1:
        w.u(1, 0)
        w.se(-3)
        w.se(2)
        w.ue(2)
        w.se(1)
        w.se(-1)
    w.ue(1)  # max_num_ref_frames
    w.u(1, 0)
    w.ue(width_mbs - 1)
    w.ue(height_units - 1)
    w.u(1, int(frame_mbs_only))
    if not frame_mbs_only:
        w.u(1, 0)
    w.u(1, 1)
    w.u(1, crop is not None)
    if crop is not None:
        for value in crop:
            w.ue(value)
    w.u(1, int(vui))  # vui_parameters_present_flag
    if vui:
        w.u(1, sar is not None)
        if sar is not None:
            w.u(8, sar)
            if sar == 255:
                w.u(32, 0x00040003)
        w.u(1, int(overscan))
        if overscan:
            w.u(1, 1)
        w.u(1, colour is not None)  # video_signal_type_present_flag
        if colour is not None:
            w.u(3, 5)  # video_format: unspecified
            w.u(1, int(colour[3]))
            w.u(1, 1)  # colour_description_present_flag
            for code in colour[:3]:
                w.u(8, code)
        w.u(1, 0)  # chroma_loc_info_present_flag, and no more VUI fields
        w.u(4, 0)
    return w.nal()


def key_unit(sps: bytes) -> bytes:
    return b"\0\0\0\1" + sps + b"\0\0\0\1\x68\xce\x38\x80" + b"\0\0\1\x65\x88\x84\x00\x33"


def test_1080p_with_cropping() -> None:
    sps = parse_sps(build_sps())
    assert (sps.width, sps.height, sps.profile_idc, sps.chroma_format_idc) == (1920, 1080, 66, 1)


@FAST
@given(st.integers(1, 700), st.integers(1, 700), st.booleans(), st.sampled_from([0, 1, 2]),
       st.sampled_from([66, 77, 100]), st.booleans(), st.data())
def test_declared_size_is_read_exactly(width_mbs: int, height_units: int, frame_mbs_only: bool,
                                       poc_type: int, profile: int, scaling: bool,
                                       data: st.DataObject) -> None:
    unit_y = 2 if frame_mbs_only else 4
    full_h = 16 * height_units * (1 if frame_mbs_only else 2)
    left = data.draw(st.integers(0, 7))
    right = data.draw(st.integers(0, 7))
    top = data.draw(st.integers(0, 3))
    bottom = data.draw(st.integers(0, 3))
    crop = (left, right, top, bottom)
    width = 16 * width_mbs - 2 * (left + right)
    height = full_h - unit_y * (top + bottom)
    unit = build_sps(profile=profile, width_mbs=width_mbs, height_units=height_units,
                     frame_mbs_only=frame_mbs_only, crop=crop, poc_type=poc_type,
                     scaling=scaling)
    if width <= 0 or height <= 0:
        with pytest.raises(H264Error):
            parse_sps(unit)
        return
    sps = parse_sps(unit)
    assert (sps.width, sps.height, sps.frame_mbs_only) == (width, height, frame_mbs_only)
    assert sps.profile_idc == profile


def test_50000_square_is_refused_before_decoding() -> None:
    # 3125 macroblocks a side: 50000 x 50000, a valid SPS; the check refuses it for its rect.
    unit = key_unit(build_sps(width_mbs=3125, height_units=3125, crop=None))
    assert parse_sps(next(iter(nal_units(unit)))).width == 50000
    with pytest.raises(H264Error, match="50000x50000"):
        check_key_unit(unit, (1920, 1080))


def test_key_unit_checks() -> None:
    good = key_unit(build_sps())
    assert check_key_unit(good, (1920, 1080)).height == 1080
    for bad, why in [
        (key_unit(build_sps(profile=100)), "profile"),
        (key_unit(build_sps(profile=100, chroma=2)), "profile"),
        (key_unit(build_sps(frame_mbs_only=False, crop=None)), "interlaced"),
        (good.replace(b"\x65\x88", b"\x61\x88"), "IDR"),  # no IDR slice
        (good + b"\0\0\1" + build_sps(), "one SPS"),  # two SPSs
        (b"\0\0\1\x65\x88\x84", "one SPS"),
        (b"not h264 at all", "one SPS"),
    ]:
        with pytest.raises(H264Error, match=why):
            check_key_unit(bad, (1920, 1080))
    with pytest.raises(H264Error, match="1920x1080 for a 1920x1088"):
        check_key_unit(good, (1920, 1088))


def test_nal_units_split_at_both_start_codes() -> None:
    data = b"junk\0\0\0\1\x67ab\0\0\1\x68cd\0\0\0\1\x65ef\0\0"
    assert list(nal_units(data)) == [b"\x67ab", b"\x68cd", b"\x65ef"]
    assert nal_types(data) == [7, 8, 5]


@FAST
@given(st.binary(max_size=64))
def test_random_sps_bodies_raise_only_h264error(body: bytes) -> None:
    with contextlib.suppress(H264Error):
        parse_sps(b"\x67" + body)


@FAST
@given(st.integers(1, 200), st.data())
def test_truncated_sps_refused(cut: int, data: st.DataObject) -> None:
    unit = build_sps(profile=data.draw(st.sampled_from([66, 100])), scaling=True)
    if cut < len(unit):
        with contextlib.suppress(H264Error):
            parse_sps(unit[:-cut])


def test_oversized_and_non_sps_units_refused() -> None:
    with pytest.raises(H264Error, match="longer"):
        parse_sps(build_sps() + b"\x80" * MAX_SPS_BYTES)
    with pytest.raises(H264Error, match="not an SPS"):
        parse_sps(b"\x68\x00")
    with pytest.raises(H264Error, match="not an SPS"):
        parse_sps(b"")
    # 33 leading zeros: no field is that long.
    with pytest.raises(H264Error, match="too long"):
        parse_sps(b"\x67\x42\xc0\x28" + b"\0\0\3\0\0\3\0\x01")


@pytest.mark.parametrize("size", [(1920, 1080), (640, 358), (34, 18)])
def test_what_libx264_writes(size: tuple[int, int]) -> None:
    av = pytest.importorskip("av")
    import numpy as np

    width, height = size
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, 90000)
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline"}
    ctx.open()
    frame = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24")
    unit = b"".join(bytes(p) for p in ctx.encode(frame.reformat(format="yuv420p")))
    sps = check_key_unit(unit, size)
    assert (sps.width, sps.height, sps.profile_idc) == (width, height, 66)


@pytest.mark.parametrize("sar", [None, 1, 255])
@pytest.mark.parametrize("overscan", [False, True])
def test_colour_description_is_read(sar: int | None, overscan: bool) -> None:
    unit = build_sps(vui=True, sar=sar, overscan=overscan, colour=(6, 6, 6, False))
    assert sps_colour(unit) == Colour(6, 6, 6, False)
    assert parse_sps(unit).width == 1920  # the VUI changes nothing before it
    assert sps_colour(build_sps(vui=True, sar=sar, colour=(1, 1, 1, True))) == Colour(
        1, 1, 1, True)


def test_no_colour_description() -> None:
    assert sps_colour(build_sps()) is None  # no VUI
    assert sps_colour(build_sps(vui=True, sar=1)) is None  # a VUI without video_signal_type
    # A VUI cut short inside the description is no description, never another error.
    tagged = build_sps(vui=True, sar=255, colour=(6, 6, 6, False))
    assert sps_colour(tagged) is not None
    for cut in range(2, 6):  # the last byte holds only the VUI's end
        assert sps_colour(tagged[:-cut]) is None
    with pytest.raises(H264Error):
        sps_colour(b"\x68\x00")


def test_the_hosts_encoder_describes_bt601_limited_range() -> None:
    pytest.importorskip("av")
    import numpy as np

    from rdesk.host.video.encoder import H264Encoder

    encoder = H264Encoder((64, 48), 500_000)
    unit, key = encoder.encode(np.zeros((48, 64, 4), np.uint8), (0, 0, 64, 48), key=True)
    assert key
    sps = next(u for u in nal_units(unit) if u[0] & 0x1F == 7)
    # SMPTE 170M (BT.601 525-line) primaries, transfer and matrix; video_full_range_flag 0.
    assert sps_colour(sps) == Colour(6, 6, 6, False)
    assert check_key_unit(unit, (64, 48)).width == 64


def test_the_hosts_encoder_opens_without_a_refused_option(caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    """Every option the host gives x264 is taken: libavcodec logs "Error parsing option" for
    each one it refuses and goes on without it (x264's ``range`` was, for every encoder)."""
    pytest.importorskip("av")
    import logging

    import av.logging
    import numpy as np

    from rdesk.host.video.encoder import H264Encoder

    level = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)  # PyAV passes libav's log on only when asked
    try:
        with caplog.at_level(logging.WARNING):
            encoder = H264Encoder((64, 48), 500_000)
            encoder.encode(np.zeros((48, 64, 4), np.uint8), (0, 0, 64, 48), key=True)
    finally:
        av.logging.set_level(level)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("libav")] == []
