// The parts of an H.264 video rectangle the page checks before any decoder sees it: the 4-byte
// video header and the access unit's SPS. A mirror of rdesk/protocol/video.py and h264.py
// (docs/protocol.md, "Video"); tests/vectors/h264.json is checked against both.
//
// Pure and bounded: nalUnits() splits an Annex B byte stream at its start codes, parseSps()
// reads a sequence parameter set (ITU-T H.264 §7.3.2.1.1) far enough to know the profile, the
// chroma format, the bit depths and the cropped picture size, so a unit that declares
// 50000×50000 is refused before a decoder allocates anything for it. A truncated or malformed
// SPS throws H264Error, never anything else.

/** Video streams one connection may have at a time (stream numbers 0 … 7). */
export const MAX_VIDEO_STREAMS = 8;
/** Smallest width or height of a video rectangle (both are also even). */
export const MIN_VIDEO_SIDE = 16;
/** The video header's flag: this access unit is an IDR with SPS and PPS in front. */
export const FLAG_KEY = 0x01;
/** stream:u8 flags:u8 reserved:u16 in front of every H264 rectangle's access unit. */
export const VIDEO_HEADER_SIZE = 4;
/** Longest SPS NAL unit read (a real one is tens of bytes; scaling lists add a few hundred). */
export const MAX_SPS_BYTES = 1024;
/** profile_idc values the wire allows: Baseline (66; Constrained with constraint_set1), Main. */
export const PROFILES = Object.freeze({ 66: "baseline", 77: "main" });

export const NAL_SLICE = 1;
export const NAL_IDR = 5;
export const NAL_SPS = 7;
export const NAL_PPS = 8;

// Profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices.
const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);
const MAX_LEADING_ZEROS = 31;

export class H264Error extends Error {
  constructor(reason) {
    super(reason);
    this.name = "H264Error";
  }
}

/**
 * The header of an H264 rect's payload: {stream, key}, or null if it is malformed (no access
 * unit after it, stream ≥ MAX_VIDEO_STREAMS, unknown flags, non-zero reserved).
 */
export function parseVideoHeader(payload) {
  if (payload.length <= VIDEO_HEADER_SIZE) return null;
  const [stream, flags, r0, r1] = payload;
  if (stream >= MAX_VIDEO_STREAMS || flags & ~FLAG_KEY || r0 || r1) return null;
  return { stream, key: (flags & FLAG_KEY) !== 0 };
}

/** What is wrong with an H264 rect's shape or header (a protocol error), or null. */
export function videoRectFault(rect) {
  if (rect.w % 2 || rect.h % 2 || rect.w < MIN_VIDEO_SIDE || rect.h < MIN_VIDEO_SIDE) {
    return `video rect must be even and at least ${MIN_VIDEO_SIDE} a side`;
  }
  return parseVideoHeader(rect.payload) === null ? "video rect has a malformed video header" : null;
}

/** The NAL units of an Annex B byte stream, each without its start code (views, not copies). */
export function nalUnits(data) {
  const starts = [];
  for (let k = 0; k + 2 < data.length; k++) {
    if (data[k] === 0 && data[k + 1] === 0 && data[k + 2] === 1) {
      starts.push(k);
      k += 2;
    }
  }
  const units = [];
  starts.forEach((start, n) => {
    let end = n + 1 < starts.length ? starts[n + 1] : data.length;
    // A 4-byte start code (or trailing_zero_8bits) leaves zeros at this unit's end.
    while (end > start + 3 && data[end - 1] === 0) end--;
    if (end > start + 3) units.push(data.subarray(start + 3, end));
  });
  return units;
}

/** The nal_unit_type of every NAL unit in `data`, in order. */
export function nalTypes(data) {
  return nalUnits(data).map((unit) => unit[0] & 0x1f);
}

// The NAL unit's payload with emulation-prevention bytes (00 00 03) removed.
function rbsp(unit) {
  const out = new Uint8Array(unit.length);
  let n = 0;
  let zeros = 0;
  for (let k = 1; k < unit.length; k++) {
    const byte = unit[k];
    if (zeros >= 2 && byte === 3) {
      zeros = 0;
      continue;
    }
    out[n++] = byte;
    zeros = byte === 0 ? zeros + 1 : 0;
  }
  return out.subarray(0, n);
}

