// Shared fakes for the core's Node tests: a fake clock and a fake WebSocket (pure logic only;
// the real socket and clock are exercised in Chromium by tests/e2e/).

export const NONCE = "AAECAwQFBgcICQoLDA0ODw=="; // 16 bytes, base64

export const hello = (version = 1) =>
  JSON.stringify({ t: "hello", protocol: "rdesk", version, nonce: NONCE, methods: "password", server: "test" });

export const welcome = (width = 64, height = 48, role = "control") =>
  JSON.stringify({ t: "welcome", role, viewer_id: 7, width, height, name: "test host" });

/** A clock and setTimeout/clearTimeout pair that only move when told to. */
export class FakeClock {
  constructor(now = 0) {
    this.time = now;
    this.timers = new Map();
    this.nextId = 1;
    this.now = () => this.time;
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.timers.set(id, { at: this.time + Math.max(0, ms), fn });
      return id;
    };
    this.clearTimeout = (id) => this.timers.delete(id);
  }

  /** Move time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms) {
    const end = this.time + ms;
    for (;;) {
      let due = null;
      for (const [id, t] of this.timers) if (t.at <= end && (due === null || t.at < due[1].at)) due = [id, t];
      if (due === null) break;
      this.timers.delete(due[0]);
      this.time = Math.max(this.time, due[1].at);
      due[1].fn();
    }
    this.time = end;
  }
}

/** A WebSocket that records what is sent and lets the test deliver messages and drops. */
export class FakeSocket {
  static instances = [];

  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = 1;
    this.closedWith = null;
    FakeSocket.instances.push(this);
  }

  send(frame) {
    this.sent.push(frame);
  }

  close(code, reason) {
    this.closedWith = [code, reason];
    this.readyState = 3;
  }

  /** The messages sent so far, parsed (all are text). */
  messages() {
    return this.sent.map((frame) => JSON.parse(frame));
  }

  deliver(data) {
    this.onmessage({ data });
  }

  drop(code = 1006, reason = "") {
    this.readyState = 3;
    if (this.onclose) this.onclose({ code, reason });
  }
}
