// The rdesk protocol's codec, version 1, for the browser: limits, close codes, message schemas,
// control messages (parsed by strictjson.js), and the binary update format (docs/protocol.md). A mirror of rdesk/protocol/
// (codec.py, messages.py, limits.py, errors.py); tests/vectors/protocol.json is checked
// against both, so a change on one side that the other does not follow fails a test.
//
// Pure functions: text or bytes in, messages out. Every value from the host is checked before
// it is used; a fault of the host throws ProtocolError with the close code to use.

import { MAX_VIDEO_STREAMS, videoRectFault } from "./h264.js";
import { JSONError, parseStrictJSON } from "./strictjson.js";

export const PROTOCOL_NAME = "rdesk";
export const PROTOCOL_VERSION = 1;

// limits.py
export const LIMITS = Object.freeze({
  MAX_CONTROL_MESSAGE: 16 * 1024,
  MAX_UPDATE_MESSAGE: 8 * 1024 * 1024,
  MAX_RECTS_PER_UPDATE: 4096,
  MAX_RECT_PAYLOAD: 8 * 1024 * 1024 - 64,
  MAX_SCREEN_SIDE: 16384,
  MAX_STRING: 256,
  MAX_SECRET: 1024,
  MAX_KEYSYM: 0x1fffffff,
  MAX_BUTTON_MASK: 0xff,
  MAX_WHEEL_STEPS: 100,
  MAX_LOGIN_DELAY: 3600,
  MAX_ACK_HOLD_US: 10_000_000,
  NONCE_BYTES: 16,
});

// errors.py CloseCode
export const CLOSE = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  AUTH_FAILED: 4001,
  VERSION_MISMATCH: 4002,
  HANDSHAKE_TIMEOUT: 4003,
  POLICY: 4004,
  UNRESPONSIVE: 4005,
  SHUTDOWN: 4006,
});

// encodings.py
export const ENCODING = Object.freeze({ JPEG: 1, PNG: 2, WEBP: 3, COPY: 4, H264: 5 });

export class ProtocolError extends Error {
  constructor(reason, code = CLOSE.PROTOCOL_ERROR) {
    super(reason);
    this.name = "ProtocolError";
    this.reason = reason;
    this.code = code;
  }
}

// --- schemas (messages.py FIELDS) -------------------------------------------------------------

const L = LIMITS;
const int = (lo, hi) => ({ kind: "int", lo, hi });
const str = (max, min = 0) => ({ kind: "str", min, max });
const bool = () => ({ kind: "bool" });
const oneOf = (...values) => ({ kind: "oneOf", values });
// fields.py MayOmit: a member a sender may leave out (undefined here, absent on the wire).
const mayOmit = (field) => ({ kind: "mayOmit", field });

const U16 = int(0, 0xffff);
const U32 = int(0, 0xffffffff);
const SIDE = int(1, L.MAX_SCREEN_SIDE);
const COORD = int(0, L.MAX_SCREEN_SIDE - 1);
const NAME = str(L.MAX_STRING);
const NONCE_LEN = 4 * Math.ceil(L.NONCE_BYTES / 3);
const NONCE = str(NONCE_LEN, NONCE_LEN);
const WHEEL = int(-L.MAX_WHEEL_STEPS, L.MAX_WHEEL_STEPS);

// transfer.py and pacer.py: CHUNK most bytes per xfer_data (a binary chunk, chunks.js),
// MIN_CHUNK the smallest a paced sender picks, CHUNK_TIME seconds of the link a chunk takes at
// least, CHUNKS_PER_BUDGET, RATE_WINDOW seconds a rate sample spans at least, BW_ROUNDS rate
// windows the largest sample is kept, WINDOW chunks of credit given back every CREDIT_BATCH,
// QUEUE_TARGET seconds of queue a paced sender allows, names of 255 bytes.
export const XFER = Object.freeze({
  CHUNK: 256 * 1024, MIN_CHUNK: 4 * 1024, CHUNK_TIME: 0.002, CHUNKS_PER_BUDGET: 12, RATE_WINDOW: 0.05,
  BW_ROUNDS: 10, WINDOW: 16, CREDIT_BATCH: 2, QUEUE_TARGET: 1 / 160, MAX_FILE_SIZE: 2 ** 40,
  MAX_NAME_BYTES: 255,
});
const XNAME = str(XFER.MAX_NAME_BYTES);
const XSIZE = int(0, XFER.MAX_FILE_SIZE);
const XSHA = str(64);

