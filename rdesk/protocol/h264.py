"""The parts of an H.264 Annex B access unit a viewer checks before any decoder sees it.

Pure and bounded: :func:`nal_units` splits a byte stream at its start codes, and
:func:`parse_sps` reads a sequence parameter set (ITU-T H.264 §7.3.2.1.1) far enough to know
the profile, the chroma format, the bit depths and the cropped picture size — so a unit that
declares 50000×50000 pixels is refused before a decoder allocates anything for it
(docs/protocol.md, "Video"); :func:`sps_colour` reads the colour description of its VUI
(Annex E), which the host's encoder writes (BT.601, limited range). Every read is checked: a
truncated or malformed SPS raises :class:`H264Error`, never anything else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

__all__ = [
    "NAL_IDR",
    "NAL_PPS",
    "NAL_SPS",
    "PROFILES",
    "MAX_SPS_BYTES",
    "Colour",
    "H264Error",
    "Sps",
    "check_key_unit",
    "nal_types",
    "nal_units",
    "parse_sps",
    "sps_colour",
]

NAL_SLICE = 1
NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
#: profile_idc values the wire allows: Baseline (66, with constraint_set1: Constrained
#: Baseline) and Main (77).
PROFILES = {66: "baseline", 77: "main"}
# Profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices (§7.3.2.1.1).
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}
#: Longest SPS NAL unit read (a real one is tens of bytes; scaling lists add a few hundred).
MAX_SPS_BYTES = 1024
# An exp-Golomb code with more leading zeros than this is not a value any field may take.
_MAX_LEADING_ZEROS = 31


class H264Error(ValueError):
    """The bytes are not the H.264 the wire allows (or not H.264 at all)."""


@dataclasses.dataclass(frozen=True)
class Colour:
    """An SPS's colour description (VUI, ITU-T H.264 Annex E): the code points of Table E-3,
    E-4 and E-5 (1 BT.709, 2 unspecified, 5/6 BT.601 625/525-line) and the range flag."""

    primaries: int
    transfer: int
    matrix: int
    full_range: bool


@dataclasses.dataclass(frozen=True)
class Sps:
    """What a sequence parameter set declares."""

    profile_idc: int
    constraint_flags: int
    level_idc: int
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    frame_mbs_only: bool
    #: The picture size after frame cropping, in pixels.
    width: int
    height: int


def nal_units(data: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex B byte stream (start codes 00 00 01 or 00 00 00 01), each
    without its start code; bytes before the first start code are skipped."""
    start = data.find(b"\x00\x00\x01")
    while start != -1:
        begin = start + 3
        end = data.find(b"\x00\x00\x01", begin)
        unit = data[begin:] if end == -1 else data[begin:end]
        # A 4-byte start code (or trailing_zero_8bits) leaves zeros at this unit's end.
        unit = unit.rstrip(b"\x00")
        if unit:
            yield unit
        start = end


def nal_types(data: bytes) -> list[int]:
    """The nal_unit_type of every NAL unit in ``data``, in order."""
    return [unit[0] & 0x1F for unit in nal_units(data)]


def _rbsp(unit: bytes) -> bytes:
    """The NAL unit's payload with emulation-prevention bytes (00 00 03) removed."""
    out = bytearray()
    zeros = 0
    for byte in unit[1:]:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


