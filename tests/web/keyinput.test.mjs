// The key rules of core/keyinput.js: IME keys send nothing, committed text is typed once,
// Windows' AltGr (fake ControlLeft + AltRight) is neither Ctrl nor Alt on the host.

import assert from "node:assert/strict";
import { test } from "node:test";

import { CONTROL_L, FAKE_CTRL_MS, ISO_LEVEL3_SHIFT, KeyTranslator, MAX_TEXT_CHARS } from "../../rdesk/web/core/keyinput.js";

const D = (keysym) => ({ t: "key", keysym, down: true });
const U = (keysym) => ({ t: "key", keysym, down: false });
const kd = (key, code, extra = {}) => ({ key, code, timeStamp: 0, repeat: false, isComposing: false, keyCode: 0, ...extra });

/** Feed [kind, event] pairs; return every message sent. */
function run(tr, steps) {
  const out = [];
  for (const [kind, event] of steps) {
    if (kind === "down") out.push(...tr.keyDown(event).send);
    else if (kind === "up") out.push(...tr.keyUp(event).send);
    else if (kind === "text") out.push(...tr.text(event));
    else out.push(...tr.flush());
  }
  return out;
}

test("a character key goes as its character, released under the keysym it was pressed with", () => {
  const tr = new KeyTranslator();
  assert.deepEqual(run(tr, [["down", kd("A", "KeyA")], ["up", kd("a", "KeyA")]]), [D(0x41), U(0x41)]);
  assert.deepEqual(tr.keyDown(kd("a", "KeyA")).prevent, true);
});

test("keys of a composition send nothing and are left to the input method", () => {
  const tr = new KeyTranslator();
  for (const event of [kd("Process", "KeyN"), kd("n", "KeyN", { keyCode: 229 }), kd("n", "KeyN", { isComposing: true })]) {
    assert.deepEqual(tr.keyDown(event), { send: [], prevent: false });
  }
  // Their keyups release nothing: nothing was pressed.
  assert.deepEqual(tr.keyUp(kd("n", "KeyN")), { send: [], prevent: false });
  // The committed text is typed once, character by character.
  assert.deepEqual(tr.text("你好"), [D(0x0100_4f60), U(0x0100_4f60), D(0x0100_597d), U(0x0100_597d)]);
});

test("dead keys send nothing; the composed character goes as itself", () => {
  const tr = new KeyTranslator();
  assert.deepEqual(run(tr, [["down", kd("Dead", "BracketLeft")], ["up", kd("Dead", "BracketLeft")]]), []);
  assert.equal(tr.keyDown(kd("Dead", "BracketLeft")).prevent, false);
  assert.deepEqual(run(tr, [["down", kd("ê", "KeyE")], ["up", kd("e", "KeyE")]]), [D(0xea), U(0xea)]);
});

test("committed text: newline and tab as keys, other controls skipped, at most MAX_TEXT_CHARS", () => {
  const tr = new KeyTranslator();
  assert.deepEqual(tr.text("a\nb\t\u0007"), [D(0x61), U(0x61), D(0xff0d), U(0xff0d), D(0x62), U(0x62), D(0xff09), U(0xff09)]);
  assert.equal(tr.text("x".repeat(MAX_TEXT_CHARS + 5)).length, 2 * MAX_TEXT_CHARS);
  assert.deepEqual(tr.text(undefined), []);
  assert.equal(tr.held.size, 0);
});

test("Windows AltGr: the fake ControlLeft is dropped, the character goes alone", () => {
  const tr = new KeyTranslator();
  const t = 1000;
  const sent = run(tr, [
    ["down", kd("Control", "ControlLeft", { timeStamp: t })],
    ["down", kd("AltGraph", "AltRight", { timeStamp: t })],
    ["down", kd("@", "KeyQ", { timeStamp: t + 200 })],
    ["down", kd("Control", "ControlLeft", { timeStamp: t + 500, repeat: true })], // auto-repeat
    ["up", kd("@", "KeyQ")],
    ["up", kd("Control", "ControlLeft")],
    ["up", kd("AltGraph", "AltRight")],
  ]);
  assert.deepEqual(sent, [D(0x40), U(0x40)]);
  assert.equal(tr.held.size, 0);
  assert.deepEqual(tr.releaseAll(), []);
});

