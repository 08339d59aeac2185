// core/video.js over a fake WebCodecs decoder and a fake clock: the stream table, key-unit
// rules, keyframe requests, errors and timeouts, frames always closed; FrameBuffer painting a
// video frame in order and closing it on every path; Connection declaring video.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Connection } from "../../rdesk/web/core/connection.js";
import { ENCODING, ProtocolError } from "../../rdesk/web/core/codec.js";
import { FrameBuffer } from "../../rdesk/web/core/framebuffer.js";
import { DECODE_TIMEOUT_MS, decoderConfig, KEYFRAME_EVERY_MS, VideoStreams } from "../../rdesk/web/core/video.js";
import { FakeClock, FakeSocket, hello, welcome } from "./helpers.mjs";

const VECTORS = JSON.parse(readFileSync(new URL("../vectors/h264.json", import.meta.url), "utf-8"));
const vector = (name) => new Uint8Array(Buffer.from(VECTORS.find((v) => v.name === name).data, "base64"));
const KEY_64x48 = vector("libx264 64x48");
const KEY_50000 = vector("50000x50000 key unit");
const DELTA = Uint8Array.of(0, 0, 0, 1, 0x41, 0x9a, 0x02, 0x03);
const SEI_ONLY = Uint8Array.of(0, 0, 0, 1, 0x06, 0x05, 0x01);

class FakeFrame {
  constructor(timestamp) {
    this.timestamp = timestamp;
    this.displayWidth = 64;
    this.displayHeight = 48;
    this.closed = false;
  }

  close() {
    this.closed = true;
  }
}

/** A VideoDecoder whose outputs and errors the test triggers; all instances are kept. */
class FakeDecoder {
  static made = [];

  constructor({ output, error }) {
    this.output = output;
    this.error = error;
    this.state = "unconfigured";
    this.config = null;
    this.chunks = [];
    FakeDecoder.made.push(this);
  }

  configure(config) {
    this.config = config;
    this.state = "configured";
  }

  decode(chunk) {
    if (this.state !== "configured") throw new Error("InvalidStateError");
    this.chunks.push(chunk);
  }

  close() {
    this.state = "closed";
  }

  /** Output a frame for the chunk decoded `k`-th (default: the last). */
  emit(k = this.chunks.length - 1) {
    const frame = new FakeFrame(this.chunks[k].timestamp);
    this.output(frame);
    return frame;
  }
}

class FakeChunk {
  constructor({ type, timestamp, data }) {
    Object.assign(this, { type, timestamp, data: new Uint8Array(data) });
  }
}

function setup() {
  FakeDecoder.made = [];
  const clock = new FakeClock(10_000);
  const video = new VideoStreams({ VideoDecoder: FakeDecoder, EncodedVideoChunk: FakeChunk, now: clock.now, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout });
  const sent = [];
  video.attach((m) => sent.push(m));
  return { video, clock, sent };
}

const rect = (stream, key, unit, x = 0, y = 0, w = 64, h = 48) => {
  const payload = new Uint8Array(4 + unit.length);
  payload.set([stream, key ? 1 : 0, 0, 0]);
  payload.set(unit, 4);
  return { x, y, w, h, encoding: ENCODING.H264, payload };
};

test("a key unit makes a decoder configured from its SPS; frames come back in order", async () => {
  const { video, sent } = setup();
  const first = video.decode(rect(2, true, KEY_64x48));
  assert.equal(FakeDecoder.made.length, 1);
  const decoder = FakeDecoder.made[0];
  assert.deepEqual(decoder.config, { codec: "avc1.42C00A", codedWidth: 64, codedHeight: 48, optimizeForLatency: true });
  assert.equal(decoder.chunks[0].type, "key");
  const frame = decoder.emit();
  assert.equal(await first, frame);
  const second = video.decode(rect(2, false, DELTA));
  const third = video.decode(rect(2, false, DELTA));
  assert.equal(decoder.chunks[1].type, "delta");
  // The decoder skipped the second chunk: it gets null, the third its frame.
  const out = decoder.emit(2);
  assert.equal(await second, null);
  assert.equal(await third, out);
  assert.equal(FakeDecoder.made.length, 1);
  assert.deepEqual(sent, []);
});