class _Bits:
    """A big-endian bit reader over ``data`` that raises :class:`H264Error` at its end."""

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.left = 8 * len(data)

    def u(self, n: int) -> int:
        if n > self.left:
            raise H264Error("SPS truncated")
        self.left -= n
        return (self.value >> self.left) & ((1 << n) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > _MAX_LEADING_ZEROS:
                raise H264Error("exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last, nxt = 8, 8
    for _ in range(size):
        if nxt:
            delta = bits.se()
            if not -128 <= delta <= 127:
                raise H264Error("scaling list delta out of range")
            nxt = (last + delta + 256) % 256
        last = nxt or last


def parse_sps(unit: bytes) -> Sps:
    """Parse one SPS NAL unit (its header byte included, no start code)."""
    return _read_sps(unit)[0]


def sps_colour(unit: bytes) -> Colour | None:
    """The colour description in one SPS NAL unit's VUI, ``None`` if it has none (a VUI cut
    short there counts as none, as in h264.js spsColour); :class:`H264Error` as
    :func:`parse_sps` for the SPS before it."""
    return _colour(_read_sps(unit)[1])


def _read_sps(unit: bytes) -> tuple[Sps, _Bits]:
    """The SPS, and the reader left at its ``vui_parameters_present_flag``."""
    if not unit or unit[0] & 0x1F != NAL_SPS or unit[0] & 0x80:
        raise H264Error("not an SPS NAL unit")
    if len(unit) > MAX_SPS_BYTES:
        raise H264Error(f"SPS longer than {MAX_SPS_BYTES} bytes")
    bits = _Bits(_rbsp(unit))
    profile, constraints, level = bits.u(8), bits.u(8), bits.u(8)
    if bits.ue() > 31:
        raise H264Error("seq_parameter_set_id out of range")
    chroma, separate, depth_luma, depth_chroma = 1, False, 8, 8
    if profile in _HIGH_PROFILES:
        chroma = bits.ue()
        if chroma > 3:
            raise H264Error("chroma_format_idc out of range")
        if chroma == 3:
            separate = bool(bits.u(1))
        depth_luma, depth_chroma = bits.ue() + 8, bits.ue() + 8
        if depth_luma > 14 or depth_chroma > 14:
            raise H264Error("bit depth out of range")
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    if bits.ue() > 12:
        raise H264Error("log2_max_frame_num_minus4 out of range")
    poc_type = bits.ue()
    if poc_type == 0:
        if bits.ue() > 12:
            raise H264Error("log2_max_pic_order_cnt_lsb_minus4 out of range")
    elif poc_type == 1:
        bits.u(1)
        bits.se()
        bits.se()
        cycle = bits.ue()
        if cycle > 255:
            raise H264Error("num_ref_frames_in_pic_order_cnt_cycle out of range")
        for _ in range(cycle):
            bits.se()
    elif poc_type != 2:
        raise H264Error("pic_order_cnt_type out of range")
    bits.ue()  # max_num_ref_frames
    bits.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs, height_units = bits.ue() + 1, bits.ue() + 1
    frame_mbs_only = bool(bits.u(1))
    if not frame_mbs_only:
        bits.u(1)  # mb_adaptive_frame_field_flag
    bits.u(1)  # direct_8x8_inference_flag
    width, height = 16 * width_mbs, 16 * height_units * (1 if frame_mbs_only else 2)
    if bits.u(1):  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        array_type = 0 if separate else chroma
        sub_w = 2 if array_type in (1, 2) else 1
        sub_h = 2 if array_type == 1 else 1
        unit_y = sub_h * (1 if frame_mbs_only else 2)
        width -= sub_w * (left + right)
        height -= unit_y * (top + bottom)
        if width <= 0 or height <= 0:
            raise H264Error("frame cropping leaves no picture")
    return Sps(profile, constraints, level, chroma, depth_luma, depth_chroma, frame_mbs_only,
               width, height), bits


def _colour(bits: _Bits) -> Colour | None:
    """The colour description at the start of the VUI, if there is one."""
    try:
        if not bits.u(1):  # vui_parameters_present_flag
            return None
        if bits.u(1) and bits.u(8) == 255:  # aspect_ratio_info_present_flag, Extended_SAR
            bits.u(32)
        if bits.u(1):  # overscan_info_present_flag
            bits.u(1)
        if not bits.u(1):  # video_signal_type_present_flag
            return None
        bits.u(3)  # video_format
        full_range = bool(bits.u(1))
        if not bits.u(1):  # colour_description_present_flag
            return None
        return Colour(bits.u(8), bits.u(8), bits.u(8), full_range)
    except H264Error:
        return None


def check_key_unit(data: bytes, size: tuple[int, int]) -> Sps:
    """Check a key access unit against the rectangle ``size`` (w, h) it was sent for.

    It must hold exactly one SPS — Baseline or Main profile, 4:2:0, 8-bit, progressive,
    cropped to ``size`` — a PPS, and an IDR slice. Raises :class:`H264Error` otherwise.
    """
    units = list(nal_units(data))
    types = [unit[0] & 0x1F for unit in units]
    if types.count(NAL_SPS) != 1 or NAL_PPS not in types or NAL_IDR not in types:
        raise H264Error("a key unit needs one SPS, a PPS and an IDR slice")
    sps = parse_sps(units[types.index(NAL_SPS)])
    if sps.profile_idc not in PROFILES:
        raise H264Error(f"profile {sps.profile_idc} is not Baseline or Main")
    if sps.chroma_format_idc != 1 or sps.bit_depth_luma != 8 or sps.bit_depth_chroma != 8:
        raise H264Error("not 4:2:0 8-bit")
    if not sps.frame_mbs_only:
        raise H264Error("interlaced pictures are not allowed")
    if (sps.width, sps.height) != size:
        raise H264Error(f"SPS declares {sps.width}x{sps.height} for a {size[0]}x{size[1]} rect")
    return sps