/** A big-endian bit reader that throws H264Error at its end. */
class Bits {
  constructor(data) {
    this.data = data;
    this.pos = 0; // in bits
  }

  u(n) {
    if (this.pos + n > 8 * this.data.length) throw new H264Error("SPS truncated");
    let value = 0;
    for (let k = 0; k < n; k++, this.pos++) {
      value = value * 2 + ((this.data[this.pos >> 3] >> (7 - (this.pos & 7))) & 1);
    }
    return value;
  }

  ue() {
    let zeros = 0;
    while (this.u(1) === 0) {
      zeros += 1;
      if (zeros > MAX_LEADING_ZEROS) throw new H264Error("exp-Golomb code too long");
    }
    return 2 ** zeros - 1 + this.u(zeros);
  }

  se() {
    const k = this.ue();
    return k % 2 ? (k + 1) / 2 : -(k / 2);
  }
}

function skipScalingList(bits, size) {
  let last = 8;
  let next = 8;
  for (let k = 0; k < size; k++) {
    if (next) {
      const delta = bits.se();
      if (delta < -128 || delta > 127) throw new H264Error("scaling list delta out of range");
      next = (last + delta + 256) % 256;
    }
    last = next || last;
  }
}

/**
 * Parse one SPS NAL unit (its header byte included, no start code) into {profile_idc,
 * constraint_flags, level_idc, chroma_format_idc, bit_depth_luma, bit_depth_chroma,
 * frame_mbs_only, width, height} (the size after frame cropping).
 */
export function parseSps(unit) {
  return readSps(unit)[0];
}

/**
 * The colour description in an SPS's VUI: {primaries, transfer, matrix, fullRange} as the
 * H.264 code points (Table E-3 … E-5), or null when the SPS has none (the stream is untagged)
 * or its VUI is cut short. Throws H264Error as parseSps does.
 */
export function spsColour(unit) {
  const bits = readSps(unit)[1];
  try {
    if (!bits.u(1)) return null; // vui_parameters_present_flag
    if (bits.u(1) && bits.u(8) === 255) bits.u(32); // aspect_ratio_idc, Extended_SAR
    if (bits.u(1)) bits.u(1); // overscan_info_present_flag, overscan_appropriate_flag
    if (!bits.u(1)) return null; // video_signal_type_present_flag
    bits.u(3); // video_format
    const fullRange = bits.u(1) === 1;
    if (!bits.u(1)) return null; // colour_description_present_flag
    return { primaries: bits.u(8), transfer: bits.u(8), matrix: bits.u(8), fullRange };
  } catch (err) {
    if (err instanceof H264Error) return null;
    throw err;
  }
}

