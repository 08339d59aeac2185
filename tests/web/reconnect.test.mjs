// The reconnect policy (core/reconnect.js): pure logic, time passed in.

import assert from "node:assert/strict";
import { test } from "node:test";

import { CLOSE } from "../../rdesk/web/core/codec.js";
import { BACKOFF_MS, ReconnectPolicy, STABLE_MS } from "../../rdesk/web/core/reconnect.js";

test("nothing is retried before the login's first active connection", () => {
  const p = new ReconnectPolicy();
  assert.equal(p.onClosed(1006, 0), null);
  assert.equal(p.onClosed(CLOSE.GOING_AWAY, 10), null);
});

test("drops of short-lived connections wait 1, 2, 4, 8, 15, then 30 s", () => {
  const p = new ReconnectPolicy();
  let now = 0;
  const delays = [];
  for (let k = 0; k < 8; k++) {
    p.onActive(now);
    now += 500; // dropped soon after it came up
    const next = p.onClosed(1006, now);
    assert.equal(next.at, now + next.delay);
    delays.push(next.delay);
    now = next.at;
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 15000, 30000, 30000, 30000]);
  assert.deepEqual(BACKOFF_MS, [1000, 2000, 4000, 8000, 15000, 30000]);
});

test("failed attempts between active connections keep backing off", () => {
  const p = new ReconnectPolicy();
  p.onActive(0);
  assert.equal(p.onClosed(CLOSE.UNRESPONSIVE, 60000).delay, 1000);
  // The attempts fail before any welcome: the series goes on, it does not give up.
  assert.equal(p.onClosed(1006, 61000).delay, 2000);
  assert.equal(p.onClosed(CLOSE.HANDSHAKE_TIMEOUT, 73000).delay, 4000);
});

test("a connection that stayed up starts the series over", () => {
  const p = new ReconnectPolicy();
  p.onActive(0);
  p.onClosed(1006, 100);
  p.onActive(1100);
  assert.equal(p.onClosed(1006, 1200).delay, 2000);
  p.onActive(3200);
  assert.equal(p.onClosed(1006, 3200 + STABLE_MS - 1).delay, 4000);
  p.onActive(50000);
  assert.equal(p.onClosed(1006, 50000 + STABLE_MS).delay, 1000);
});

test("a refused password or another protocol version ends the login", () => {
  for (const code of [CLOSE.AUTH_FAILED, CLOSE.VERSION_MISMATCH]) {
    const p = new ReconnectPolicy();
    p.onActive(0);
    assert.equal(p.retryable(code), false);
    assert.equal(p.onClosed(code, 1000), null);
    assert.equal(p.everActive, false);
    assert.equal(p.onClosed(1006, 2000), null); // over: nothing more is retried
  }
});

test("start() is a new login: a fresh series", () => {
  const p = new ReconnectPolicy({ delays: [5, 7], stableAfter: 100 });
  p.onActive(0);
  assert.equal(p.onClosed(1006, 1).delay, 5);
  assert.equal(p.onClosed(1006, 2).delay, 7);
  assert.equal(p.onClosed(1006, 3).delay, 7);
  p.start();
  assert.equal(p.onClosed(1006, 4), null);
  p.onActive(5);
  assert.equal(p.onClosed(1006, 6).delay, 5);
});
