// The browser viewer's side of the clipboard exchange (docs/protocol.md, "Clipboard"): sends
// our text as clip_offer + clip_data chunks, reassembles the host's under a cap, keeps the
// host's answers. No DOM: the page (app/clipboard.js) decides when to read or write the
// local clipboard.

import { CLIP } from "./codec.js";

/** Largest text taken from the host, or sent, by default (UTF-8 bytes). */
export const DEFAULT_CAP = 1 << 20;

function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(text) {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** Why `bytes` (UTF-8 of a text) may not travel under `cap`, or null. */
export function refusal(text, bytes, cap) {
  if (text.includes("\u0000")) return "clipboard text contains a NUL character";
  if (bytes.length > cap) return `clipboard text of ${bytes.length} bytes exceeds the ${cap}-byte limit`;
  return null;
}

export class ClipboardExchange {
  /**
   * @param {(message: object) => boolean} send sends one message; false when not connected
   * @param {(reason: string) => void} fail ends the connection (the host broke the framing)
   * @param {number} [cap]
   */
  constructor(send, fail, cap = DEFAULT_CAP) {
    this.send = send;
    this.fail = fail;
    this.cap = cap;
    this.nextId = 1;
    this.open = null; // the host's offer being received: {offer, parts, got}
    this.texts = new Map(); // selection -> the host's latest text
    this.results = new Map(); // id -> the host's clip_result
    this.onText = null; // (selection, text) => void
    this.onResult = null; // (result) => void
  }

  /** Send `text` for `selection`; returns the offer id, or a refusal string from our own checks. */
  sendText(text, selection = "clipboard") {
    const bytes = new TextEncoder().encode(text);
    const reason = refusal(text, bytes, this.cap);
    if (reason !== null) return reason;
    const id = this.nextId++ & 0x7fffffff;
    if (!this.send({ t: "clip_offer", id, selection, size: bytes.length })) return "not connected";
    const step = CLIP.CHUNK_BYTES;
    for (let start = 0; start < Math.max(bytes.length, 1); start += step) {
      this.send({ t: "clip_data", id, data: toBase64(bytes.subarray(start, start + step)) });
    }
    return id;
  }

  /** Ask for the host's `selection` text (it arrives through onText, or a refusal in results). */
  get(selection = "clipboard") {
    const id = this.nextId++ & 0x7fffffff;
    this.send({ t: "clip_get", id, selection });
    return id;
  }

  /** Take one message from the host; true if it was a clipboard message. */
  onMessage(message) {
    switch (message.t) {
      case "clip_result":
        this.results.set(message.id, message);
        if (this.results.size > 64) this.results.delete(this.results.keys().next().value);
        if (this.onResult) this.onResult(message);
        return true;
      case "clip_offer":
        if (this.open !== null) {
          this.fail(`clip_offer ${message.id} while ${this.open.offer.id} is open`);
        } else if (message.size > this.cap) {
          this.send({ t: "clip_result", id: message.id, ok: false,
            reason: `clipboard text of ${message.size} bytes exceeds the ${this.cap}-byte limit` });
        } else {
          this.open = { offer: message, parts: [], got: 0 };
        }
        return true;
      case "clip_data":
        this.onData(message);
        return true;
      default:
        return false;
    }
  }

  onData(message) {
    const open = this.open;
    if (open === null || open.offer.id !== message.id) return; // a refused offer's chunks
    let bytes;
    try {
      bytes = fromBase64(message.data);
    } catch (err) {
      this.open = null;
      this.fail(`clip_data ${message.id}: not base64`);
      return;
    }
    open.got += bytes.length;
    if (bytes.length > CLIP.CHUNK_BYTES || open.got > open.offer.size) {
      this.open = null;
      this.fail(`clip_data ${message.id}: more than the ${open.offer.size} bytes announced`);
      return;
    }
    open.parts.push(bytes);
    if (open.got < open.offer.size) return;
    this.open = null;
    const whole = new Uint8Array(open.got);
    let at = 0;
    for (const part of open.parts) {
      whole.set(part, at);
      at += part.length;
    }
    let text = null;
    let reason = null;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(whole);
      reason = refusal(text, whole, this.cap);
    } catch (err) {
      reason = "clipboard text is not valid UTF-8";
    }
    const { id, selection } = open.offer;
    this.send({ t: "clip_result", id, ok: reason === null, reason: reason || "" });
    if (reason !== null) return;
    this.texts.set(selection, text);
    if (this.onText) this.onText(selection, text);
  }
}
