// The rdesk protocol for the browser: the codec (codec.js, images.js, re-exported here) and the
// viewer's half of the session, a mirror of rdesk/protocol/session.py and states.py.
//
// No I/O and no clock: bytes in, messages out, frames to send; time is passed in as `now`, in
// milliseconds on one monotonic clock (performance.now() in the page). The session owns the
// connection's timers exactly as the Python session does: whoever drives it calls
// handleTimer(now) at nextDeadline() and sends the frames it returns (core/connection.js).

import {
  CLOSE,
  ENCODING,
  LIMITS,
  PROTOCOL_VERSION,
  ProtocolError,
  copySource,
  decodeControl,
  decodeUpdate,
  encodeControl,
} from "./codec.js";
import { CHUNK_KIND, binaryKind, decodeChunk, encodeChunk } from "./chunks.js";

export * from "./codec.js";
export * from "./chunks.js";
export * from "./images.js";

/** Milliseconds a connection may take from its start to being authenticated. */
export const HANDSHAKE_TIMEOUT_MS = 10000;
/**
 * Milliseconds a host that says it is waiting for its user to accept this viewer (a `notice`
 * with delay 0 before the welcome) may take to answer: the Python viewer's allowance too
 * (rdesk/client/handshake.py, CONSENT_WAIT); also the longest login delay the page waits out
 * (plus HANDSHAKE_TIMEOUT_MS) when a notice announces one.
 */
export const WAIT_NOTICE_MS = 120000;
/** Milliseconds between keepalive pings once active. */
export const PING_INTERVAL_MS = 15000;
/** Milliseconds a ping may wait for its pong before the host counts as unresponsive. */
export const PING_TIMEOUT_MS = 20000;

export const STATE = Object.freeze({
  START: "start",
  AWAIT_AUTH: "await_auth",
  AUTHENTICATING: "authenticating",
  ACTIVE: "active",
  CLOSED: "closed",
});

// states.py: what each end may send once ACTIVE.
export const HOST_ACTIVE = Object.freeze(
  new Set([
    "update", "screen", "ping", "pong", "input_ack", "peer", "control", "control_request", "notice",
    "xfer_ready", "xfer_entry", "xfer_data", "xfer_credit", "xfer_end", "xfer_cancel", "xfer_done",
    "clip_offer", "clip_data", "clip_result", "cursor", "cursor_data", "cursor_use",
    "monitor", "monitor_current", "video_end", "ack_hold", "resize_result",
  ]),
);
export const VIEWER_ACTIVE = Object.freeze(
  new Set([
    "ack", "ping", "pong", "pointer", "key", "wheel", "sync", "refresh",
    "request_control", "release_control", "answer_control", "prefs",
    "xfer_list", "xfer_put", "xfer_get", "xfer_data", "xfer_credit", "xfer_end", "xfer_cancel",
    "clip_offer", "clip_data", "clip_result", "clip_get", "select_monitor", "video", "keyframe",
    "resize",
  ]),
);

const minOf = (...times) => {
  const set = times.filter((t) => t !== null);
  return set.length ? Math.min(...set) : null;
};

/**
 * The viewer's end of one connection: receive() what arrives, send() what to write, and
 * handleTimer(now) at nextDeadline().
 *
 * Contract (session.py): the handshake must reach ACTIVE within `handshakeTimeout` of `now` at
 * construction, else handleTimer throws ProtocolError(HANDSHAKE_TIMEOUT). Once ACTIVE, a ping
 * goes out `pingInterval` after the last one; only one ping is outstanding at a time (the
 * keepalive's and ping(now)'s share it), and one unanswered for `pingTimeout` makes handleTimer
 * throw ProtocolError(UNRESPONSIVE). The matching pong sets `rtt` and `minRtt`. After a close
 * (sent or received) no timer is due.
 */
