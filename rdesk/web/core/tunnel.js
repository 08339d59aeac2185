// The end-to-end tunnel's viewer end, in the browser: the JavaScript twin of rdesk/tunnel/
// (wire.py, keys.py, machine.py), with WebCrypto only. No DOM, no sockets: bytes in, bytes and
// events out (see relaysocket.js for the websocket around it).
//
// The contract is the Python one (docs/relay.md, "The end-to-end tunnel"):
//   ClientHello  0x01 | version 1 | random 32 | ephemeral P-256 point 65 | host ID 13 ASCII
//   ServerHello  0x02 | version | random 32 | point 65 | cert length u16 | cert DER | r||s 64
//   records      type u8 | AES-256-GCM(ciphertext) | tag 16, nonce = IV xor sequence, AAD = type
//   signature    ECDSA-P256-SHA256 over CONTEXT || SHA-256(ClientHello || ServerHello unsigned),
//                low s only (WebCrypto's ECDSA already takes r||s, the wire's form)
//   keys         HKDF-SHA256(ECDH, salt = SHA-256(ClientHello || ServerHello), INFO) -> 88 bytes
// The initiator refuses the host (HostIdentityError) unless its certificate's key hashes to the
// ID asked for, the key matches the pin when there is one, and the key signed this
// handshake, all before the Finished record, so before any credential can leave.

import { ID_SYMBOLS, certificateSpki, fingerprint, hostIdOf, parseHostId } from "./hostid.js";
import { HostIdentityError, TunnelError } from "./tunnelerrors.js";

// The viewer end's whole API from one module (tests/relay/tunnel_vectors.mjs checks it as one).
export { ID_SYMBOLS, certificateSpki, fingerprint, hostIdOf, keyFingerprint, parseHostId } from "./hostid.js";

export const TUNNEL_VERSION = 1;
export const KIND = { CLIENT_HELLO: 0x01, SERVER_HELLO: 0x02, FINISHED: 0x10, TEXT: 0x11, BINARY: 0x12, CLOSE: 0x13 };
export const RANDOM_SIZE = 32;
export const POINT_SIZE = 65;
export const SIGNATURE_SIZE = 64;
export const TAG_SIZE = 16;
export const MAX_CERTIFICATE = 8192;
export const MAX_CLOSE_REASON = 123;
export const MAX_RECORD_PAYLOAD = 8 * 1024 * 1024; // rdesk.protocol.limits.MAX_MESSAGE
export const CLIENT_HELLO_SIZE = 2 + RANDOM_SIZE + POINT_SIZE + ID_SYMBOLS;
const SERVER_HELLO_FIXED = 2 + RANDOM_SIZE + POINT_SIZE + 2 + SIGNATURE_SIZE;
export const MAX_WIRE_MESSAGE = Math.max(MAX_RECORD_PAYLOAD + 1 + TAG_SIZE, SERVER_HELLO_FIXED + MAX_CERTIFICATE);
/** A key seals at most this many bytes; then the tunnel closes (1001) and the viewer reconnects. */
export const MAX_SEALED_BYTES = 2 ** 38;

const encoder = new TextEncoder();
const SIGNATURE_CONTEXT = encoder.encode("rdesk tunnel v1: host signature over the handshake\0");
const KEY_INFO = encoder.encode("rdesk tunnel v1: record keys");
const ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const subtleOf = (subtle) => subtle || globalThis.crypto.subtle;

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const bigOf = (bytes) => bytes.reduce((v, b) => (v << 8n) | BigInt(b), 0n);

/** Whether `signature` (r||s, low s) is the key's ECDSA-SHA256 signature over CONTEXT||digest. */
export async function verifyTranscript(publicKey, digest, signature, subtle) {
  if (signature.length !== SIGNATURE_SIZE) return false;
  const r = bigOf(signature.subarray(0, 32));
  const s = bigOf(signature.subarray(32));
  // (r, n - s) verifies too: only the low one is accepted, so nobody can alter a ServerHello.
  if (!(r > 0n && r < ORDER && s > 0n && s <= ORDER / 2n)) return false;
  return subtleOf(subtle).verify({ name: "ECDSA", hash: "SHA-256" }, publicKey, signature, concat(SIGNATURE_CONTEXT, digest));
}