test("Linux AltGr (no fake Ctrl): € goes as itself, AltGr is not sent", () => {
  const tr = new KeyTranslator();
  const sent = run(tr, [
    ["down", kd("AltGraph", "AltRight")],
    ["down", kd("€", "KeyE")],
    ["up", kd("€", "KeyE")],
    ["up", kd("AltGraph", "AltRight")],
  ]);
  assert.deepEqual(sent, [D(0x0100_20ac), U(0x0100_20ac)]);
});

test("AltGr with a key that has no character sends ISO_Level3_Shift first, released at AltGr's keyup", () => {
  const tr = new KeyTranslator();
  const sent = run(tr, [
    ["down", kd("AltGraph", "AltRight")],
    ["down", kd("ArrowLeft", "ArrowLeft")],
    ["up", kd("ArrowLeft", "ArrowLeft")],
    ["down", kd("ArrowLeft", "ArrowLeft")], // pressed again: AltGr is already down
    ["up", kd("ArrowLeft", "ArrowLeft")],
    ["up", kd("AltGraph", "AltRight")],
  ]);
  assert.deepEqual(sent, [D(ISO_LEVEL3_SHIFT), D(0xff51), U(0xff51), D(0xff51), U(0xff51), U(ISO_LEVEL3_SHIFT)]);
});

test("a real Ctrl is sent before the key it goes with, in order", () => {
  const tr = new KeyTranslator();
  const ctrl = kd("Control", "ControlLeft", { timeStamp: 10 });
  assert.deepEqual(tr.keyDown(ctrl), { send: [], prevent: true }); // held back for now
  const sent = run(tr, [
    ["down", kd("c", "KeyC", { timeStamp: 12 })],
    ["up", kd("c", "KeyC")],
    ["up", kd("Control", "ControlLeft")],
  ]);
  assert.deepEqual(sent, [D(CONTROL_L), D(0x63), U(0x63), U(CONTROL_L)]);
});

test("Ctrl then AltGr pressed apart is a real Ctrl", () => {
  const tr = new KeyTranslator();
  const sent = run(tr, [
    ["down", kd("Control", "ControlLeft", { timeStamp: 0 })],
    ["down", kd("AltGraph", "AltRight", { timeStamp: FAKE_CTRL_MS + 1 })],
  ]);
  assert.deepEqual(sent, [D(CONTROL_L)]);
  assert.deepEqual(tr.releaseAll(), [U(CONTROL_L)]);
});

test("a Ctrl tapped alone is sent at its keyup; flush() sends it before a click", () => {
  const tr = new KeyTranslator();
  assert.deepEqual(run(tr, [["down", kd("Control", "ControlLeft")], ["up", kd("Control", "ControlLeft")]]),
    [D(CONTROL_L), U(CONTROL_L)]);
  assert.deepEqual(run(tr, [["down", kd("Control", "ControlLeft")], ["flush"], ["flush"]]), [D(CONTROL_L)]);
  assert.deepEqual(run(tr, [["text", "a"]]), [D(0x61), U(0x61)]); // already down: not again
  assert.deepEqual(tr.releaseAll(), [U(CONTROL_L)]);
});

test("ControlRight is never held back", () => {
  const tr = new KeyTranslator();
  assert.deepEqual(tr.keyDown(kd("Control", "ControlRight")).send, [D(0xffe4)]);
});

test("releaseAll releases last pressed first and forgets a held-back Ctrl", () => {
  const tr = new KeyTranslator();
  run(tr, [["down", kd("Shift", "ShiftLeft")], ["down", kd("A", "KeyA")], ["down", kd("Control", "ControlLeft")]]);
  assert.deepEqual(tr.releaseAll(), [U(0x41), U(0xffe1)]);
  assert.deepEqual(run(tr, [["up", kd("Control", "ControlLeft")]]), []);
});
