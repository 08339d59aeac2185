// Key events and committed text → the key messages the host gets (pure logic, no DOM).
//
// KeyTranslator owns what this viewer holds down on the host and three rules on top of
// keysymFor():
//
// - **IME and dead keys.** A keydown that belongs to a composition (isComposing, key "Process",
//   keyCode 229) sends nothing and is left to the input method; the composed text arrives once,
//   through text(), typed as characters (down then up each). Nothing is sent twice.
// - **AltGr is not Ctrl+Alt.** Windows reports AltGr as a fake ControlLeft keydown followed at
//   once (same timestamp) by AltRight "AltGraph". A ControlLeft keydown is therefore held back
//   until the next input: if that is AltRight "AltGraph" within FAKE_CTRL_MS, the Ctrl is
//   dropped (with its keyup and repeats); anything else sends it first, in order. The caller
//   calls flush() before pointer, wheel and key-bar input, so Ctrl+click keeps its Ctrl.
// - **AltGr itself is not sent** while it only selects characters: the characters it produces
//   ("@", "€" …) go as themselves, so the host types them whatever its own layout. Only a key
//   without a character pressed with AltGr held (AltGr+arrow) sends ISO_Level3_Shift first.

import { charToKeysym, keysymFor } from "./keys.js";

export const CONTROL_L = 0xffe3;
export const ISO_LEVEL3_SHIFT = 0xfe03;
const RETURN = 0xff0d;
const TAB = 0xff09;

/** The fake Ctrl of Windows' AltGr comes with the same timestamp; allow a little skew. */
export const FAKE_CTRL_MS = 50;
/** At most this many characters of one committed text are typed; the rest is dropped. */
export const MAX_TEXT_CHARS = 1000;

const down = (keysym) => ({ t: "key", keysym, down: true });
const up = (keysym) => ({ t: "key", keysym, down: false });
const idOf = (event) => event.code || event.key;

/** The keysym a committed character is typed as, or null (other control characters). */
export function textKeysym(ch) {
  if (ch === "\n" || ch === "\r") return RETURN;
  if (ch === "\t") return TAB;
  return charToKeysym(ch);
}

export class KeyTranslator {
  constructor() {
    this.held = new Map(); // key id (code, or key) → keysym sent down, in pressing order
    this.pendingCtrl = null; // {id, timeStamp}: a ControlLeft keydown not sent yet
    this.fakeCtrl = null; // the id of a ControlLeft swallowed as part of AltGr
    this.altGr = null; // {id, sent}: AltGr held locally; sent = ISO_Level3_Shift is down
  }

  /**
   * A keydown-like {key, code, timeStamp, repeat, isComposing, keyCode}.
   * @returns {{send: object[], prevent: boolean}} the messages, and whether the page's default
   *   action must be stopped (every key that sends or is held back; never an IME's key)
   */
  keyDown(event) {
    if (event.isComposing || event.key === "Process" || event.keyCode === 229) {
      return { send: [], prevent: false };
    }
    const id = idOf(event);
    const send = [];
    if (this.pendingCtrl !== null) {
      const ctrl = this.pendingCtrl;
      if (id === ctrl.id) return { send, prevent: true }; // its auto-repeat
      this.pendingCtrl = null;
      const isAltGr = event.code === "AltRight" && event.key === "AltGraph";
      if (isAltGr && Math.abs((event.timeStamp || 0) - (ctrl.timeStamp || 0)) < FAKE_CTRL_MS) {
        this.fakeCtrl = ctrl.id;
      } else {
        send.push(this._press(ctrl.id, CONTROL_L));
      }
    }
    if (id === this.fakeCtrl) return { send, prevent: true }; // the fake Ctrl's auto-repeat
    if (event.code === "ControlLeft" && event.key === "Control" && !this.held.has(id)) {
      this.pendingCtrl = { id, timeStamp: event.timeStamp || 0 };
      return { send, prevent: true };
    }
    const keysym = keysymFor(event);
    if (keysym === ISO_LEVEL3_SHIFT) {
      if (this.altGr === null) this.altGr = { id, sent: false };
      return { send, prevent: true };
    }
    if (keysym === null) return { send, prevent: false }; // "Dead", "Unidentified" …
    const isChar = Array.from(event.key).length === 1;
    if (this.altGr !== null && !this.altGr.sent && !isChar) {
      this.altGr.sent = true;
      send.push(this._press(this.altGr.id, ISO_LEVEL3_SHIFT));
    }
    send.push(this._press(id, keysym));
    return { send, prevent: true };
  }

  /** A keyup-like {key, code}: releases what its keydown pressed (under that keysym). */
  keyUp(event) {
    const id = idOf(event);
    const send = [];
    if (this.pendingCtrl !== null) {
      const ctrl = this.pendingCtrl;
      this.pendingCtrl = null;
      send.push(this._press(ctrl.id, CONTROL_L)); // a Ctrl tapped alone, or held over this key
    }
    if (id === this.fakeCtrl) {
      this.fakeCtrl = null;
      return { send, prevent: true };
    }
    if (this.altGr !== null && id === this.altGr.id) {
      const wasSent = this.altGr.sent;
      this.altGr = null;
      if (!wasSent) return { send, prevent: true };
    }
    if (!this.held.has(id)) return { send, prevent: send.length > 0 };
    send.push(up(this.held.get(id)));
    this.held.delete(id);
    return { send, prevent: true };
  }

  /**
   * Committed text (an input method's composition, a dead key's result, insertText): each
   * character pressed and released, at most MAX_TEXT_CHARS of them; control characters other
   * than newline and tab are skipped.
   */
  text(data) {
    const send = this.flush();
    if (typeof data !== "string") return send;
    for (const ch of Array.from(data).slice(0, MAX_TEXT_CHARS)) {
      const keysym = textKeysym(ch);
      if (keysym !== null) send.push(down(keysym), up(keysym));
    }
    return send;
  }

  /** Other input is about to be sent: a held-back Ctrl is a real one, send it first. */
  flush() {
    if (this.pendingCtrl === null) return [];
    const ctrl = this.pendingCtrl;
    this.pendingCtrl = null;
    return [this._press(ctrl.id, CONTROL_L)];
  }

  /** Forget everything held; the releases of what was sent, last pressed first. */
  releaseAll() {
    const send = [...this.held.values()].reverse().map(up);
    this.held.clear();
    this.pendingCtrl = null;
    this.fakeCtrl = null;
    this.altGr = null;
    return send;
  }

  _press(id, keysym) {
    this.held.delete(id); // re-inserted last: releaseAll goes in reverse pressing order
    this.held.set(id, keysym);
    return down(keysym);
  }
}