// clipboard.py: CHUNK_BYTES of UTF-8 per clip_data (as base64), offers of at most 64 MiB.
export const CLIP = Object.freeze({ CHUNK_BYTES: 11 * 1024, MAX_CLIP_BYTES: 64 * 2 ** 20 });
const SELECTION = oneOf("clipboard", "primary");

// cursor.py: cursors of at most 256x256, their PNG in chunks of 11 KiB.
export const CURSOR = Object.freeze({ MAX_SIDE: 256, MAX_PNG: 300 * 1024, CHUNK_BYTES: 11 * 1024, CACHE_SIZE: 32 });

// resize.py: the sides a viewer may ask its virtual desktop to take.
export const RESIZE = Object.freeze({ MIN_SIDE: 16, MAX_SIDE: 8192 });

// Field order is the order of messages.py (and of the JSON this side writes).
export const SCHEMAS = Object.freeze({
  hello: { protocol: oneOf(PROTOCOL_NAME), version: U16, nonce: NONCE, methods: str(L.MAX_STRING), server: NAME },
  auth: { version: U16, nonce: NONCE, method: oneOf("password", "certificate"), secret: str(L.MAX_SECRET), name: NAME },
  welcome: { role: oneOf("control", "view"), viewer_id: U32, width: SIDE, height: SIDE, name: NAME },
  screen: { width: SIDE, height: SIDE },
  ack: { seq: U32, hold_us: mayOmit(int(0, L.MAX_ACK_HOLD_US)) },
  ping: { id: U32 },
  pong: { id: U32 },
  pointer: { x: COORD, y: COORD, buttons: int(0, L.MAX_BUTTON_MASK) },
  wheel: { x: COORD, y: COORD, dx: WHEEL, dy: WHEEL },
  key: { keysym: int(1, L.MAX_KEYSYM), down: bool() },
  sync: { id: U32 },
  input_ack: { id: U32, ok: bool(), reason: NAME },
  refresh: {},
  prefs: { quality: int(0, 100), max_fps: int(0, 240), max_bandwidth: U32 },
  close: { code: int(1000, 4999), reason: NAME },
  peer: { id: U32, name: NAME, access: oneOf("control", "view"), present: bool() },
  control: { holder: U32 },
  request_control: {},
  release_control: {},
  control_request: { id: U32, name: NAME },
  answer_control: { id: U32, grant: bool() },
  notice: { text: NAME, delay: int(0, L.MAX_LOGIN_DELAY) },
  xfer_list: { id: U32 },
  xfer_put: { id: U32, name: XNAME, size: XSIZE },
  xfer_get: { id: U32, name: XNAME },
  xfer_ready: { id: U32, name: XNAME, size: XSIZE },
  xfer_entry: { id: U32, name: XNAME, size: XSIZE },
  xfer_credit: { id: U32, chunks: int(1, XFER.WINDOW) },
  xfer_end: { id: U32, sha256: XSHA },
  xfer_cancel: { id: U32, reason: NAME },
  xfer_done: { id: U32, ok: bool(), name: XNAME, size: XSIZE, sha256: XSHA, reason: NAME },
  clip_offer: { id: U32, selection: SELECTION, size: int(0, CLIP.MAX_CLIP_BYTES) },
  clip_data: { id: U32, data: str(4 * Math.ceil(CLIP.CHUNK_BYTES / 3)) },
  clip_result: { id: U32, ok: bool(), reason: NAME },
  clip_get: { id: U32, selection: SELECTION },
  cursor: {
    serial: U32, width: int(1, CURSOR.MAX_SIDE), height: int(1, CURSOR.MAX_SIDE),
    xhot: int(0, CURSOR.MAX_SIDE - 1), yhot: int(0, CURSOR.MAX_SIDE - 1), size: int(1, CURSOR.MAX_PNG),
  },
  cursor_data: { serial: U32, data: str(4 * Math.ceil(CURSOR.CHUNK_BYTES / 3)) },
  cursor_use: { serial: U32 },
  monitor: {
    index: int(0, 63), count: int(1, 64), name: NAME, x: int(-L.MAX_SCREEN_SIDE, L.MAX_SCREEN_SIDE),
    y: int(-L.MAX_SCREEN_SIDE, L.MAX_SCREEN_SIDE), width: SIDE, height: SIDE, primary: bool(),
  },
  monitor_current: { index: int(-1, 63) },
  select_monitor: { index: int(-1, 63) },
  video: { codecs: str(64) },
  keyframe: { stream: int(0, MAX_VIDEO_STREAMS - 1) },
  video_end: { stream: int(0, MAX_VIDEO_STREAMS - 1) },
  ack_hold: {},
  resize: {
    id: U32, width: int(RESIZE.MIN_SIDE, RESIZE.MAX_SIDE), height: int(RESIZE.MIN_SIDE, RESIZE.MAX_SIDE),
  },
  resize_result: { id: U32, ok: bool(), width: SIDE, height: SIDE, reason: NAME },
});

