// File transfer for the browser viewer (docs/transfer.md, docs/protocol.md "File transfer"):
// the name rule, an incremental SHA-256, the per-transfer credit, and Transfers, which runs
// uploads, downloads and listings over a send(message) function. No DOM: files are anything
// with name, size and slice(a, b).arrayBuffer() (a File or Blob); downloads come back as
// Uint8Array parts for the page to make a Blob of. A mirror of rdesk/protocol/transfer.py and
// rdesk/client/transfer.py; its uploads are paced by pacer.js (rdesk/protocol/pacer.py).

import { ProtocolError, XFER } from "./codec.js";
import { Pacer } from "./pacer.js";

// --- names: a name, never a path ---------------------------------------------------------------

const RESERVED = new Set(["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]);
for (const stem of ["COM", "LPT"]) for (const n of "0123456789¹²³") RESERVED.add(stem + n);
const FORBIDDEN = /[/\\:*?"<>|]/u;
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/u;

/** null if name is a plain file name, else why it is refused (transfer.py check_name). */
export function checkName(name) {
  if (typeof name !== "string" || name.length === 0) return "the name is empty";
  if (new TextEncoder().encode(name).length > XFER.MAX_NAME_BYTES) {
    return `the name is longer than ${XFER.MAX_NAME_BYTES} bytes`;
  }
  const forbidden = name.match(FORBIDDEN);
  if (forbidden) return `the name holds '${forbidden[0]}': a name, not a path`;
  const invisible = name.match(INVISIBLE);
  if (invisible) {
    const code = invisible[0].codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
    return `the name holds the invisible or control character U+${code}`;
  }
  if (name.startsWith(".")) return "the name starts with a dot (no '.', '..' or hidden files)";
  if (name.endsWith(".") || name.endsWith(" ") || name.startsWith(" ")) {
    return "the name starts or ends with a space, or ends with a dot";
  }
  const stem = name.split(".")[0];
  if (RESERVED.has(stem.toUpperCase().replace(/ +$/u, ""))) return `'${stem}' is a reserved device name`;
  if (name.normalize("NFC") !== name) return "the name is not in Unicode normal form C";
  return null;
}

// --- SHA-256, incremental (WebCrypto's digest takes the whole file at once) -------------------

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export class Sha256 {
  constructor() {
    this.h = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    this.block = new Uint8Array(64);
    this.filled = 0;
    this.length = 0; // bytes hashed so far
    this.w = new Uint32Array(64);
  }

  /** Hash more bytes (a Uint8Array). */
  update(bytes) {
    this.length += bytes.length;
    let i = 0;
    while (i < bytes.length) {
      const take = Math.min(64 - this.filled, bytes.length - i);
      this.block.set(bytes.subarray(i, i + take), this.filled);
      this.filled += take;
      i += take;
      if (this.filled === 64) {
        this.compress(this.block);
        this.filled = 0;
      }
    }
    return this;
  }

  compress(block) {
    const w = this.w;
    for (let t = 0; t < 16; t++) {
      w[t] = (block[4 * t] << 24) | (block[4 * t + 1] << 16) | (block[4 * t + 2] << 8) | block[4 * t + 3];
    }
    for (let t = 16; t < 64; t++) {
      const a = w[t - 15], b = w[t - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, h] = this.h;
    for (let t = 0; t < 64; t++) {
      const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + s1 + ((e & f) ^ (~e & g)) + K[t] + w[t]) | 0;
      const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g; g = f; f = e; e = (d + t1) | 0;
      d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    const hs = this.h;
    hs[0] += a; hs[1] += b; hs[2] += c; hs[3] += d; hs[4] += e; hs[5] += f; hs[6] += g; hs[7] += h;
  }

  /** The digest in lowercase hex; the object is spent afterwards. */
  hex() {
    const bits = this.length * 8;
    const pad = new Uint8Array(((this.filled < 56 ? 56 : 120) - this.filled) + 8);
    pad[0] = 0x80;
    const view = new DataView(pad.buffer);
    view.setUint32(pad.length - 8, Math.floor(bits / 2 ** 32));
    view.setUint32(pad.length - 4, bits >>> 0);
    this.update(pad);
    return Array.from(this.h, (x) => x.toString(16).padStart(8, "0")).join("");
  }
}

// --- speed and time left ---------------------------------------------------------------------

/** Speed and time left of one transfer, from (done, now) samples; pure (transfer.py Meter). */
export class Meter {
  constructor(total, now) {
    this.total = total;
    this.start = now;
    this.done = 0;
    this.now = now;
  }

  update(done, now) {
    this.done = done;
    this.now = now;
  }

  /** Bytes per second since the start (0 until time has passed). */
  get rate() {
    const seconds = (this.now - this.start) / 1000;
    return seconds > 0 ? this.done / seconds : 0;
  }

  /** Seconds left at that rate, or null while unknown. */
  get left() {
    return this.rate > 0 ? (this.total - this.done) / this.rate : null;
  }
}

// --- transfers ---------------------------------------------------------------------------------

export class TransferError extends Error {}

const MAX_LISTING = 1000;

/**
 * The file transfers of one connection.
 * @param {(message: object) => boolean} send sends a message while connected
 * @param {(reason: string) => void} onViolation the host broke the protocol (close with it)
 * @param {() => number} clock seconds, for the pacer (the page passes performance.now()/1000)
 */
export class Transfers {
  constructor(send, onViolation = () => {}, clock = () => 0) {
    this.send = send;
    this.onViolation = onViolation;
    this.clock = clock;
    this.nextId = 1;
    this.running = new Map(); // id -> handler(message)
    this.finished = new Set();
  }

  /** Route a host message; true if it was a transfer's. A message breaking the rules fails its
   * transfer and is reported to onViolation. */
  onMessage(message) {
    if (!message.t.startsWith("xfer_")) return false;
    const handler = this.running.get(message.id);
    try {
      if (handler) handler(message);
      else if (!this.finished.has(message.id)) throw new ProtocolError(`${message.t} for no transfer`);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      if (handler) handler({ t: "closed", reason: error.reason });
      this.onViolation(error.reason);
    }
    return true;
  }

  /** The connection ended: every transfer fails with reason. */
  closed(reason) {
    for (const handler of [...this.running.values()]) handler({ t: "closed", reason });
  }

  open(handler) {
    const id = this.nextId++ >>> 0;
    this.running.set(id, handler);
    return id;
  }

  finish(id) {
    this.running.delete(id);
    this.finished.add(id);
    if (this.finished.size > 64) this.finished.delete(this.finished.values().next().value);
  }

  /** Resolves with [{name, size}] of the host's transfer folder. */
  list() {
    return new Promise((resolve, reject) => {
      const entries = [];
      const id = this.open((m) => {
        if (m.t === "xfer_entry") {
          if (checkName(m.name) === null) entries.push({ name: m.name, size: m.size });
          if (entries.length > MAX_LISTING) fail("the host's listing is too long");
        } else if (m.t === "xfer_done") {
          this.finish(id);
          if (m.ok) resolve(entries);
          else reject(new TransferError(m.reason || "listing refused"));
        } else fail(m.reason || `unexpected ${m.t}`);
      });
      const fail = (reason) => {
        this.finish(id);
        reject(new TransferError(reason));
      };
      if (!this.send({ t: "xfer_list", id })) fail("not connected");
    });
  }

  /**
   * Upload a File/Blob. Returns {id, promise, cancel()}; the promise resolves with the host's
   * xfer_done once it confirmed the SHA-256 of the bytes sent.
   * @param {{name: string, size: number, slice: Function}} file
   * @param {(done: number, total: number) => void} onProgress
   */
  upload(file, onProgress = () => {}, name = file.name) {
    let cancel = () => {};
    const promise = new Promise((resolve, reject) => {
      const reason = checkName(name);
      if (reason !== null) {
        reject(new TransferError(`${name}: ${reason}`));
        return;
      }
      const sha = new Sha256();
      const pacer = new Pacer();
      let sent = 0, credit = 0, reading = false, over = false, digest = null;
      const stop = (error) => {
        if (over) return;
        over = true;
        this.finish(id);
        reject(error);
      };
      const pump = async () => {
        if (reading || over) return;
        reading = true;
        try {
          while (!over && credit > 0 && sent < file.size && pacer.allows(Math.min(pacer.chunkSize(), file.size - sent))) {
            const end = Math.min(sent + pacer.chunkSize(), file.size);
            const bytes = new Uint8Array(await file.slice(sent, end).arrayBuffer());
            if (over) return;
            sha.update(bytes);
            credit -= 1;
            const offset = sent;
            sent = end;
            this.send({ t: "xfer_data", id, offset, data: bytes });
            pacer.onSent(bytes.length, this.clock());
            onProgress(sent, file.size);
          }
          if (!over && sent === file.size && digest === null) {
            digest = sha.hex();
            this.send({ t: "xfer_end", id, sha256: digest });
          }
        } catch (error) {
          stop(error instanceof TransferError ? error : new TransferError(String(error)));
        } finally {
          reading = false;
        }
      };
      const id = this.open((m) => {
        if (m.t === "xfer_ready") pump();
        else if (m.t === "xfer_credit") {
          if (credit + m.chunks > XFER.WINDOW) throw new ProtocolError("xfer_credit exceeds the credit limit");
          credit += m.chunks;
          pacer.onCredit(m.chunks, this.clock());
          pump();
        } else if (m.t === "xfer_done") {
          if (!m.ok) stop(new TransferError(m.reason || "refused"));
          else if (m.sha256 !== digest || m.size !== file.size) {
            stop(new TransferError("the host confirmed another SHA-256 than the one sent"));
          } else {
            over = true;
            this.finish(id);
            resolve(m);
          }
        } else stop(new TransferError(m.reason || `unexpected ${m.t}`));
      });
      cancel = () => {
        if (over) return;
        this.send({ t: "xfer_cancel", id, reason: "cancelled" });
        stop(new TransferError("cancelled"));
      };
      if (!this.send({ t: "xfer_put", id, name, size: file.size })) stop(new TransferError("not connected"));
    });
    return { promise, cancel: () => cancel() };
  }

  /**
   * Download a file of the transfer folder. Returns {promise, cancel()}; the promise resolves
   * with {name, size, sha256, parts} once the bytes hash to what the host announced.
   */
  download(name, onProgress = () => {}) {
    let cancel = () => {};
    const promise = new Promise((resolve, reject) => {
      const reason = checkName(name);
      if (reason !== null) {
        reject(new TransferError(`${name}: ${reason}`));
        return;
      }
      const sha = new Sha256();
      const parts = [];
      let size = null, received = 0, granted = 0, unreturned = 0, over = false;
      const stop = (error) => {
        if (over) return;
        over = true;
        this.finish(id);
        reject(error);
      };
      const id = this.open((m) => {
        if (m.t === "xfer_ready" && size === null) {
          size = m.size;
          granted = size > 0 ? XFER.WINDOW : 0;
          if (granted > 0) this.send({ t: "xfer_credit", id, chunks: granted });
        } else if (m.t === "xfer_data" && size !== null) {
          if (granted <= 0) throw new ProtocolError("xfer_data sent without credit");
          const bytes = m.data;
          if (m.offset !== received) throw new ProtocolError(`xfer_data at offset ${m.offset}, expected ${received}`);
          if (bytes.length === 0 || bytes.length > XFER.CHUNK || received + bytes.length > size) {
            throw new ProtocolError("xfer_data past the announced size");
          }
          granted -= 1;
          received += bytes.length;
          sha.update(bytes);
          parts.push(bytes);
          onProgress(received, size);
          // Every stored chunk's credit comes back, in batches: the host's pacer waits for it.
          unreturned += 1;
          if (unreturned >= XFER.CREDIT_BATCH || granted === 0) {
            granted += unreturned;
            this.send({ t: "xfer_credit", id, chunks: unreturned });
            unreturned = 0;
          }
        } else if (m.t === "xfer_end" && size !== null) {
          const digest = sha.hex();
          if (received !== size) stop(new TransferError(`received ${received} of ${size} bytes`));
          else if (digest !== m.sha256) stop(new TransferError("the SHA-256 of the bytes received differs"));
          else {
            over = true;
            this.finish(id);
            resolve({ name, size, sha256: digest, parts });
          }
        } else stop(new TransferError(m.reason || `unexpected ${m.t}`));
      });
      cancel = () => {
        if (over) return;
        this.send({ t: "xfer_cancel", id, reason: "cancelled" });
        stop(new TransferError("cancelled"));
      };
      if (!this.send({ t: "xfer_get", id, name })) stop(new TransferError("not connected"));
    });
    return { promise, cancel: () => cancel() };
  }
}