/** The 88 bytes of the key schedule, split per direction. */
export async function deriveKeys(shared, transcript, subtle) {
  const s = subtleOf(subtle);
  const ikm = await s.importKey("raw", shared, "HKDF", false, ["deriveBits"]);
  const okm = new Uint8Array(await s.deriveBits({ name: "HKDF", hash: "SHA-256", salt: transcript, info: KEY_INFO }, ikm, 88 * 8));
  return { viewerKey: okm.slice(0, 32), hostKey: okm.slice(32, 64), viewerIv: okm.slice(64, 76), hostIv: okm.slice(76, 88) };
}

/** One direction's AES-256-GCM, strictly in sequence (the nonce is taken when called). */
export class RecordCipher {
  constructor(key, iv, subtle) {
    this.subtle = subtleOf(subtle);
    this.key = this.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt", "decrypt"]);
    this.iv = Uint8Array.from(iv);
    this.sequence = 0n;
    this.bytes = 0;
  }

  nonce(size) {
    if (this.sequence >= 1n << 64n) throw new TunnelError("record sequence exhausted", 1001);
    if (this.bytes + size > MAX_SEALED_BYTES) throw new TunnelError("tunnel key used up; reconnect", 1001);
    const nonce = Uint8Array.from(this.iv);
    const view = new DataView(nonce.buffer);
    view.setBigUint64(4, view.getBigUint64(4) ^ this.sequence);
    this.sequence += 1n;
    this.bytes += size;
    return nonce;
  }

  /** The record (type byte, ciphertext, tag) for the next sequence number. */
  async seal(kind, plaintext) {
    const iv = this.nonce(plaintext.length);
    const header = Uint8Array.of(kind);
    const sealed = await this.subtle.encrypt({ name: "AES-GCM", iv, additionalData: header }, await this.key, plaintext);
    return concat(header, new Uint8Array(sealed));
  }

  /** The plaintext of the next record, or TunnelError if it is not authentic. */
  async open(kind, sealed) {
    const iv = this.nonce(sealed.length - TAG_SIZE);
    try {
      const plain = await this.subtle.decrypt({ name: "AES-GCM", iv, additionalData: Uint8Array.of(kind) }, await this.key, sealed);
      return new Uint8Array(plain);
    } catch {
      throw new TunnelError("record failed authentication (forged, replayed, reordered or cut)");
    }
  }
}

/** The plaintext of a close record; the reason cut to fit on a character boundary. */
export function encodeClose(code, reason) {
  let bytes = encoder.encode(reason);
  if (bytes.length > MAX_CLOSE_REASON) {
    bytes = bytes.slice(0, MAX_CLOSE_REASON);
    // Drop a cut character: continuation bytes at the end, and the lead byte they follow.
    let end = bytes.length;
    let back = end - 1;
    while (back > 0 && (bytes[back] & 0xc0) === 0x80) back--;
    const lead = bytes[back];
    const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (end - back < need) end = back;
    bytes = bytes.slice(0, end);
  }
  return concat(Uint8Array.of(code >> 8, code & 0xff), bytes);
}

/** {code, reason} of an authenticated close record, or TunnelError. */
export function decodeClose(plain) {
  if (plain.length < 2 || plain.length > 2 + MAX_CLOSE_REASON) throw new TunnelError(`close record of ${plain.length} bytes`);
  const code = (plain[0] << 8) | plain[1];
  if (code < 1000 || code > 4999) throw new TunnelError(`close code ${code} out of range`);
  let reason;
  try {
    reason = new TextDecoder("utf-8", { fatal: true }).decode(plain.subarray(2));
  } catch {
    throw new TunnelError("close reason is not UTF-8");
  }
  if (/[\r\n]/.test(reason)) throw new TunnelError("close reason spans lines");
  return { code, reason };
}