export class ViewerSession {
  /**
   * @param {number} now the connection's start, in ms
   * @param {{handshakeTimeout?: number, pingInterval?: number|null, pingTimeout?: number}} options
   *   ms; pingInterval null sends no keepalive
   */
  constructor(now = 0, options = {}) {
    const {
      handshakeTimeout = HANDSHAKE_TIMEOUT_MS,
      pingInterval = PING_INTERVAL_MS,
      pingTimeout = PING_TIMEOUT_MS,
    } = options;
    this.state = STATE.START;
    this.nonce = null;
    this.width = 0;
    this.height = 0;
    this.role = null;
    this.closeReason = null; // [code, reason], once known
    this.lastSeq = -1;
    /** Round trip of the last answered ping, in ms (null until one is answered). */
    this.rtt = null;
    /** Smallest ping round trip seen: the link's base delay. */
    this.minRtt = null;
    this.pingInterval = pingInterval;
    this.pingTimeout = pingTimeout;
    this.handshakeDeadline = now + handshakeTimeout;
    this.nextPing = null;
    this.pendingPing = null; // [id, sentAt]
    this.pingId = 0;
    /** Seconds the host said it delays this login (a notice's `delay`), 0 if it did not. */
    this.loginDelay = 0;
    /** Whether acks may carry `hold_us`: the host sent `ack_hold` (docs/protocol.md §7). */
    this.holdAcks = false;
  }

  /** Decode and check one message from the host; returns it (updates have t: "update"). */
  receive(data, now = 0) {
    if (this.state === STATE.CLOSED) throw new Error("session is closed");
    let message;
    if (typeof data === "string") {
      message = decodeControl(data);
    } else if (binaryKind(data) === CHUNK_KIND) {
      message = decodeChunk(data);
    } else {
      message = decodeUpdate(data);
      message.t = "update";
    }
    const t = message.t;
    if (t === "close") {
      this.closed(message.code, message.reason);
      return message;
    }
    const allowed =
      (this.state === STATE.START && t === "hello") ||
      (this.state === STATE.AUTHENTICATING && (t === "welcome" || t === "notice")) ||
      (this.state === STATE.ACTIVE && HOST_ACTIVE.has(t));
    if (!allowed) throw new ProtocolError(`cannot receive ${t} in state ${this.state}`);
    if (t === "hello") {
      if (message.version !== PROTOCOL_VERSION) {
        throw new ProtocolError(
          `host speaks rdesk protocol version ${message.version}, this viewer speaks ${PROTOCOL_VERSION}`,
          CLOSE.VERSION_MISMATCH,
        );
      }
      this.nonce = message.nonce;
      this.state = STATE.AWAIT_AUTH;
    } else if (t === "notice" && this.state === STATE.AUTHENTICATING) {
      // The host is waiting for its user's consent (delay 0), or delays this login by `delay`
      // seconds after failed attempts: the number, never the text (docs/protocol.md, notice).
      this.loginDelay = message.delay;
      const wait = message.delay > 0 ? Math.min(message.delay * 1000, WAIT_NOTICE_MS) + HANDSHAKE_TIMEOUT_MS : WAIT_NOTICE_MS;
      this.handshakeDeadline = Math.max(this.handshakeDeadline ?? 0, now + wait);
    } else if (t === "welcome") {
      this.width = message.width;
      this.height = message.height;
      this.role = message.role;
      this.enterActive(now);
    } else if (t === "screen") {
      this.width = message.width;
      this.height = message.height;
    } else if (t === "update") {
      this.checkUpdate(message);
    } else if (t === "ack_hold") {
      this.holdAcks = true;
    } else if (t === "pong" && this.pendingPing !== null && this.pendingPing[0] === message.id) {
      this.rtt = Math.max(0, now - this.pendingPing[1]);
      this.minRtt = this.minRtt === null ? this.rtt : Math.min(this.minRtt, this.rtt);
      this.pendingPing = null;
    }
    return message;
  }

  checkUpdate(update) {
    if (update.seq <= this.lastSeq) throw new ProtocolError("update sequence numbers must increase");
    for (const r of update.rects) {
      if (r.x + r.w > this.width || r.y + r.h > this.height) {
        throw new ProtocolError(`rect ${r.x},${r.y} ${r.w}x${r.h} lies outside the ${this.width}x${this.height} screen`);
      }
      if (r.encoding === ENCODING.COPY) {
        const [sx, sy] = copySource(r);
        if (sx + r.w > this.width || sy + r.h > this.height) {
          throw new ProtocolError("copy rect source lies outside the screen");
        }
      }
    }
    // Only once the whole update is valid, so a refused update changes nothing.
    this.lastSeq = update.seq;
  }

