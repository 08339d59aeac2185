// The host's cursor (docs/protocol.md, "Cursor"): reassembles `cursor` + `cursor_data` into a
// PNG and keeps the last CURSOR.CACHE_SIZE by serial, as the host expects; `cursor_use` shows
// one it holds. No DOM: the page turns the result into a CSS cursor (app/cursor.js).

import { CURSOR, ProtocolError } from "./codec.js";

export class CursorCache {
  constructor() {
    this.open = null; // {shape, parts: [base64...], got}
    this.cache = new Map(); // serial -> {shape, png: base64}, oldest first
  }

  /** Take one host message; returns {shape, png} (png as base64) to show, or null. Throws
   *  ProtocolError for a hot spot outside the image, more bytes than announced, an unknown
   *  serial. Returns undefined for messages that are not about the cursor. */
  onMessage(message) {
    switch (message.t) {
      case "cursor":
        if (this.open !== null) throw new ProtocolError(`cursor ${message.serial} while another is open`);
        if (message.xhot >= message.width || message.yhot >= message.height) {
          throw new ProtocolError(`cursor ${message.serial}: hot spot outside the image`);
        }
        this.open = { shape: message, parts: [], got: 0 };
        return null;
      case "cursor_data": {
        const open = this.open;
        if (open === null || open.shape.serial !== message.serial) {
          throw new ProtocolError(`cursor_data ${message.serial} without its cursor`);
        }
        const data = message.data;
        const pad = data.endsWith("==") ? 2 : data.endsWith("=") ? 1 : 0;
        open.got += (data.length / 4) * 3 - pad;
        if (data.length % 4 !== 0 || open.got > open.shape.size) {
          throw new ProtocolError(`cursor_data ${message.serial}: more than announced`);
        }
        open.parts.push(data);
        if (open.got < open.shape.size) return null;
        this.open = null;
        // Chunks are whole base64 groups of 11 KiB (a multiple of 3): they concatenate.
        return this.keep(open.shape, open.parts.join(""));
      }
      case "cursor_use": {
        const held = this.cache.get(message.serial);
        if (!held) throw new ProtocolError(`cursor_use ${message.serial}: never sent`);
        this.cache.delete(message.serial);
        this.cache.set(message.serial, held);
        return held;
      }
      default:
        return undefined;
    }
  }

  keep(shape, png) {
    const entry = { shape, png };
    this.cache.delete(shape.serial);
    this.cache.set(shape.serial, entry);
    while (this.cache.size > CURSOR.CACHE_SIZE) this.cache.delete(this.cache.keys().next().value);
    return entry;
  }
}
