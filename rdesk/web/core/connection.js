// One connection to a host: the websocket, the session on it, the timer driver and the paint
// queue. It emits what the page needs to show; it knows nothing of the page.
//
// Events (on(type, handler)):
//   "active"   (welcome)  authenticated; the framebuffer already has the screen's size
//   "message"  (message)  every message from the host but hello (screen, control, peer, ...)
//   "resized"  ({width, height})  the framebuffer took a new size (welcome or screen)
//   "painted"  (update)   an update was painted and acknowledged
//   "received" (bytes)    a websocket message of that many bytes arrived
//   "close"    ({code, reason})  once, whoever closed; code/reason are the protocol's close if
//                         one was sent or received, else the websocket's

import { CLOSE, LIMITS, ProtocolError, STATE, ViewerSession } from "./protocol.js";

const OPEN = 1; // WebSocket.OPEN

/**
 * @param {object} options
 * @param {string} options.url the wss:// endpoint
 * @param {string} options.secret the password, sent in auth and then dropped
 * @param {string} options.name this viewer's name, sent in auth
 * @param {{resize(w: number, h: number): void, paint(update): Promise<void>,
 *          startVideo?(send): string, endVideo?(stream: number): void}} options.display
 *   where updates go (a FrameBuffer; its video streams, if it has any)
 * @param {() => number} [options.now] the monotonic clock, ms (performance.now)
 * @param {Function} [options.WebSocket] the WebSocket constructor
 * @param {Function} [options.setTimeout] @param {Function} [options.clearTimeout]
 * @param {object} [options.session] ViewerSession timer options
 */