function readSps(unit) {
  if (!unit.length || (unit[0] & 0x1f) !== NAL_SPS || unit[0] & 0x80) throw new H264Error("not an SPS NAL unit");
  if (unit.length > MAX_SPS_BYTES) throw new H264Error(`SPS longer than ${MAX_SPS_BYTES} bytes`);
  const bits = new Bits(rbsp(unit));
  const [profile, constraints, level] = [bits.u(8), bits.u(8), bits.u(8)];
  if (bits.ue() > 31) throw new H264Error("seq_parameter_set_id out of range");
  let [chroma, separate, depthLuma, depthChroma] = [1, false, 8, 8];
  if (HIGH_PROFILES.has(profile)) {
    chroma = bits.ue();
    if (chroma > 3) throw new H264Error("chroma_format_idc out of range");
    if (chroma === 3) separate = bits.u(1) === 1;
    depthLuma = bits.ue() + 8;
    depthChroma = bits.ue() + 8;
    if (depthLuma > 14 || depthChroma > 14) throw new H264Error("bit depth out of range");
    bits.u(1); // qpprime_y_zero_transform_bypass_flag
    if (bits.u(1)) {
      // seq_scaling_matrix_present_flag
      for (let i = 0; i < (chroma !== 3 ? 8 : 12); i++) if (bits.u(1)) skipScalingList(bits, i < 6 ? 16 : 64);
    }
  }
  if (bits.ue() > 12) throw new H264Error("log2_max_frame_num_minus4 out of range");
  const pocType = bits.ue();
  if (pocType === 0) {
    if (bits.ue() > 12) throw new H264Error("log2_max_pic_order_cnt_lsb_minus4 out of range");
  } else if (pocType === 1) {
    bits.u(1);
    bits.se();
    bits.se();
    const cycle = bits.ue();
    if (cycle > 255) throw new H264Error("num_ref_frames_in_pic_order_cnt_cycle out of range");
    for (let k = 0; k < cycle; k++) bits.se();
  } else if (pocType !== 2) {
    throw new H264Error("pic_order_cnt_type out of range");
  }
  bits.ue(); // max_num_ref_frames
  bits.u(1); // gaps_in_frame_num_value_allowed_flag
  const widthMbs = bits.ue() + 1;
  const heightUnits = bits.ue() + 1;
  const frameMbsOnly = bits.u(1) === 1;
  if (!frameMbsOnly) bits.u(1); // mb_adaptive_frame_field_flag
  bits.u(1); // direct_8x8_inference_flag
  let width = 16 * widthMbs;
  let height = 16 * heightUnits * (frameMbsOnly ? 1 : 2);
  if (bits.u(1)) {
    // frame_cropping_flag
    const [left, right, top, bottom] = [bits.ue(), bits.ue(), bits.ue(), bits.ue()];
    const arrayType = separate ? 0 : chroma;
    const subW = arrayType === 1 || arrayType === 2 ? 2 : 1;
    const subH = arrayType === 1 ? 2 : 1;
    const unitY = subH * (frameMbsOnly ? 1 : 2);
    width -= subW * (left + right);
    height -= unitY * (top + bottom);
    if (width <= 0 || height <= 0) throw new H264Error("frame cropping leaves no picture");
  }
  const sps = {
    profile_idc: profile,
    constraint_flags: constraints,
    level_idc: level,
    chroma_format_idc: chroma,
    bit_depth_luma: depthLuma,
    bit_depth_chroma: depthChroma,
    frame_mbs_only: frameMbsOnly,
    width,
    height,
  };
  return [sps, bits];
}

/**
 * Check a key access unit against the rect size [w, h] it was sent for: exactly one SPS
 * (Baseline or Main, 4:2:0, 8-bit, progressive, cropped to the size), a PPS and an IDR slice.
 * Returns the SPS; throws H264Error otherwise.
 */
export function checkKeyUnit(data, [w, h]) {
  const units = nalUnits(data);
  const types = units.map((unit) => unit[0] & 0x1f);
  if (types.filter((t) => t === NAL_SPS).length !== 1 || !types.includes(NAL_PPS) || !types.includes(NAL_IDR)) {
    throw new H264Error("a key unit needs one SPS, a PPS and an IDR slice");
  }
  const sps = parseSps(units[types.indexOf(NAL_SPS)]);
  if (!Object.prototype.hasOwnProperty.call(PROFILES, sps.profile_idc)) {
    throw new H264Error(`profile ${sps.profile_idc} is not Baseline or Main`);
  }
  if (sps.chroma_format_idc !== 1 || sps.bit_depth_luma !== 8 || sps.bit_depth_chroma !== 8) {
    throw new H264Error("not 4:2:0 8-bit");
  }
  if (!sps.frame_mbs_only) throw new H264Error("interlaced pictures are not allowed");
  if (sps.width !== w || sps.height !== h) {
    throw new H264Error(`SPS declares ${sps.width}x${sps.height} for a ${w}x${h} rect`);
  }
  return sps;
}

/** Whether a non-key access unit holds a picture at all (a coded slice). */
export function hasSlice(data) {
  return nalTypes(data).some((t) => t === NAL_SLICE || t === NAL_IDR);
}

/** The WebCodecs codec string of an SPS: "avc1." + profile_idc, constraint flags, level_idc. */
export function codecString(sps) {
  const hex = (v) => v.toString(16).toUpperCase().padStart(2, "0");
  return `avc1.${hex(sps.profile_idc)}${hex(sps.constraint_flags)}${hex(sps.level_idc)}`;
}
