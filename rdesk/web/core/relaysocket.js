// A host reached by ID through a relay, behind the surface of a WebSocket, so the core's
// Connection runs the ordinary rdesk session over it unchanged (its `WebSocket` option).
//
//   wss://RELAY/connect  ->  {"t":"connect","id":ID,"version":1}  ->  relay: spliced | refused
//   then the end-to-end tunnel (tunnel.js): ClientHello, the host's ServerHello verified
//   against the ID and the pin, Finished; only then is the socket OPEN and may the session
//   send anything (its Auth with the password or code).
//
// Surface used by Connection: binaryType, readyState, send(), close(code, reason), onmessage
// ({data}: a string or an ArrayBuffer), onclose ({code, reason}). A refusal of the host (key
// not the ID's, not the pinned one, bad signature) closes with 4004 and the refusal's one line;
// a tunnel broken otherwise with its TunnelError's code; the relay's own refusal with the
// relay's close code and reason. No DOM, no storage: the page decides what to pin
// (options.onVerified).

import { MAX_WIRE_MESSAGE, TunnelInitiator } from "./tunnel.js";
import { HostIdentityError } from "./tunnelerrors.js";

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;
/** The relay's text answers are small JSON objects (rdesk.relay.messages.MAX_RELAY_MESSAGE). */
const MAX_RELAY_MESSAGE = 4096;
/** How long a close waits for the host's answering close record before dropping the line. */
const CLOSE_WAIT_MS = 2000;
const POLICY = 4004;

/**
 * A WebSocket-like constructor for Connection: `new (relaySocket(options))(url)`.
 * @param {object} options
 * @param {string} options.hostId the ID the person typed (parsed; a bad one throws at construction)
 * @param {string|null} [options.pin] the fingerprint remembered for this ID, if any
 * @param {(established: {hostId: string, fingerprint: string}) => void} [options.onVerified]
 *   called once the host is verified, before anything else is sent
 * @param {Function} [options.WebSocket] the real WebSocket constructor
 */
export function relaySocket(options) {
  return class extends RelaySocket {
    constructor(url) {
      super(url, options);
    }
  };
}

export class RelaySocket {
  constructor(url, options) {
    // options.tunnelOptions (a fixed ephemeral key and random) is for the test vectors only.
    this.tunnel = new TunnelInitiator(options.hostId, options.pin || null, options.tunnelOptions || {});
    this.hostId = this.tunnel.expectedId;
    this.onVerified = options.onVerified || (() => {});
    this.readyState = CONNECTING;
    this.binaryType = "arraybuffer";
    this.onmessage = this.onclose = null;
    this.spliced = false;
    this.ended = false;
    this.chain = Promise.resolve(); // every tunnel step, in wire order
    const WS = options.WebSocket || globalThis.WebSocket;
    this.ws = new WS(url);
    this.ws.binaryType = "arraybuffer";
    this.ws.onopen = () => this.ws.send(JSON.stringify({ t: "connect", id: this.hostId, version: 1 }));
    this.ws.onmessage = (event) => this.step(() => this.onWire(event.data));
    this.ws.onclose = (event) => this.step(() => this.end(event.code, event.reason));
  }

  /** Queue one step after the previous ones; a failure ends the socket with its reason. */
  step(fn) {
    this.chain = this.chain.then(fn).catch((error) => this.fail(error));
  }

  async onWire(data) {
    if (this.ended) return;
    if (!this.spliced) {
      if (typeof data !== "string" || data.length > MAX_RELAY_MESSAGE) throw new Error("the relay sent something other than spliced or refused");
      let answer;
      try {
        answer = JSON.parse(data);
      } catch {
        throw new Error("the relay sent something other than spliced or refused");
      }
      if (answer && answer.t === "refused" && typeof answer.reason === "string") {
        // The relay closes next, with its code: end() reports that code and this reason.
        this.refusal = answer.reason.split(/\s+/).join(" ").slice(0, 120);
        return;
      }
      if (!answer || answer.t !== "spliced" || Object.keys(answer).length !== 1) throw new Error("the relay sent something other than spliced or refused");
      this.spliced = true;
      this.ws.send(await this.tunnel.start());
      return;
    }
    if (typeof data !== "string" && data.byteLength > MAX_WIRE_MESSAGE) throw new Error("tunnel message too large");
    const event = await this.tunnel.receive(data);
    if (event.established) {
      this.onVerified(event.established);
      this.ws.send(event.finished);
      this.readyState = OPEN;
      return;
    }
    if (event.closed) {
      const answer = await this.tunnel.close(event.closed.code, "");
      if (answer !== null && this.ws.readyState === OPEN) this.ws.send(answer);
      this.closeWire();
      this.end(event.closed.code, event.closed.reason);
      return;
    }
    if (this.readyState !== OPEN || !this.onmessage) return;
    const message = event.message;
    const payload = typeof message === "string" ? message : message.buffer.slice(message.byteOffset, message.byteOffset + message.byteLength);
    this.onmessage({ data: payload });
  }

  /** Send one session message (a string, or bytes) as a tunnel record, in order. */
  send(data) {
    if (this.readyState !== OPEN) return;
    this.step(async () => {
      if (this.tunnel.state !== "open") return;
      const record = await this.tunnel.send(data);
      if (this.ws.readyState === OPEN) this.ws.send(record);
    });
  }

  /** Close the tunnel (an authenticated close record), then the websocket. */
  close(code = 1000, reason = "") {
    if (this.readyState >= CLOSING) return;
    this.readyState = CLOSING;
    this.step(async () => {
      const record = await this.tunnel.close(code, reason);
      if (record !== null && this.ws.readyState === OPEN) {
        this.ws.send(record);
        // The host answers with its close record (handled by onWire), or the line is dropped.
        setTimeout(() => this.closeWire(), CLOSE_WAIT_MS);
      } else {
        this.closeWire();
      }
    });
  }

  closeWire() {
    try {
      this.ws.close(1000, "");
    } catch {
      /* already closing */
    }
  }

  fail(error) {
    const identity = error instanceof HostIdentityError;
    const code = identity ? POLICY : error.code || 1008;
    const reason = identity ? `host ID: ${error.message}` : error.message;
    this.tunnel.state = "closed";
    this.closeWire();
    this.end(code, String(reason).slice(0, 200));
  }

  /** Report the end once: the tunnel's close, a refusal, or the websocket's own close. */
  end(code, reason) {
    if (this.ended) return;
    this.ended = true;
    this.readyState = CLOSED;
    if (this.refusal !== undefined) reason = `relay refused ${this.hostId}: ${this.refusal}`;
    if (this.onclose) this.onclose({ code, reason });
  }
}
