// Who the host is, in the browser: its ID (the first 65 bits of SHA-256 of its key, in
// base32: XXXX-XXXX-XXXXX), its key and certificate fingerprints, and the key inside its
// certificate. The twin of rdesk/protocol/hostid.py and fingerprint.py, with WebCrypto only.

import { HostIdentityError } from "./tunnelerrors.js";

export const ID_SYMBOLS = 13;
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** The SubjectPublicKeyInfo prefix of a P-256 key (id-ecPublicKey, prime256v1, uncompressed). */
const P256_SPKI_PREFIX = Uint8Array.from([
  0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
  0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
]);

const subtleOf = (subtle) => subtle || globalThis.crypto.subtle;
const bigOf = (bytes) => bytes.reduce((v, b) => (v << 8n) | BigInt(b), 0n);

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** The canonical ID (XXXX-XXXX-XXXXX) of what a person typed, or throws Error with a reason. */
export function parseHostId(text) {
  if (typeof text !== "string") throw new Error("a host ID must be text");
  if (text.length > 64) throw new Error(`a host ID is ${ID_SYMBOLS} symbols; this text is too long`);
  if (!/^[\x00-\x7f]*$/.test(text)) throw new Error("a host ID has only letters, digits, spaces and dashes");
  let symbols = "";
  for (const raw of text.toUpperCase()) {
    if (raw === " " || raw === "-" || raw === "\t") continue;
    const char = raw === "O" ? "0" : raw === "I" || raw === "L" ? "1" : raw;
    if (!ALPHABET.includes(char)) throw new Error(`${JSON.stringify(char)} is not a host ID symbol`);
    symbols += char;
  }
  if (symbols.length !== ID_SYMBOLS) throw new Error(`a host ID is ${ID_SYMBOLS} symbols, not ${symbols.length}`);
  return `${symbols.slice(0, 4)}-${symbols.slice(4, 8)}-${symbols.slice(8)}`;
}

/** The host ID of a SubjectPublicKeyInfo DER: the first 65 bits of its SHA-256, in base32. */
export async function hostIdOf(spki, subtle) {
  const digest = new Uint8Array(await subtleOf(subtle).digest("SHA-256", spki));
  let value = bigOf(digest.subarray(0, 9)) >> 7n;
  let symbols = "";
  for (let i = 0; i < ID_SYMBOLS; i++) {
    symbols = ALPHABET[Number(value & 31n)] + symbols;
    value >>= 5n;
  }
  return `${symbols.slice(0, 4)}-${symbols.slice(4, 8)}-${symbols.slice(8)}`;
}

/**
 * "SHA256:" + unpadded base64 of SHA-256 of `der`, as rdesk.protocol.fingerprint: of a
 * certificate (what older pins hold), or of a SubjectPublicKeyInfo (a key pin, what
 * keyFingerprint gives and a viewer pins: a certificate re-issued for the key keeps it).
 */
export async function fingerprint(der, subtle) {
  const digest = new Uint8Array(await subtleOf(subtle).digest("SHA-256", der));
  return "SHA256:" + btoa(String.fromCharCode(...digest)).replace(/=+$/, "");
}

/** The key pin of a certificate: the fingerprint of its SubjectPublicKeyInfo. */
export const keyFingerprint = (certificate, subtle) => fingerprint(certificateSpki(certificate), subtle);

/** One DER element at `at` within `end`: {tag, start (of the content), end}, bounds-checked. */
function derElement(bytes, at, end) {
  if (at + 2 > end) throw new HostIdentityError("the host certificate's DER is cut short");
  const tag = bytes[at];
  let length = bytes[at + 1];
  let start = at + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    // Definite lengths of one to three bytes: a certificate is at most 8 KiB.
    if (count === 0 || count > 3 || start + count > end) throw new HostIdentityError("the host certificate's DER has a bad length");
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[start + i];
    start += count;
  }
  if (start + length > end) throw new HostIdentityError("the host certificate's DER runs past its end");
  return { tag, start, end: start + length };
}

/**
 * The SubjectPublicKeyInfo DER inside an X.509 certificate: Certificate -> tbsCertificate ->
 * [version] serial signature issuer validity subject SPKI. Only what it takes to reach it is
 * parsed; the key must be a P-256 key in the form rdesk hosts write (named curve, uncompressed),
 * which is also the form the ID hashes. Anything else is a HostIdentityError.
 */
export function certificateSpki(certificate) {
  const cert = derElement(certificate, 0, certificate.length);
  if (cert.tag !== 0x30 || cert.end !== certificate.length) throw new HostIdentityError("the host certificate is not one DER SEQUENCE");
  const tbs = derElement(certificate, cert.start, cert.end);
  if (tbs.tag !== 0x30) throw new HostIdentityError("the host certificate has no tbsCertificate");
  let at = tbs.start;
  let field = derElement(certificate, at, tbs.end);
  if (field.tag === 0xa0) {
    at = field.end; // the explicit [0] version
    field = derElement(certificate, at, tbs.end);
  }
  // serialNumber, signature, issuer, validity, subject: skip five elements.
  const expected = [0x02, 0x30, 0x30, 0x30, 0x30];
  for (const tag of expected) {
    field = derElement(certificate, at, tbs.end);
    if (field.tag !== tag) throw new HostIdentityError("the host certificate's fields are not in X.509 order");
    at = field.end;
  }
  const spki = derElement(certificate, at, tbs.end);
  const bytes = certificate.slice(at, spki.end);
  if (spki.tag !== 0x30 || bytes.length !== P256_SPKI_PREFIX.length + 64 || !equalBytes(bytes.subarray(0, P256_SPKI_PREFIX.length), P256_SPKI_PREFIX)) {
    throw new HostIdentityError("the host certificate's key is not ECDSA P-256");
  }
  return bytes;
}
