// core/connection.js over a fake socket and a fake clock: the handshake, the one timer driver
// (keepalive, pong and handshake deadlines), acks after painting, and closing with a reason.

import assert from "node:assert/strict";
import { test } from "node:test";

import { CLOSE } from "../../rdesk/web/core/codec.js";
import { Connection } from "../../rdesk/web/core/connection.js";
import { FakeClock, FakeSocket, NONCE, hello, welcome } from "./helpers.mjs";

/** A display whose paints finish when the test says so. */
class FakeDisplay {
  constructor() {
    this.log = [];
    this.pending = [];
  }

  resize(w, h) {
    this.log.push(`resize ${w}x${h}`);
  }

  paint(update) {
    this.log.push(`paint ${update.seq}`);
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
  }
}

function open(options = {}) {
  const clock = new FakeClock(1000);
  const display = new FakeDisplay();
  const events = [];
  const c = new Connection({
    url: "wss://host:1/rdesk",
    secret: "pw",
    name: "test viewer",
    display,
    now: clock.now,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    WebSocket: FakeSocket,
    ...options,
  });
  for (const type of ["active", "message", "resized", "painted", "close"]) c.on(type, (d) => events.push([type, d]));
  c.open();
  const socket = FakeSocket.instances.at(-1);
  return { c, clock, display, events, socket };
}

function activate(t) {
  t.socket.deliver(hello());
  t.socket.deliver(welcome(64, 48));
}

const closes = (events) => events.filter(([type]) => type === "close").map(([, d]) => d);