test("a non-key unit without a decoder is dropped and one key unit asked for per interval", async () => {
  const { video, clock, sent } = setup();
  assert.equal(await video.decode(rect(1, false, DELTA)), null);
  assert.equal(await video.decode(rect(1, false, DELTA)), null);
  assert.deepEqual(sent, [{ t: "keyframe", stream: 1 }]);
  clock.advance(KEYFRAME_EVERY_MS);
  assert.equal(await video.decode(rect(1, false, DELTA)), null);
  assert.equal(sent.length, 2);
  assert.equal(FakeDecoder.made.length, 0);
});

test("key units whose SPS does not fit the rect never reach a decoder", async () => {
  const { video, sent } = setup();
  assert.equal(await video.decode(rect(0, true, KEY_50000)), null);
  assert.equal(await video.decode(rect(3, true, KEY_64x48, 0, 0, 64, 64)), null);
  assert.equal(await video.decode(rect(4, true, KEY_64x48.subarray(0, 20))), null); // truncated
  assert.equal(FakeDecoder.made.length, 0);
  assert.deepEqual(sent.map((m) => m.stream), [0, 3, 4]);
  assert.equal(video.counts.dropped, 3);
});

test("a refused key unit also drops the stream's old decoder", async () => {
  const { video } = setup();
  video.decode(rect(0, true, KEY_64x48));
  const old = FakeDecoder.made[0];
  assert.equal(await video.decode(rect(0, true, KEY_50000)), null);
  assert.equal(old.state, "closed");
  assert.equal(await video.decode(rect(0, false, DELTA)), null);
});

test("a decoder error drops that stream only and asks for a key unit", async () => {
  const { video, sent } = setup();
  const a = video.decode(rect(0, true, KEY_64x48));
  const b = video.decode(rect(1, true, KEY_64x48, 64, 0));
  const [da, db] = FakeDecoder.made;
  da.error(new Error("corrupt"));
  assert.equal(await a, null);
  assert.equal(da.state, "closed");
  assert.deepEqual(sent, [{ t: "keyframe", stream: 0 }]);
  const frame = db.emit();
  assert.equal(await b, frame); // the other stream goes on
  assert.equal(await video.decode(rect(0, false, DELTA)), null);
  // A late frame of the dropped decoder is closed, not shown.
  const late = new FakeFrame(0);
  da.output(late);
  assert.ok(late.closed);
});

test("a unit the decoder never answers times out as an error; SEI-only deltas are refused", async () => {
  const { video, clock, sent } = setup();
  const stuck = video.decode(rect(5, true, KEY_64x48));
  clock.advance(DECODE_TIMEOUT_MS - 1);
  assert.equal(FakeDecoder.made[0].state, "configured");
  clock.advance(1);
  assert.equal(await stuck, null);
  assert.equal(FakeDecoder.made[0].state, "closed");
  assert.deepEqual(sent, [{ t: "keyframe", stream: 5 }]);
  video.decode(rect(6, true, KEY_64x48));
  assert.equal(await video.decode(rect(6, false, SEI_ONLY)), null);
  assert.equal(FakeDecoder.made[1].state, "closed");
});

test("a rect that moved needs a new key unit; a key unit there makes a new decoder", async () => {
  const { video, sent } = setup();
  video.decode(rect(0, true, KEY_64x48));
  assert.equal(await video.decode(rect(0, false, DELTA, 2, 0)), null);
  assert.deepEqual(sent, [{ t: "keyframe", stream: 0 }]);
  video.decode(rect(0, true, KEY_64x48, 2, 0));
  assert.equal(FakeDecoder.made.length, 2);
  assert.equal(FakeDecoder.made[0].state, "closed");
});

test("video_end and reset free decoders; waiting paints get null", async () => {
  const { video } = setup();
  const waiting = video.decode(rect(7, true, KEY_64x48));
  video.end(7);
  assert.equal(await waiting, null);
  assert.equal(FakeDecoder.made[0].state, "closed");
  video.decode(rect(1, true, KEY_64x48));
  video.reset();
  assert.equal(FakeDecoder.made[1].state, "closed");
  assert.equal(video.streams.size, 0);
});

