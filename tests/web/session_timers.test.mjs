// The viewer session's timers (core/protocol.js) against rdesk/protocol/session.py's contract:
// handshake deadline, keepalive, pong timeout, the on-demand ping and its round trip.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  CLOSE,
  HANDSHAKE_TIMEOUT_MS,
  PING_INTERVAL_MS,
  PING_TIMEOUT_MS,
  ProtocolError,
  STATE,
  ViewerSession,
} from "../../rdesk/web/core/protocol.js";
import { hello, welcome } from "./helpers.mjs";

const pong = (id) => JSON.stringify({ t: "pong", id });

/** A session made at `start` and active at `activeAt`. */
function active(start, activeAt, options) {
  const s = new ViewerSession(start, options);
  s.receive(hello(), start);
  s.auth("secret", "test");
  s.receive(welcome(), activeAt);
  assert.equal(s.state, STATE.ACTIVE);
  return s;
}

const throwsCode = (fn, code) =>
  assert.throws(fn, (err) => err instanceof ProtocolError && err.code === code, `want close code ${code}`);

test("the timers are session.py's, in milliseconds", () => {
  assert.equal(HANDSHAKE_TIMEOUT_MS, 10000);
  assert.equal(PING_INTERVAL_MS, 15000);
  assert.equal(PING_TIMEOUT_MS, 20000);
});

test("the handshake must finish within 10 s of the start", () => {
  const s = new ViewerSession(1000);
  assert.equal(s.nextDeadline(), 11000);
  assert.deepEqual(s.handleTimer(10999), []);
  s.receive(hello(), 2000);
  s.auth("secret", "test");
  assert.equal(s.nextDeadline(), 11000); // hello and auth do not move it
  throwsCode(() => s.handleTimer(11000), CLOSE.HANDSHAKE_TIMEOUT);
});

test("once active: no handshake deadline, a keepalive ping 15 s later, then every 15 s", () => {
  const s = active(0, 3000);
  assert.equal(s.nextDeadline(), 18000);
  assert.deepEqual(s.handleTimer(17999), []);
  const frames = s.handleTimer(18000);
  assert.deepEqual(frames.map((f) => JSON.parse(f)), [{ t: "ping", id: 1 }]);
  s.receive(pong(1), 18040);
  assert.equal(s.nextDeadline(), 33000);
  assert.deepEqual(s.handleTimer(33000).map((f) => JSON.parse(f)), [{ t: "ping", id: 2 }]);
});

test("a ping unanswered for 20 s makes the host unresponsive; the keepalive sends no second one", () => {
  const s = active(0, 0);
  assert.equal(s.handleTimer(15000).length, 1);
  assert.equal(s.nextDeadline(), 30000); // the next keepalive comes before the pong's deadline
  assert.deepEqual(s.handleTimer(30000), []); // one ping outstanding at a time
  assert.equal(s.nextDeadline(), 35000);
  s.receive(pong(99), 34000); // not the outstanding ping's id: ignored
  assert.equal(s.rtt, null);
  assert.deepEqual(s.handleTimer(34999), []);
  throwsCode(() => s.handleTimer(35000), CLOSE.UNRESPONSIVE);
});

test("the pong of the outstanding ping sets rtt and minRtt", () => {
  const s = active(0, 0);
  s.handleTimer(15000);
  s.receive(pong(1), 15250);
  assert.equal(s.rtt, 250);
  assert.equal(s.minRtt, 250);
  s.ping(16000);
  s.receive(pong(2), 16100);
  assert.deepEqual([s.rtt, s.minRtt], [100, 100]);
  s.ping(17000);
  s.receive(pong(3), 17300);
  assert.deepEqual([s.rtt, s.minRtt], [300, 100]);
  s.receive(pong(3), 17400); // answered already: changes nothing
  assert.deepEqual([s.rtt, s.minRtt], [300, 100]);
});

test("ping(now) on demand shares the one slot and moves the next keepalive", () => {
  const s = active(0, 0);
  assert.equal(new ViewerSession(0).ping(0), null); // not active yet
  assert.deepEqual(JSON.parse(s.ping(4000)), { t: "ping", id: 1 });
  assert.equal(s.ping(4001), null); // outstanding
  assert.equal(s.nextDeadline(), 19000); // keepalive 15 s after it, pong due at 24000
  s.receive(pong(1), 4010);
  assert.equal(s.rtt, 10);
  assert.deepEqual(s.handleTimer(18999), []);
  assert.deepEqual(s.handleTimer(19000).map((f) => JSON.parse(f)), [{ t: "ping", id: 2 }]);
  // The on-demand ping's pong is awaited with the same timeout.
  const t = active(0, 0);
  t.ping(1000);
  assert.equal(t.nextDeadline(), 16000);
  t.handleTimer(16000); // keepalive due, but the slot is taken
  throwsCode(() => t.handleTimer(21000), CLOSE.UNRESPONSIVE);
});

test("no keepalive when pingInterval is null; custom timeouts are honoured", () => {
  const s = active(0, 500, { pingInterval: null, handshakeTimeout: 1000, pingTimeout: 50 });
  assert.equal(s.nextDeadline(), null);
  s.ping(600);
  assert.equal(s.nextDeadline(), 650);
  throwsCode(() => s.handleTimer(650), CLOSE.UNRESPONSIVE);
  throwsCode(() => new ViewerSession(0, { handshakeTimeout: 1000 }).handleTimer(1000), CLOSE.HANDSHAKE_TIMEOUT);
});

test("after a close, sent or received, no timer is due", () => {
  const s = active(0, 0);
  s.ping(100);
  assert.ok(s.closeFrame(CLOSE.NORMAL, "bye"));
  assert.equal(s.nextDeadline(), null);
  assert.deepEqual(s.handleTimer(1e9), []);
  assert.equal(s.ping(200), null);
  const t = new ViewerSession(0);
  t.receive(JSON.stringify({ t: "close", code: 4006, reason: "bye" }), 5);
  assert.deepEqual(t.closeReason, [4006, "bye"]);
  assert.equal(t.nextDeadline(), null);
  assert.deepEqual(t.handleTimer(20000), []); // past the handshake deadline: nothing
});

const notice = (text, delay) => JSON.stringify({ t: "notice", text, delay });

test("a login delay's notice extends the deadline by its number, and the timeout says it", () => {
  const s = new ViewerSession(0);
  s.receive(hello(), 0);
  s.auth("secret", "test");
  // The text says nothing a parser could read: the number is what counts.
  s.receive(notice("please wait", 17), 1000);
  assert.equal(s.loginDelay, 17);
  assert.equal(s.nextDeadline(), 1000 + 17000 + HANDSHAKE_TIMEOUT_MS);
  assert.throws(() => s.handleTimer(1000 + 17000 + HANDSHAKE_TIMEOUT_MS),
    (err) => err instanceof ProtocolError && err.code === CLOSE.HANDSHAKE_TIMEOUT && /try again in 17 s/.test(err.message));
});

test("a consent notice (delay 0) allows two minutes, and a notice without delay is refused", () => {
  const s = new ViewerSession(0);
  s.receive(hello(), 0);
  s.auth("secret", "test");
  s.receive(notice("waiting for the host's user to accept this connection", 0), 500);
  assert.equal(s.nextDeadline(), 500 + 120000);
  assert.equal(s.loginDelay, 0);
  const t = new ViewerSession(0);
  t.receive(hello(), 0);
  t.auth("secret", "test");
  assert.throws(() => t.receive(JSON.stringify({ t: "notice", text: "old" }), 1), ProtocolError);
});