/** Parse a ServerHello's framing (nothing verified here). */
export function parseServerHello(data) {
  if (data.length < SERVER_HELLO_FIXED) throw new TunnelError(`ServerHello of ${data.length} bytes is too short`);
  if (data[1] !== TUNNEL_VERSION) throw new TunnelError(`peer speaks tunnel version ${data[1]}, this end ${TUNNEL_VERSION}`, 4002);
  let at = 2;
  const random = data.slice(at, at + RANDOM_SIZE);
  at += RANDOM_SIZE;
  const ephemeral = data.slice(at, at + POINT_SIZE);
  at += POINT_SIZE;
  const certLength = (data[at] << 8) | data[at + 1];
  at += 2;
  if (certLength === 0 || certLength > MAX_CERTIFICATE) throw new TunnelError(`ServerHello certificate of ${certLength} bytes (1..${MAX_CERTIFICATE})`);
  if (data.length !== at + certLength + SIGNATURE_SIZE) throw new TunnelError("ServerHello length does not match its certificate length");
  const certificate = data.slice(at, at + certLength);
  return { random, ephemeral, certificate, signedPart: data.subarray(0, at + certLength), signature: data.slice(at + certLength) };
}

/**
 * The viewer's end. States: start -> hello-sent -> open -> close-sent/close-received -> closed.
 * Every method that touches WebCrypto is async; the caller awaits each before the next (the
 * socket wrapper queues them), so sequence numbers and states advance in wire order.
 * `options.ephemeral` (a CryptoKeyPair for ECDH P-256) and `options.random` (32 bytes) are for
 * the test vectors only.
 */
export class TunnelInitiator {
  constructor(expectedId, pin = null, options = {}) {
    this.expectedId = parseHostId(expectedId);
    if (pin !== null && !/^SHA256:[A-Za-z0-9+/]{43}$/.test(pin)) throw new Error("the pin is not a SHA256: fingerprint");
    this.pin = pin;
    this.subtle = subtleOf(options.subtle);
    this.ephemeral = options.ephemeral || null;
    this.random = options.random || globalThis.crypto.getRandomValues(new Uint8Array(RANDOM_SIZE));
    if (this.random.length !== RANDOM_SIZE) throw new Error(`random must be ${RANDOM_SIZE} bytes`);
    this.state = "start";
    this.hello = null;
    this.sealer = this.opener = null;
  }

  /** The ClientHello, the first message of the tunnel. */
  async start() {
    if (this.state !== "start") throw new Error(`cannot start while ${this.state}`);
    this.state = "starting";
    if (this.ephemeral === null) {
      this.ephemeral = await this.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
    }
    const point = new Uint8Array(await this.subtle.exportKey("raw", this.ephemeral.publicKey));
    this.hello = concat(Uint8Array.of(KIND.CLIENT_HELLO, TUNNEL_VERSION), this.random, point, encoder.encode(this.expectedId.replaceAll("-", "")));
    this.state = "hello-sent";
    return this.hello;
  }

  /**
   * Take one websocket message. Returns {established, finished} for the ServerHello (send
   * `finished` next), {message} for a text (string) or binary (Uint8Array) record, {closed:
   * {code, reason}} for the host's close record. Throws TunnelError/HostIdentityError, and the
   * end is then closed.
   */
  async receive(data) {
    try {
      if (!(data instanceof ArrayBuffer || ArrayBuffer.isView(data))) throw new TunnelError("tunnel messages are binary; got text");
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (this.state === "closed") throw new TunnelError("message after the tunnel closed");
      if (bytes.length === 0) throw new TunnelError("empty tunnel message");
      if (bytes.length > MAX_WIRE_MESSAGE) throw new TunnelError(`tunnel message of ${bytes.length} bytes exceeds ${MAX_WIRE_MESSAGE}`, 1009);
      const kind = bytes[0];
      if (kind === KIND.SERVER_HELLO && this.state === "hello-sent") return await this.onServerHello(bytes);
      const open = this.state === "open" || this.state === "close-sent";
      if (!open || ![KIND.TEXT, KIND.BINARY, KIND.CLOSE].includes(kind)) {
        throw new TunnelError(`unexpected tunnel message 0x${kind.toString(16).padStart(2, "0")} while ${this.state}`);
      }
      if (bytes.length < 1 + TAG_SIZE) throw new TunnelError(`record of ${bytes.length} bytes is shorter than its tag`);
      const plain = await this.opener.open(kind, bytes.subarray(1));
      if (kind === KIND.CLOSE) {
        const closed = decodeClose(plain);
        this.state = this.state === "close-sent" ? "closed" : "close-received";
        return { closed };
      }
      if (kind === KIND.TEXT) {
        try {
          return { message: new TextDecoder("utf-8", { fatal: true }).decode(plain) };
        } catch {
          throw new TunnelError("text record is not UTF-8");
        }
      }
      return { message: plain };
    } catch (error) {
      this.state = "closed";
      throw error;
    }
  }

