// Image headers (docs/protocol.md §5): the size an image payload declares, read before anything
// is decoded, so a rect's image can never claim more pixels than its rect. Pure functions.

import { ENCODING, ProtocolError } from "./codec.js";

const IMAGE_TYPES = { [ENCODING.JPEG]: "image/jpeg", [ENCODING.PNG]: "image/png", [ENCODING.WEBP]: "image/webp" };

function be16(p, o) {
  return (p[o] << 8) | p[o + 1];
}
function be32(p, o) {
  return ((p[o] << 24) | (p[o + 1] << 16) | (p[o + 2] << 8) | p[o + 3]) >>> 0;
}
function le16(p, o) {
  return p[o] | (p[o + 1] << 8);
}
function le24(p, o) {
  return p[o] | (p[o + 1] << 8) | (p[o + 2] << 16);
}

function pngSize(p) {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (p.length < 24 || sig.some((b, k) => p[k] !== b)) return null;
  if (be32(p, 8) !== 13 || String.fromCharCode(p[12], p[13], p[14], p[15]) !== "IHDR") return null;
  return [be32(p, 16), be32(p, 20)];
}

function jpegSize(p) {
  if (p.length < 4 || p[0] !== 0xff || p[1] !== 0xd8) return null;
  let o = 2;
  while (o + 4 <= p.length) {
    if (p[o] !== 0xff) return null;
    const marker = p[o + 1];
    if (marker === 0xff) {
      o++; // fill byte
      continue;
    }
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      o += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return null; // no frame header before the scan
    const len = be16(p, o + 2);
    if (len < 2) return null;
    const isSOF = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSOF) {
      if (o + 9 > p.length) return null;
      return [be16(p, o + 7), be16(p, o + 5)];
    }
    o += 2 + len;
  }
  return null;
}

function webpSize(p) {
  const tag = (o) => String.fromCharCode(p[o], p[o + 1], p[o + 2], p[o + 3]);
  if (p.length < 30 || tag(0) !== "RIFF" || tag(8) !== "WEBP") return null;
  const chunk = tag(12);
  if (chunk === "VP8 ") {
    if (p[23] !== 0x9d || p[24] !== 0x01 || p[25] !== 0x2a) return null;
    return [le16(p, 26) & 0x3fff, le16(p, 28) & 0x3fff];
  }
  if (chunk === "VP8L") {
    if (p[20] !== 0x2f) return null;
    const bits = (p[21] | (p[22] << 8) | (p[23] << 16) | (p[24] << 24)) >>> 0;
    return [(bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1];
  }
  if (chunk === "VP8X") {
    return [le24(p, 24) + 1, le24(p, 27) + 1];
  }
  return null;
}

/**
 * The size an image payload declares in its header, checked against its rect: the format must
 * match the encoding and the size must be within (w, h). Returns [width, height].
 */
export function checkImageHeader(rect) {
  const reader = { 1: jpegSize, 2: pngSize, 3: webpSize }[rect.encoding];
  if (!reader) throw new ProtocolError("not an image rect");
  const size = reader(rect.payload);
  if (size === null) throw new ProtocolError("image does not match its rect's encoding");
  const [iw, ih] = size;
  if (iw < 1 || ih < 1 || iw > rect.w || ih > rect.h) {
    throw new ProtocolError(`image declares ${iw}x${ih} for a ${rect.w}x${rect.h} rect`);
  }
  return size;
}

/** The MIME type of an image encoding. */
export function imageType(encoding) {
  return IMAGE_TYPES[encoding];
}