/** A 2D context that records what is drawn. */
function fakeContext(width, height) {
  const drawn = [];
  return {
    drawn,
    canvas: { width, height },
    fillRect() {},
    drawImage(picture, ...args) {
      drawn.push([picture, ...args]);
    },
  };
}

test("FrameBuffer draws the frame at its rect, in order with a later tile, and closes it", async () => {
  const { video } = setup();
  const ctx = fakeContext(128, 96);
  const bitmap = { width: 8, height: 8, closed: false, close() { this.closed = true; } };
  const fb = new FrameBuffer(ctx, { video, decode: () => Promise.resolve(bitmap) });
  const png = Uint8Array.from(Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAgAAAAIAQAAAAA=", "base64"));
  const painting = fb.paint({ seq: 1, exact: false, rects: [rect(0, true, KEY_64x48, 10, 20), { x: 12, y: 22, w: 8, h: 8, encoding: ENCODING.PNG, payload: png }] });
  await new Promise((r) => setImmediate(r));
  const frame = FakeDecoder.made[0].emit();
  await painting;
  assert.deepEqual(ctx.drawn.map(([p, ...a]) => [p === frame ? "frame" : "png", ...a]), [["frame", 10, 20, 64, 48], ["png", 12, 22]]);
  assert.ok(frame.closed && bitmap.closed);
});

test("FrameBuffer closes a decoded frame when another rect of the update fails", async () => {
  const { video } = setup();
  const fb = new FrameBuffer(fakeContext(128, 96), { video });
  const painting = fb.paint({ seq: 1, exact: false, rects: [rect(0, true, KEY_64x48), { x: 0, y: 0, w: 8, h: 8, encoding: ENCODING.PNG, payload: Uint8Array.of(1, 2, 3) }] });
  const frame = FakeDecoder.made[0].emit();
  await assert.rejects(painting, ProtocolError);
  assert.ok(frame.closed);
});

test("FrameBuffer without video refuses a video rect as the host's fault", async () => {
  const fb = new FrameBuffer(fakeContext(128, 96));
  assert.equal(fb.startVideo(() => true), "");
  await assert.rejects(fb.paint({ seq: 1, exact: false, rects: [rect(0, true, KEY_64x48)] }), ProtocolError);
});

test("Connection declares h264 (and hold) after the welcome only when the display has video", () => {
  for (const [codecs, want] of [["h264", [{ t: "video", codecs: "h264,hold" }]], ["", []]]) {
    const clock = new FakeClock(1000);
    const display = { resize() {}, paint: () => Promise.resolve(), startVideo: () => codecs, endVideo() {} };
    const c = new Connection({ url: "wss://h:1/rdesk", secret: "pw", name: "v", display, now: clock.now, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, WebSocket: FakeSocket });
    c.open();
    const socket = FakeSocket.instances.at(-1);
    socket.deliver(hello());
    socket.deliver(welcome(64, 48));
    assert.deepEqual(socket.messages().filter((m) => m.t === "video"), want);
  }
});

test("an untagged stream is decoded as BT.601 limited range; a tagged one as it says", () => {
  const sps = { profile_idc: 66, constraint_flags: 0xc0, level_idc: 30 };
  const bt601 = { primaries: "smpte170m", transfer: "smpte170m", matrix: "smpte170m", fullRange: false };
  assert.deepEqual(decoderConfig(sps, 640, 480, null).colorSpace, bt601);
  assert.deepEqual(decoderConfig(sps, 640, 480, { primaries: 2, transfer: 2, matrix: 2, fullRange: true }).colorSpace, { ...bt601, fullRange: true });
  assert.equal(decoderConfig(sps, 640, 480, { primaries: 1, transfer: 1, matrix: 1, fullRange: false }).colorSpace, undefined);
  const { video } = setup();
  video.decode(rect(0, true, vector("1080p key unit"), 0, 0, 1920, 1080));
  assert.deepEqual(FakeDecoder.made[0].config.colorSpace, bt601);
});