/** A 1x1 update at (0, 0) with sequence number `seq` (a PNG-encoded rect; never decoded here). */
function update(seq) {
  const payload = [1, 2, 3];
  const bytes = new Uint8Array(16 + 14 + payload.length);
  const v = new DataView(bytes.buffer);
  v.setUint8(0, 1);
  v.setUint16(2, 1);
  v.setUint32(4, seq);
  v.setUint16(16 + 4, 1);
  v.setUint16(16 + 6, 1);
  v.setUint8(16 + 8, 2);
  v.setUint32(16 + 10, payload.length);
  bytes.set(payload, 30);
  return bytes.buffer;
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test("hello is answered with auth, welcome makes it active with the screen's size", () => {
  const t = open();
  assert.equal(t.socket.url, "wss://host:1/rdesk");
  assert.equal(t.socket.binaryType, "arraybuffer");
  t.socket.deliver(hello());
  assert.deepEqual(t.socket.messages(), [
    { t: "auth", version: 1, nonce: NONCE, method: "password", secret: "pw", name: "test viewer" },
  ]);
  assert.equal(t.c.secret, null); // sent once, not kept
  assert.equal(t.c.active, false);
  t.socket.deliver(welcome(64, 48, "view"));
  assert.equal(t.c.active, true);
  assert.equal(t.c.role, "view");
  assert.deepEqual(t.display.log, ["resize 64x48"]);
  assert.deepEqual(t.events.map(([type]) => type), ["resized", "active", "message"]);
});

test("one timer at a time: the keepalive goes out after 15 s, the host's ping is answered", () => {
  const t = open();
  assert.equal(t.clock.timers.size, 1); // the handshake deadline
  activate(t);
  assert.equal(t.clock.timers.size, 1); // now the keepalive
  t.socket.sent.length = 0;
  t.socket.deliver(JSON.stringify({ t: "ping", id: 41 }));
  assert.deepEqual(t.socket.messages(), [{ t: "pong", id: 41 }]);
  t.clock.advance(14999);
  assert.equal(t.socket.sent.length, 1);
  t.clock.advance(1);
  assert.deepEqual(t.socket.messages().at(-1), { t: "ping", id: 1 });
  assert.equal(t.clock.timers.size, 1);
  t.clock.advance(30);
  t.socket.deliver(JSON.stringify({ t: "pong", id: 1 }));
  assert.equal(t.c.session.rtt, 30);
  assert.deepEqual(closes(t.events), []);
});

test("a host that stops answering pings is closed as unresponsive", () => {
  const t = open();
  activate(t);
  t.clock.advance(15000);
  t.clock.advance(19999);
  assert.deepEqual(closes(t.events), []);
  t.clock.advance(1);
  assert.deepEqual(closes(t.events), [{ code: CLOSE.UNRESPONSIVE, reason: "host did not answer a ping" }]);
  assert.deepEqual(t.socket.messages().at(-1), { t: "close", code: 4005, reason: "host did not answer a ping" });
  assert.deepEqual(t.socket.closedWith, [4005, ""]);
  assert.equal(t.clock.timers.size, 0);
  assert.equal(t.c.active, false);
  t.socket.drop(); // the socket's own close afterwards is not a second event
  assert.equal(closes(t.events).length, 1);
});

test("an on-demand ping shares the keepalive's slot and timeout", () => {
  const t = open();
  activate(t);
  t.clock.advance(5000);
  assert.equal(t.c.ping(), true);
  assert.equal(t.c.ping(), false);
  t.clock.advance(19999);
  assert.deepEqual(closes(t.events), []);
  t.clock.advance(1);
  assert.equal(closes(t.events)[0].code, CLOSE.UNRESPONSIVE);
  assert.equal(t.socket.messages().filter((m) => m.t === "ping").length, 1);
});

test("traffic does not push back a wake-up that is due", () => {
  const t = open();
  activate(t);
  t.c.ping();
  const [armed] = t.clock.timers.keys();
  // The page slept through the pong's deadline (its timers did not run); messages keep coming
  // before the timer gets its turn, each one asking for the timer to be set.
  t.clock.time += 25000;
  for (let id = 1; id <= 5; id++) {
    t.socket.deliver(JSON.stringify({ t: "ping", id }));
    t.c.ping();
  }
  assert.deepEqual([...t.clock.timers.keys()], [armed]);
  assert.deepEqual(closes(t.events), []);
  t.clock.advance(0);
  assert.equal(closes(t.events)[0].code, CLOSE.UNRESPONSIVE);
});

test("a handshake the host does not finish in 10 s is closed", () => {
  const t = open();
  t.socket.deliver(hello());
  t.clock.advance(9999);
  assert.deepEqual(closes(t.events), []);
  t.clock.advance(1);
  assert.deepEqual(closes(t.events), [{ code: CLOSE.HANDSHAKE_TIMEOUT, reason: "handshake not completed in time" }]);
  assert.deepEqual(t.socket.closedWith, [4003, ""]);
});

test("updates are acked after they are painted, in order with size changes", async () => {
  const t = open();
  activate(t);
  t.socket.sent.length = 0;
  t.socket.deliver(update(1));
  t.socket.deliver(JSON.stringify({ t: "screen", width: 32, height: 32 }));
  t.socket.deliver(update(2));
  assert.deepEqual(t.display.log, ["resize 64x48", "paint 1"]);
  assert.deepEqual(t.socket.sent, []); // not painted yet: no ack
  t.display.pending.shift().resolve();
  await settle();
  assert.deepEqual(t.socket.messages(), [{ t: "ack", seq: 1 }]);
  assert.deepEqual(t.display.log, ["resize 64x48", "paint 1", "resize 32x32", "paint 2"]);
  t.display.pending.shift().resolve();
  await settle();
  assert.deepEqual(t.socket.messages(), [{ t: "ack", seq: 1 }, { t: "ack", seq: 2 }]);
  const painted = t.events.filter(([type]) => type === "painted").map(([, u]) => u.seq);
  assert.deepEqual(painted, [1, 2]);
});

test("an image that cannot be painted closes with a fixed reason", async () => {
  const t = open();
  activate(t);
  t.socket.deliver(update(1));
  t.display.pending.shift().reject(new TypeError("internal detail"));
  await settle();
  assert.deepEqual(closes(t.events), [{ code: CLOSE.PROTOCOL_ERROR, reason: "cannot decode an image" }]);
});

test("a host's protocol fault closes with its code; a drop reports the websocket's", () => {
  const t = open();
  t.socket.deliver(hello(2));
  assert.deepEqual(closes(t.events), [
    { code: CLOSE.VERSION_MISMATCH, reason: "host speaks rdesk protocol version 2, this viewer speaks 1" },
  ]);
  assert.equal(t.socket.messages().at(-1).t, "close");
  const u = open();
  activate(u);
  u.socket.drop(1006);
  assert.deepEqual(closes(u.events), [{ code: 1006, reason: "" }]);
  assert.equal(u.clock.timers.size, 0);
  assert.equal(u.c.send({ t: "refresh" }), false);
});

test("the host's close frame names the close; what follows it is ignored", () => {
  const t = open();
  activate(t);
  t.socket.deliver(JSON.stringify({ t: "close", code: 4006, reason: "shutting down" }));
  t.socket.deliver(update(1)); // after its close: not an error, not painted
  assert.deepEqual(t.display.log, ["resize 64x48"]);
  t.socket.drop(1000);
  assert.deepEqual(closes(t.events), [{ code: 4006, reason: "shutting down" }]);
});

test("close(code, reason) sends the close frame and hangs up once", () => {
  const t = open();
  activate(t);
  t.c.close(CLOSE.GOING_AWAY, "page left");
  t.c.close(CLOSE.NORMAL, "again");
  assert.deepEqual(t.socket.messages().at(-1), { t: "close", code: 1001, reason: "page left" });
  assert.deepEqual(t.socket.closedWith, [1000, ""]); // a page may only close with 1000 or 3000+
  assert.deepEqual(closes(t.events), [{ code: 1001, reason: "page left" }]);
});

test("video_end waits in the paint queue behind the updates before it", async () => {
  const t = open();
  t.display.endVideo = (stream) => t.display.log.push(`video_end ${stream}`);
  activate(t);
  t.socket.deliver(update(1));
  t.socket.deliver(JSON.stringify({ t: "video_end", stream: 3 }));
  t.socket.deliver(update(2));
  assert.deepEqual(t.display.log, ["resize 64x48", "paint 1"]); // update 1 still painting
  t.display.pending.shift().resolve();
  await settle();
  assert.deepEqual(t.display.log, ["resize 64x48", "paint 1", "video_end 3", "paint 2"]);
  assert.equal(t.c.active, true);
});

test("acks carry the hold time (receipt to ack) only once the host sent ack_hold", async () => {
  const t = open();
  t.display.startVideo = () => "h264";
  activate(t);
  assert.deepEqual(t.socket.messages().filter((m) => m.t === "video"), [{ t: "video", codecs: "h264,hold" }]);
  t.socket.sent.length = 0;
  t.socket.deliver(update(1));
  t.clock.advance(5);
  t.display.pending.shift().resolve();
  await settle();
  assert.deepEqual(t.socket.messages(), [{ t: "ack", seq: 1 }]); // an older host refuses hold_us
  t.socket.deliver(JSON.stringify({ t: "ack_hold" }));
  t.socket.sent.length = 0;
  t.socket.deliver(update(2));
  t.socket.deliver(update(3)); // waits behind 2's paint: that wait is held too
  t.clock.advance(12.5);
  t.display.pending.shift().resolve();
  await settle();
  t.clock.advance(7.5);
  t.display.pending.shift().resolve();
  await settle();
  assert.deepEqual(t.socket.messages(), [
    { t: "ack", seq: 2, hold_us: 12500 },
    { t: "ack", seq: 3, hold_us: 20000 },
  ]);
});