  async onServerHello(data) {
    const hello = parseServerHello(data);
    const spki = certificateSpki(hello.certificate);
    const offered = await hostIdOf(spki, this.subtle);
    if (offered !== this.expectedId) throw new HostIdentityError(`the host's key has ID ${offered}, not ${this.expectedId}: refusing it`);
    // The pin is the key's fingerprint, or (as pins were before) that of a certificate of it.
    const offeredFp = await fingerprint(spki, this.subtle);
    const certificateFp = await fingerprint(hello.certificate, this.subtle);
    if (this.pin !== null && offeredFp !== this.pin && certificateFp !== this.pin) {
      throw new HostIdentityError(`the host's key ${offeredFp} is not the pinned ${this.pin}`);
    }
    const key = await this.subtle.importKey("spki", spki, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    const signed = new Uint8Array(await this.subtle.digest("SHA-256", concat(this.hello, hello.signedPart)));
    if (!(await verifyTranscript(key, signed, hello.signature, this.subtle))) {
      throw new HostIdentityError("the host's signature over this handshake does not verify");
    }
    if (hello.ephemeral[0] !== 0x04) throw new TunnelError("ephemeral key is not an uncompressed P-256 point");
    let peer;
    try {
      peer = await this.subtle.importKey("raw", hello.ephemeral, { name: "ECDH", namedCurve: "P-256" }, false, []);
    } catch {
      throw new TunnelError("ephemeral key is not a point on P-256");
    }
    const shared = new Uint8Array(await this.subtle.deriveBits({ name: "ECDH", public: peer }, this.ephemeral.privateKey, 256));
    const transcript = new Uint8Array(await this.subtle.digest("SHA-256", concat(this.hello, data)));
    const keys = await deriveKeys(shared, transcript, this.subtle);
    this.sealer = new RecordCipher(keys.viewerKey, keys.viewerIv, this.subtle);
    this.opener = new RecordCipher(keys.hostKey, keys.hostIv, this.subtle);
    this.state = "open";
    const finished = await this.sealer.seal(KIND.FINISHED, transcript);
    return { established: { hostId: offered, certificate: hello.certificate, fingerprint: offeredFp }, finished };
  }

  /** The record carrying `message` (text for a string, binary otherwise). */
  async send(message) {
    if (this.state !== "open") throw new Error(`cannot send while ${this.state}`);
    const text = typeof message === "string";
    const payload = text ? encoder.encode(message) : message instanceof ArrayBuffer ? new Uint8Array(message) : new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
    if (payload.length > MAX_RECORD_PAYLOAD) throw new Error(`message of ${payload.length} bytes exceeds ${MAX_RECORD_PAYLOAD}`);
    try {
      return await this.sealer.seal(text ? KIND.TEXT : KIND.BINARY, payload);
    } catch (error) {
      this.state = "closed";
      throw error;
    }
  }

  /** This end's close record, or null when there is none to send (as machine.py's close()). */
  async close(code = 1000, reason = "") {
    if (this.state !== "open" && this.state !== "close-received") {
      if (this.state !== "close-sent") this.state = "closed";
      return null;
    }
    this.state = this.state === "open" ? "close-sent" : "closed";
    try {
      return await this.sealer.seal(KIND.CLOSE, encodeClose(code, reason));
    } catch {
      this.state = "closed";
      return null;
    }
  }
}
