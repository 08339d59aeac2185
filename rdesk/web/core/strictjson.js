// Strict JSON for the wire's control messages (docs/protocol.md §2): RFC 8259, plus duplicate
// keys refused, nesting bounded and floats marked so that a schema's integer field never
// takes 1.0 or 1e0. Pure, no rdesk imports: codec.js turns a JSONError into a ProtocolError.

/** The text is not JSON the wire accepts; `message` is one line. */
export class JSONError extends Error {
  constructor(message) {
    super(message);
    this.name = "JSONError";
  }
}

// A JSON number written with a fraction or an exponent: never an integer (docs/protocol.md §2).
export class JSONFloat {
  constructor(value) {
    this.value = value;
  }
}

const MAX_DEPTH = 32;
const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * Parse `text` as one JSON value: objects as Maps (insertion order), numbers with a fraction
 * or an exponent as JSONFloat. Throws JSONError on anything RFC 8259 refuses, on a duplicate
 * key, or past MAX_DEPTH nested values.
 */
export function parseStrictJSON(text) {
  let i = 0;
  const fail = () => {
    throw new JSONError("message is not valid JSON");
  };
  const ws = () => {
    while (i < text.length && WS.has(text.charCodeAt(i))) i++;
  };
  const value = (depth) => {
    if (depth > MAX_DEPTH) fail();
    ws();
    const c = text[i];
    if (c === "{") return object(depth);
    if (c === "[") return array(depth);
    if (c === '"') return string();
    if (c === "-" || (c >= "0" && c <= "9")) return number();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    return fail();
  };
  const object = (depth) => {
    i++; // {
    const obj = new Map();
    ws();
    if (text[i] === "}") {
      i++;
      return obj;
    }
    for (;;) {
      ws();
      if (text[i] !== '"') fail();
      const key = string();
      ws();
      if (text[i] !== ":") fail();
      i++;
      const v = value(depth + 1);
      if (obj.has(key)) throw new JSONError("duplicate key in message");
      obj.set(key, v);
      ws();
      if (text[i] === ",") {
        i++;
        continue;
      }
      if (text[i] === "}") {
        i++;
        return obj;
      }
      fail();
    }
  };
  const array = (depth) => {
    i++; // [
    const arr = [];
    ws();
    if (text[i] === "]") {
      i++;
      return arr;
    }
    for (;;) {
      arr.push(value(depth + 1));
      ws();
      if (text[i] === ",") {
        i++;
        continue;
      }
      if (text[i] === "]") {
        i++;
        return arr;
      }
      fail();
    }
  };
  const string = () => {
    i++; // "
    let out = "";
    for (;;) {
      if (i >= text.length) fail();
      const ch = text.charCodeAt(i);
      if (ch === 0x22) {
        i++;
        return out;
      }
      if (ch < 0x20) fail(); // raw control characters are not JSON
      if (ch === 0x5c) {
        const e = text[i + 1];
        const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
        if (e in simple) {
          out += simple[e];
          i += 2;
        } else if (e === "u") {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail();
          out += String.fromCharCode(parseInt(hex, 16)); // may be a lone surrogate: checked later
          i += 6;
        } else {
          fail();
        }
      } else {
        out += text[i];
        i++;
      }
    }
  };
  const number = () => {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m) fail();
    i += m[0].length;
    const n = Number(m[0]);
    return m[2] !== undefined || m[3] !== undefined ? new JSONFloat(n) : n;
  };
  const result = value(0);
  ws();
  if (i !== text.length) fail();
  return result;
}