  /** Validate a message for the current state and return its frame (text, or binary for an
   * xfer_data chunk); Error if not allowed. */
  send(message) {
    if (this.state === STATE.CLOSED) throw new Error("session is closed");
    const t = message.t;
    if (t !== "close") {
      const allowed =
        (this.state === STATE.AWAIT_AUTH && t === "auth") || (this.state === STATE.ACTIVE && VIEWER_ACTIVE.has(t));
      if (!allowed) throw new Error(`cannot send ${t} in state ${this.state}`);
      if (t === "auth" && message.nonce !== this.nonce) throw new Error("auth must carry the hello's nonce");
      if (t === "ack" && message.hold_us !== undefined && !this.holdAcks) {
        throw new Error("ack.hold_us before the host's ack_hold");
      }
    }
    // Encode (which validates every field) before changing any state.
    const frame = t === "xfer_data" ? encodeChunk(message) : encodeControl(message);
    if (t === "close") this.closed(message.code, message.reason);
    else if (t === "auth") this.state = STATE.AUTHENTICATING;
    return frame;
  }

  /** The auth frame answering the host's hello. */
  auth(secret, name) {
    return this.send({ t: "auth", version: PROTOCOL_VERSION, nonce: this.nonce, method: "password", secret, name });
  }

  /** The close frame to send before closing the websocket, or null if already closed. */
  closeFrame(code, reason) {
    if (this.state === STATE.CLOSED) return null;
    // eslint-disable-next-line no-control-regex
    const clean = Array.from(String(reason).replace(/[\u0000-\u001f\u007f]/g, "")).slice(0, LIMITS.MAX_STRING).join("");
    return this.send({ t: "close", code, reason: clean });
  }

  // --- timers ---------------------------------------------------------------------------------

  /** The next time (ms) handleTimer must be called, or null. */
  nextDeadline() {
    if (this.state === STATE.CLOSED) return null;
    const pongDue = this.pendingPing === null ? null : this.pendingPing[1] + this.pingTimeout;
    return minOf(this.handshakeDeadline, this.nextPing, pongDue);
  }

  /**
   * Fire the timers due at `now`; returns the frames to send (a keepalive ping). Throws
   * ProtocolError with HANDSHAKE_TIMEOUT or UNRESPONSIVE when the host took too long.
   */
  handleTimer(now) {
    if (this.state === STATE.CLOSED) return [];
    if (this.handshakeDeadline !== null && now >= this.handshakeDeadline) {
      if (this.loginDelay > 0) {
        throw new ProtocolError(
          `the host delays logins from this address after failed attempts; try again in ${this.loginDelay} s`,
          CLOSE.HANDSHAKE_TIMEOUT,
        );
      }
      throw new ProtocolError("handshake not completed in time", CLOSE.HANDSHAKE_TIMEOUT);
    }
    if (this.pendingPing !== null && now >= this.pendingPing[1] + this.pingTimeout) {
      throw new ProtocolError("host did not answer a ping", CLOSE.UNRESPONSIVE);
    }
    const frames = [];
    if (this.nextPing !== null && now >= this.nextPing) {
      this.nextPing = now + this.pingInterval;
      const frame = this.ping(now);
      if (frame !== null) frames.push(frame);
    }
    return frames;
  }

  /**
   * A ping to send now, to measure the round trip (rtt) on demand; null while another ping
   * awaits its pong or before the session is active. It moves the next keepalive to
   * `pingInterval` after it, and its pong is awaited with the same timeout.
   */
  ping(now) {
    if (this.pendingPing !== null || this.state !== STATE.ACTIVE) return null;
    this.pingId = (this.pingId + 1) >>> 0;
    const frame = this.send({ t: "ping", id: this.pingId });
    this.pendingPing = [this.pingId, now];
    if (this.pingInterval !== null) this.nextPing = now + this.pingInterval;
    return frame;
  }

  // --- state ----------------------------------------------------------------------------------

  enterActive(now) {
    this.state = STATE.ACTIVE;
    this.handshakeDeadline = null;
    if (this.pingInterval !== null) this.nextPing = now + this.pingInterval;
  }

  closed(code, reason) {
    this.state = STATE.CLOSED;
    this.closeReason = [code, reason];
    this.handshakeDeadline = this.nextPing = this.pendingPing = null;
  }
}
