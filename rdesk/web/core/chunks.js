// Transfer chunks on the wire: the binary xfer_data message, kind 2 (docs/protocol.md, "The
// binary transfer chunk"). A mirror of rdesk/protocol/chunks.py. All integers big-endian:
//
//   kind:u8 (=2) | reserved:u8 (=0) | reserved:u16 (=0) | id:u32 | offset:u64 | length:u32
//   | payload (length bytes)
//
// A decoded chunk is {t: "xfer_data", id, offset, data: Uint8Array}; whether it is allowed
// (credit, size, offset) is transfer.js's business.

import { CLOSE, ProtocolError } from "./codec.js";

export const CHUNK_KIND = 2;
export const CHUNK_HEADER_SIZE = 20;
/** Largest payload of one chunk (limits.py MAX_CHUNK). */
export const MAX_CHUNK = 256 * 1024;
const MAX_OFFSET = 2 ** 40; // transfer.py MAX_FILE_SIZE

/** The binary message (Uint8Array) carrying {id, offset, data}. */
export function encodeChunk({ id, offset, data }) {
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new Error("xfer_data.id out of range");
  if (!Number.isInteger(offset) || offset < 0 || offset > MAX_OFFSET) throw new Error("xfer_data.offset out of range");
  if (!(data instanceof Uint8Array) || data.length < 1 || data.length > MAX_CHUNK) {
    throw new Error(`xfer_data holds 1..${MAX_CHUNK} bytes`);
  }
  const frame = new Uint8Array(CHUNK_HEADER_SIZE + data.length);
  const view = new DataView(frame.buffer);
  view.setUint8(0, CHUNK_KIND);
  view.setUint32(4, id);
  view.setUint32(8, Math.floor(offset / 2 ** 32));
  view.setUint32(12, offset >>> 0);
  view.setUint32(16, data.length);
  frame.set(data, CHUNK_HEADER_SIZE);
  return frame;
}

/** Parse one binary message of kind 2 (ArrayBuffer or Uint8Array); ProtocolError if bad. */
export function decodeChunk(data) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length > CHUNK_HEADER_SIZE + MAX_CHUNK) {
    throw new ProtocolError(`xfer_data exceeds ${CHUNK_HEADER_SIZE + MAX_CHUNK} bytes`, CLOSE.TOO_BIG);
  }
  if (bytes.length < CHUNK_HEADER_SIZE) throw new ProtocolError("xfer_data shorter than its header");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint8(0) !== CHUNK_KIND || view.getUint8(1) !== 0 || view.getUint16(2) !== 0) {
    throw new ProtocolError("xfer_data kind or reserved bytes are wrong");
  }
  const offset = view.getUint32(8) * 2 ** 32 + view.getUint32(12);
  if (offset > MAX_OFFSET) throw new ProtocolError("xfer_data.offset out of range");
  const length = view.getUint32(16);
  if (length < 1 || length > MAX_CHUNK || length !== bytes.length - CHUNK_HEADER_SIZE) {
    throw new ProtocolError("xfer_data length is 0, too large, or not the payload's");
  }
  return { t: "xfer_data", id: view.getUint32(4), offset, data: bytes.subarray(CHUNK_HEADER_SIZE) };
}

/** The kind byte of a binary message: 1 an update, 2 a chunk, anything else refused later. */
export function binaryKind(data) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  return bytes.length > 0 ? bytes[0] : 0;
}