// Control.holder values that are not a viewer (presence.py NOBODY, LOCAL_USER).
export const NOBODY = 0;
export const LOCAL_USER = 0xffffffff;

function checkField(spec, value) {
  switch (spec.kind) {
    case "int":
      if (typeof value !== "number" || !Number.isInteger(value) || value < spec.lo || value > spec.hi) {
        return `an integer in [${spec.lo}, ${spec.hi}]`;
      }
      return null;
    case "str": {
      if (typeof value !== "string") return `a string of ${spec.min}..${spec.max} characters`;
      let n = 0;
      for (let i = 0; i < value.length; i++) {
        const c = value.charCodeAt(i);
        // C0, DEL, C1 and the bidi embeddings/overrides/isolates: fields.py's _REFUSED
        // exactly (docs/protocol.md §2); the bidi marks U+200E/U+200F/U+061C pass.
        if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0x202a && c <= 0x202e) ||
            (c >= 0x2066 && c <= 0x2069)) {
          return "a string without control characters";
        }
        if (c >= 0xd800 && c <= 0xdbff) {
          const d = i + 1 < value.length ? value.charCodeAt(i + 1) : 0;
          if (d < 0xdc00 || d > 0xdfff) return "a string without lone surrogates";
          i++;
        } else if (c >= 0xdc00 && c <= 0xdfff) {
          return "a string without lone surrogates";
        }
        n++; // code points, as Python's len()
      }
      if (n < spec.min || n > spec.max) return `a string of ${spec.min}..${spec.max} characters`;
      return null;
    }
    case "bool":
      return typeof value === "boolean" ? null : "a boolean";
    case "oneOf":
      return typeof value === "string" && spec.values.includes(value) ? null : `one of ${spec.values.join(", ")}`;
    case "mayOmit":
      return checkField(spec.field, value);
    default:
      throw new Error("bad schema");
  }
}

const utf8 = new TextEncoder();

function utf8Length(text) {
  return utf8.encode(text).length;
}

/** Decode one control message (a websocket text message) into {t, ...fields}. */
export function decodeControl(text) {
  if (typeof text !== "string") throw new ProtocolError("control message is not text");
  if (text.length > L.MAX_CONTROL_MESSAGE || utf8Length(text) > L.MAX_CONTROL_MESSAGE) {
    throw new ProtocolError(`control message exceeds ${L.MAX_CONTROL_MESSAGE} bytes`, CLOSE.TOO_BIG);
  }
  let obj;
  try {
    obj = parseStrictJSON(text);
  } catch (err) {
    if (err instanceof JSONError) throw new ProtocolError(err.message);
    throw err;
  }
  if (!(obj instanceof Map)) throw new ProtocolError("message is not a JSON object");
  const t = obj.get("t");
  if (typeof t !== "string" || !Object.prototype.hasOwnProperty.call(SCHEMAS, t)) {
    throw new ProtocolError("unknown message type");
  }
  const schema = SCHEMAS[t];
  for (const key of obj.keys()) {
    if (key !== "t" && !Object.prototype.hasOwnProperty.call(schema, key)) {
      throw new ProtocolError(`${t}: unexpected field`);
    }
  }
  const message = { t };
  for (const [name, spec] of Object.entries(schema)) {
    if (!obj.has(name) && spec.kind === "mayOmit") continue; // left out: stays undefined
    if (!obj.has(name)) throw new ProtocolError(`${t}: missing field ${name}`);
    const value = obj.get(name);
    const wanted = checkField(spec, value);
    if (wanted !== null) throw new ProtocolError(`${t}.${name} must be ${wanted}`);
    message[name] = value === 0 ? 0 : value; // -0 → 0, as Python's int
  }
  return message;
}

