// KeyboardEvent → X11 keysym (the names and values of rdesk/protocol/keysyms.py, keysymdef.h).
//
// A key that produces one character (KeyboardEvent.key is a single code point) is sent as that
// character's keysym: Latin-1 as itself, anything else as 0x01000000 + code point. Other keys
// are named by KeyboardEvent.key; where the left and right variants differ (Shift, Control,
// Alt, Meta) KeyboardEvent.code decides. The numeric keypad is told apart by code as well.
//
// Pure mapping: it reads only the `key` and `code` of the event-like object it is given.

export const UNICODE_OFFSET = 0x01000000;

/** The keysym of one character: Latin-1 is its own keysym, the rest 0x01000000 + code point. */
export function charToKeysym(ch) {
  const cp = ch.codePointAt(0);
  if ((cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xff)) return cp;
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return null;
  return UNICODE_OFFSET + cp;
}

// KeyboardEvent.key values (UI Events KeyboardEvent key Values) → keysym.
const NAMED = {
  Backspace: 0xff08,
  Tab: 0xff09,
  Clear: 0xff0b,
  Enter: 0xff0d,
  Pause: 0xff13,
  ScrollLock: 0xff14,
  Escape: 0xff1b,
  Home: 0xff50,
  ArrowLeft: 0xff51,
  ArrowUp: 0xff52,
  ArrowRight: 0xff53,
  ArrowDown: 0xff54,
  PageUp: 0xff55,
  PageDown: 0xff56,
  End: 0xff57,
  Select: 0xff60,
  PrintScreen: 0xff61,
  Execute: 0xff62,
  Insert: 0xff63,
  Undo: 0xff65,
  Redo: 0xff66,
  ContextMenu: 0xff67,
  Find: 0xff68,
  Cancel: 0xff69,
  Help: 0xff6a,
  NumLock: 0xff7f,
  CapsLock: 0xffe5,
  AltGraph: 0xfe03,
  Delete: 0xffff,
  AudioVolumeDown: 0x1008ff11,
  AudioVolumeMute: 0x1008ff12,
  AudioVolumeUp: 0x1008ff13,
  MediaPlayPause: 0x1008ff14,
  MediaStop: 0x1008ff15,
  MediaTrackPrevious: 0x1008ff16,
  MediaTrackNext: 0x1008ff17,
};
for (let n = 1; n <= 35; n++) NAMED[`F${n}`] = 0xffbe + n - 1;

// KeyboardEvent.code values whose side matters.
const BY_CODE = {
  ShiftLeft: 0xffe1,
  ShiftRight: 0xffe2,
  ControlLeft: 0xffe3,
  ControlRight: 0xffe4,
  AltLeft: 0xffe9,
  AltRight: 0xffea,
  MetaLeft: 0xffeb, // Super_L: what the Windows / Command key is on X
  MetaRight: 0xffec,
  OSLeft: 0xffeb,
  OSRight: 0xffec,
  NumpadEnter: 0xff8d,
  NumpadMultiply: 0xffaa,
  NumpadAdd: 0xffab,
  NumpadSubtract: 0xffad,
  NumpadDecimal: 0xffae,
  NumpadDivide: 0xffaf,
};
// Keypad keys in their non-digit role (NumLock off): KP_Home etc.
const KEYPAD_NAV = {
  Home: 0xff95,
  ArrowLeft: 0xff96,
  ArrowUp: 0xff97,
  ArrowRight: 0xff98,
  ArrowDown: 0xff99,
  PageUp: 0xff9a,
  PageDown: 0xff9b,
  End: 0xff9c,
  Clear: 0xff9d,
  Insert: 0xff9e,
  Delete: 0xff9f,
};

/** The keysym for a KeyboardEvent-like {key, code}, or null if it has none. */
export function keysymFor(event) {
  const { key, code } = event;
  if (typeof key !== "string" || key.length === 0) return null;
  const chars = Array.from(key);
  if (key === "AltGraph") return NAMED.AltGraph; // right Alt as AltGr on many layouts
  // Modifiers by side, KP_Enter; a keypad operator that types a character ("+") goes as that
  // character below, which is what X applications expect from it.
  if (code && Object.prototype.hasOwnProperty.call(BY_CODE, code) && chars.length !== 1) return BY_CODE[code];
  if (code && code.startsWith("Numpad") && Object.prototype.hasOwnProperty.call(KEYPAD_NAV, key)) return KEYPAD_NAV[key];
  if (Object.prototype.hasOwnProperty.call(NAMED, key)) return NAMED[key];
  if (chars.length === 1) return charToKeysym(chars[0]);
  if (key === "Shift") return 0xffe1;
  if (key === "Control") return 0xffe3;
  if (key === "Alt") return 0xffe9;
  if (key === "Meta" || key === "OS") return 0xffeb;
  return null; // "Dead", "Unidentified", "Process" (IME) …: nothing to send
}