export class Connection {
  constructor(options) {
    this.url = options.url;
    this.secret = options.secret;
    this.name = options.name;
    this.display = options.display;
    this.now = options.now || (() => performance.now());
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    this.setTimer = options.setTimeout || ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = options.clearTimeout || ((id) => clearTimeout(id));
    this.sessionOptions = options.session || {};
    this.handlers = new Map();
    this.session = null;
    this.socket = null;
    this.timer = null;
    this.timerAt = null; // when this.timer wakes (a session deadline)
    this.queue = [];
    this.painting = false;
    this.finished = false;
  }

  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(handler);
    return this;
  }

  emit(type, detail) {
    for (const handler of this.handlers.get(type) || []) handler(detail);
  }

  /** Whether the session is authenticated and the connection not closed. */
  get active() {
    return !this.finished && this.session !== null && this.session.state === STATE.ACTIVE;
  }

  /** The role the host granted ("control" or "view"), once active. */
  get role() {
    return this.session ? this.session.role : null;
  }

  /** Open the websocket and start the handshake (and its deadline). */
  open() {
    this.session = new ViewerSession(this.now(), this.sessionOptions);
    let socket;
    try {
      socket = new this.WebSocket(this.url);
    } catch (err) {
      this.finish(CLOSE.INTERNAL_ERROR, "");
      return;
    }
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.onmessage = (event) => {
      if (this.socket === socket) this.onSocketMessage(event.data);
    };
    socket.onclose = (event) => {
      if (this.socket === socket) this.finish(event.code, event.reason);
    };
    this.schedule();
  }

  /** Send one message if active; false if not. Throws Error if the session refuses it (our bug). */
  send(message) {
    if (!this.active) return false;
    this.write(this.session.send(message));
    return true;
  }

  /** Measure the round trip now (session.rtt); false while a ping is outstanding. */
  ping() {
    if (!this.active) return false;
    const frame = this.session.ping(this.now());
    this.write(frame);
    this.schedule(); // its pong is now awaited
    return frame !== null;
  }

  /** Our verdict: tell the host why (a fixed phrase, no internals) and hang up. */
  close(code, reason) {
    if (this.finished) return;
    try {
      this.write(this.session.closeFrame(code, reason));
    } catch (err) {
      /* the session was closed meanwhile */
    }
    try {
      // The browser only lets a page close with 1000 or 3000-4999.
      if (this.socket) this.socket.close(code >= 3000 || code === 1000 ? code : 1000, "");
    } catch (err) {
      /* already closing */
    }
    this.finish(code, reason);
  }

  // --- inside ----------------------------------------------------------------------------------

  write(frame) {
    if (frame !== null && this.socket && this.socket.readyState === OPEN) this.socket.send(frame);
  }

  onSocketMessage(data) {
    this.emit("received", typeof data === "string" ? data.length : data.byteLength);
    if (this.session.state === STATE.CLOSED) return; // after the host's close: its stragglers
    let message;
    const received = this.now(); // the whole message is here: its last byte came
    try {
      message = this.session.receive(data, received);
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.close(err.code, err.reason);
        return;
      }
      throw err;
    }
    switch (message.t) {
      case "hello":
        this.write(this.session.auth(this.secret, this.name));
        this.secret = null; // needed once
        break;
      case "welcome": {
        this.enqueue(message);
        // Declare the video decoders this page has (none: send nothing, as older viewers, since
        // a host of before `video` refuses it), and that it can say how long it holds an update
        // before its ack ("hold": a host that uses it answers with ack_hold).
        const codecs = this.display.startVideo ? this.display.startVideo((m) => this.send(m)) : "";
        if (codecs) this.send({ t: "video", codecs: `${codecs},hold` });
        this.emit("active", message);
        break;
      }
      case "screen":
      case "update":
      case "video_end": // in order with the updates whose frames it follows
        this.enqueue(message, received);
        break;
      case "ping":
        this.write(this.session.send({ t: "pong", id: message.id }));
        break;
      default:
        // "close": the host's verdict; the websocket's close follows and finishes us.
        break;
    }
    if (message.t !== "hello") this.emit("message", message);
    this.schedule();
  }

  /**
   * The one timer: wake at the session's next deadline, fire it, sleep again. A timer already
   * set to wake no later than the deadline is kept (if the deadline moved on, it wakes, finds
   * nothing due and sleeps again), so a stream of messages never keeps pushing back a wake-up
   * that is due.
   */
  schedule() {
    const deadline = this.finished ? null : this.session.nextDeadline();
    if (deadline !== null && this.timer !== null && this.timerAt <= deadline) return;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = this.timerAt = null;
    if (deadline === null) return;
    this.timerAt = deadline;
    this.timer = this.setTimer(() => this.onTimer(), Math.max(0, deadline - this.now()));
  }

  onTimer() {
    this.timer = this.timerAt = null;
    if (this.finished) return;
    let frames;
    try {
      frames = this.session.handleTimer(this.now());
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.close(err.code, err.reason);
        return;
      }
      throw err;
    }
    for (const frame of frames) this.write(frame);
    this.schedule();
  }

  enqueue(message, received = this.now()) {
    this.queue.push([message, received]);
    this.pump();
  }

  // Size changes and updates are applied strictly in arrival order; each update is acked after
  // it is painted (docs/protocol.md §7), so the host's round trip includes our decode time.
  async pump() {
    if (this.painting) return;
    this.painting = true;
    try {
      while (this.queue.length && !this.finished) {
        const [item, received] = this.queue.shift();
        if (item.t === "video_end") {
          if (this.display.endVideo) this.display.endVideo(item.stream);
          continue;
        }
        if (item.t !== "update") {
          this.display.resize(item.width, item.height);
          this.emit("resized", { width: item.width, height: item.height });
          continue;
        }
        await this.display.paint(item);
        if (!this.active) return; // closed while painting: nothing to ack
        const ack = { t: "ack", seq: item.seq };
        if (this.session.holdAcks) {
          // Receipt of its last byte to this ack: our decode and paint (docs/protocol.md §7).
          ack.hold_us = Math.min(LIMITS.MAX_ACK_HOLD_US, Math.max(0, Math.round((this.now() - received) * 1000)));
        }
        this.write(this.session.send(ack));
        this.emit("painted", item);
      }
    } catch (err) {
      const known = err instanceof ProtocolError;
      this.close(known ? err.code : CLOSE.PROTOCOL_ERROR, known ? err.reason : "cannot decode an image");
    } finally {
      this.painting = false;
    }
  }

  finish(wsCode, wsReason) {
    if (this.finished) return;
    this.finished = true;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = this.timerAt = null;
    this.queue = [];
    if (this.socket) this.socket.onmessage = this.socket.onclose = null;
    const session = this.session;
    if (session.state !== STATE.CLOSED) session.closed(wsCode, wsReason);
    const [code, reason] = session.closeReason;
    this.emit("close", { code, reason });
  }
}