/** Encode a control message {t, ...fields}; throws Error (our bug) if it is not valid. */
export function encodeControl(message) {
  const schema = SCHEMAS[message.t];
  if (!schema) throw new Error(`not an rdesk message: ${message.t}`);
  const out = { t: message.t };
  for (const [name, spec] of Object.entries(schema)) {
    if (message[name] === undefined && spec.kind === "mayOmit") continue; // the peer may not know it
    const wanted = checkField(spec, message[name]);
    if (wanted !== null) throw new Error(`${message.t}.${name} must be ${wanted}`);
    out[name] = message[name];
  }
  for (const key of Object.keys(message)) {
    if (key !== "t" && !(key in schema)) throw new Error(`${message.t}: unexpected field ${key}`);
  }
  const text = JSON.stringify(out);
  if (utf8Length(text) > L.MAX_CONTROL_MESSAGE) throw new Error("control message too large");
  return text;
}

// --- binary updates (codec.py) ----------------------------------------------------------------

export const HEADER_SIZE = 16;
export const RECT_HEADER_SIZE = 14;
export const FLAG_EXACT = 0x01;
const UPDATE_KIND = 1;

function checkRect(rect) {
  const S = L.MAX_SCREEN_SIDE;
  if (rect.x >= S || rect.y >= S) throw new ProtocolError("rect position out of range");
  if (rect.w < 1 || rect.w > S || rect.h < 1 || rect.h > S) throw new ProtocolError("rect size out of range");
  if (rect.x + rect.w > S || rect.y + rect.h > S) throw new ProtocolError("rect extends past the largest screen");
  const n = rect.payload.length;
  if (n < 1 || n > L.MAX_RECT_PAYLOAD) throw new ProtocolError("rect payload is empty or too large");
  if (rect.encoding === ENCODING.COPY) {
    if (n !== 4) throw new ProtocolError("copy rect payload must be 4 bytes");
    const [sx, sy] = copySource(rect);
    if (sx + rect.w > S || sy + rect.h > S) throw new ProtocolError("copy rect source extends past the largest screen");
  } else if (rect.encoding === ENCODING.H264) {
    const fault = videoRectFault(rect);
    if (fault !== null) throw new ProtocolError(fault);
  }
}

/** The (src_x, src_y) of a COPY rect's 4-byte payload. */
export function copySource(rect) {
  const p = rect.payload;
  return [(p[0] << 8) | p[1], (p[2] << 8) | p[3]];
}

/**
 * Decode one update (a websocket binary message: ArrayBuffer or Uint8Array) into
 * {seq, timestamp_us (BigInt), exact, rects: [{x, y, w, h, encoding, payload: Uint8Array}]}.
 */
export function decodeUpdate(data) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length > L.MAX_UPDATE_MESSAGE) {
    throw new ProtocolError(`update exceeds ${L.MAX_UPDATE_MESSAGE} bytes`, CLOSE.TOO_BIG);
  }
  if (bytes.length < HEADER_SIZE) throw new ProtocolError("update shorter than its header");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const kind = view.getUint8(0);
  const flags = view.getUint8(1);
  if (kind !== UPDATE_KIND || (flags & ~FLAG_EXACT) !== 0) {
    throw new ProtocolError("unknown binary message kind or flags");
  }
  const nrects = view.getUint16(2);
  if (nrects > L.MAX_RECTS_PER_UPDATE) throw new ProtocolError("update has too many rects");
  const seq = view.getUint32(4);
  const timestamp_us = view.getBigUint64(8);
  let offset = HEADER_SIZE;
  const rects = [];
  for (let k = 0; k < nrects; k++) {
    if (offset + RECT_HEADER_SIZE > bytes.length) throw new ProtocolError("update truncated in a rect header");
    const x = view.getUint16(offset);
    const y = view.getUint16(offset + 2);
    const w = view.getUint16(offset + 4);
    const h = view.getUint16(offset + 6);
    const encoding = view.getUint8(offset + 8);
    const reserved = view.getUint8(offset + 9);
    const length = view.getUint32(offset + 10);
    offset += RECT_HEADER_SIZE;
    if (reserved !== 0) throw new ProtocolError("rect reserved byte is not zero");
    // Checked against what is left *before* the payload is touched (docs/protocol.md §4).
    if (length > bytes.length - offset) throw new ProtocolError("rect payload runs past the end of the update");
    if (encoding < ENCODING.JPEG || encoding > ENCODING.H264) throw new ProtocolError("rect has an unknown encoding");
    const rect = { x, y, w, h, encoding, payload: bytes.subarray(offset, offset + length) };
    checkRect(rect);
    rects.push(rect);
    offset += length;
  }
  if (offset !== bytes.length) throw new ProtocolError("trailing bytes after the last rect");
  return { seq, timestamp_us, exact: (flags & FLAG_EXACT) !== 0, rects };
}
