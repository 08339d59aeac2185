// core/relaysocket.js over a fake WebSocket, fed the Python tunnel's vectors: what it sends
// the relay, in which order, and what Connection sees (RDESK_TUNNEL_VECTORS names the file).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { relaySocket } from "../../rdesk/web/core/relaysocket.js";

const v = JSON.parse(readFileSync(process.env.RDESK_TUNNEL_VECTORS, "utf8"));
const hex = (s) => Uint8Array.from(s.match(/../g) || [], (b) => parseInt(b, 16));
const toHex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));
// The ServerHello's WebCrypto steps (digests, the signature, ECDH, HKDF) take longer than one
// settle on a loaded machine: wait for what they lead to, bounded.
async function until(predicate, ms = 10000) {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${predicate}`);
    await settle();
  }
}

class FakeWS {
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = 1;
    this.closed = null;
    FakeWS.last = this;
    setTimeout(() => this.onopen && this.onopen(), 0);
  }
  send(data) {
    this.sent.push(typeof data === "string" ? data : toHex(data));
  }
  close(code, reason) {
    if (this.closed) return;
    this.closed = { code, reason };
    this.readyState = 3;
  }
  deliver(data) {
    this.onmessage({ data });
  }
  drop(code, reason) {
    this.readyState = 3;
    this.onclose({ code, reason });
  }
}

async function open(pin = null) {
  const s = globalThis.crypto.subtle;
  const { d, ...pub } = v.viewer_jwk;
  void d;
  const privateKey = await s.importKey("jwk", v.viewer_jwk, { name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
  const publicKey = await s.importKey("jwk", pub, { name: "ECDH", namedCurve: "P-256" }, true, []);
  const verified = [];
  const Socket = relaySocket({
    hostId: v.typed_id, pin, WebSocket: FakeWS, onVerified: (e) => verified.push(e.fingerprint),
    tunnelOptions: { ephemeral: { privateKey, publicKey }, random: hex(v.viewer_random) },
  });
  const socket = new Socket("wss://relay.test/connect");
  const events = { messages: [], close: null };
  socket.onmessage = (e) => events.messages.push(e.data);
  socket.onclose = (e) => (events.close = e);
  await settle();
  return { socket, ws: FakeWS.last, events, verified };
}

test("a spliced tunnel: the same bytes as Python's, in order, and the session's messages", async () => {
  const { socket, ws, events, verified } = await open();
  assert.deepEqual(ws.sent, [JSON.stringify({ t: "connect", id: v.host_id, version: 1 })]);
  assert.equal(socket.readyState, 0);
  ws.deliver(JSON.stringify({ t: "spliced" }));
  await settle();
  assert.equal(ws.sent[1], v.client_hello);
  ws.deliver(hex(v.server_hello).buffer);
  await until(() => ws.sent.length >= 3);
  assert.equal(ws.sent[2], v.finished);
  assert.equal(socket.readyState, 1);
  assert.deepEqual(verified, [v.pin]);
  // Sent back to back: sealed and written in call order even though WebCrypto is async.
  for (const r of v.viewer_records) socket.send("text" in r ? r.text : hex(r.binary));
  await settle();
  assert.deepEqual(ws.sent.slice(3), v.viewer_records.map((r) => r.record));
  for (const r of v.host_records) ws.deliver(hex(r.record).buffer);
  await settle();
  assert.equal(events.messages.length, v.host_records.length);
  v.host_records.forEach((r, i) => {
    if ("text" in r) assert.equal(events.messages[i], r.text);
    else assert.equal(toHex(events.messages[i]), r.binary);
  });
  ws.deliver(hex(v.host_close.record).buffer);
  await settle();
  assert.deepEqual(events.close, { code: v.host_close.code, reason: v.host_close.reason });
  assert.equal(ws.sent.length, 3 + v.viewer_records.length + 1); // our answering close record
  assert.equal(socket.readyState, 3);
});

test("the relay's refusal is reported with its reason and code", async () => {
  const { ws, events } = await open();
  ws.deliver(JSON.stringify({ t: "refused", reason: "unknown or offline ID" }));
  ws.drop(4004, "unknown or offline ID");
  await settle();
  assert.deepEqual(events.close, { code: 4004, reason: `relay refused ${v.host_id}: unknown or offline ID` });
  assert.equal(ws.sent.length, 1);
});

test("a host that is not the pinned one is refused before anything but the ClientHello", async () => {
  const { socket, ws, events, verified } = await open(v.other_pin);
  ws.deliver(JSON.stringify({ t: "spliced" }));
  ws.deliver(hex(v.server_hello).buffer);
  socket.send("{\"t\":\"auth\"}"); // not open: dropped
  await until(() => events.close);
  assert.equal(events.close.code, 4004);
  assert.match(events.close.reason, /^host ID: .*pinned/);
  assert.equal(ws.sent.length, 2); // connect, ClientHello
  assert.deepEqual(verified, []);
  assert.ok(ws.closed);
});

test("text from the host after the splice breaks the tunnel", async () => {
  const { ws, events } = await open();
  ws.deliver(JSON.stringify({ t: "spliced" }));
  ws.deliver("not a tunnel message");
  await settle();
  assert.equal(events.close.code, 1008);
  assert.match(events.close.reason, /binary/);
});
