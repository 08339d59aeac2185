// Mouse and wheel on the desktop's canvas, keyboard and composed text in the hidden field over
// it → pointer, wheel and key messages (the key rules are core/keyinput.js's).
//
// Input is sent only while mayControl() says so (active, control role, holding control); the
// host enforces the same. Leaving the canvas or the window releases what is held.

import { KeyTranslator } from "../core/keyinput.js";
import { Preedit } from "./preedit.js";

// DOM MouseEvent.buttons bits → X button mask (bit n-1 = button n): left 1, middle 2, right 3,
// back 8. (Buttons 4-7 are the wheel, sent as wheel messages.)
function xButtons(domButtons) {
  let mask = 0;
  if (domButtons & 1) mask |= 1 << 0;
  if (domButtons & 4) mask |= 1 << 1;
  if (domButtons & 2) mask |= 1 << 2;
  if (domButtons & 8) mask |= 1 << 7;
  return mask;
}

/**
 * Capture the mouse on `canvas` and the keyboard on `field` (a hidden textarea); an input
 * method's text being composed shows in `preeditElement` until it is committed or cancelled.
 * @param {HTMLCanvasElement} canvas
 * @param {HTMLTextAreaElement} field
 * @param {HTMLElement} preeditElement
 * @param {{mayControl: () => boolean, send: (m: object) => boolean,
 *          hostPoint: (e: MouseEvent) => number[]}} io
 * @returns {{releaseAll: (sendReleases?: boolean) => void}}
 */
export function captureInput(canvas, field, preeditElement, { mayControl, send, hostPoint }) {
  const preedit = new Preedit(preeditElement);
  let lastPointer = null;
  let wheelX = 0;
  let wheelY = 0;
  const keys = new KeyTranslator();
  const sendAll = (messages) => {
    for (const message of messages) send(message);
  };

  const sendPointer = (event) => {
    preedit.point(event.clientX, event.clientY);
    if (!mayControl()) return;
    sendAll(keys.flush()); // a held-back Ctrl goes first: Ctrl+click keeps its Ctrl
    const [x, y] = hostPoint(event);
    const buttons = xButtons(event.buttons);
    const key = `${x},${y},${buttons}`;
    if (key === lastPointer) return;
    lastPointer = key;
    send({ t: "pointer", x, y, buttons });
  };

  canvas.addEventListener("pointermove", sendPointer);
  canvas.addEventListener("pointerdown", (event) => {
    // The field sits where the user last clicked, so an IME's candidate window opens there.
    field.style.left = `${event.clientX}px`;
    field.style.top = `${event.clientY}px`;
    field.focus({ preventScroll: true });
    if (!mayControl()) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    sendPointer(event);
  });
  // A click must not move the focus off the field (its blur would release Shift of Shift+click).
  canvas.addEventListener("mousedown", (event) => event.preventDefault());
  canvas.addEventListener("pointerup", (event) => {
    if (!mayControl()) return;
    event.preventDefault();
    sendPointer(event);
  });
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());

  canvas.addEventListener(
    "wheel",
    (event) => {
      if (!mayControl()) return;
      event.preventDefault();
      // One detent per 100 px (Chromium's notch), 3 lines or 1 page.
      const unit = event.deltaMode === 1 ? 3 : event.deltaMode === 2 ? 1 : 100;
      wheelX += event.deltaX / unit;
      wheelY += event.deltaY / unit;
      const dx = Math.max(-100, Math.min(100, Math.trunc(wheelX)));
      const dy = Math.max(-100, Math.min(100, Math.trunc(wheelY)));
      if (dx === 0 && dy === 0) return;
      wheelX -= dx;
      wheelY -= dy;
      const [x, y] = hostPoint(event);
      sendAll(keys.flush());
      send({ t: "wheel", x, y, dx, dy });
    },
    { passive: false },
  );

  // The keyboard goes through the hidden field: an editable element is what input methods,
  // dead keys and insertText need (nothing can be composed into a canvas). Whatever focuses
  // the canvas focuses the field instead.
  canvas.addEventListener("focus", () => field.focus({ preventScroll: true }));
  field.addEventListener("keydown", (event) => {
    if (!mayControl()) return;
    const { send: messages, prevent } = keys.keyDown(event);
    if (prevent) event.preventDefault(); // keep Tab, Backspace, / … from acting on the page
    sendAll(messages);
  });
  field.addEventListener("keyup", (event) => {
    if (!mayControl()) return;
    const { send: messages, prevent } = keys.keyUp(event);
    if (prevent) event.preventDefault();
    sendAll(messages);
  });
  // Text committed by an input method (compositionend) or inserted without keys (insertText:
  // on-screen keyboards, dictation). Keys inside a composition sent nothing (core/keyinput.js).
  // While composing, the text so far shows over the desktop (nothing is sent: a view-only
  // viewer, whose commit would not be sent either, sees none).
  field.addEventListener("compositionupdate", (event) => {
    if (mayControl()) preedit.show(event.data);
  });
  field.addEventListener("compositionend", (event) => {
    preedit.hide(); // committed, or cancelled (empty data)
    if (mayControl()) sendAll(keys.text(event.data));
    field.value = "";
  });
  field.addEventListener("input", (event) => {
    if (event.isComposing) return; // the composition's text comes once, at compositionend
    if (event.inputType === "insertText" && mayControl()) sendAll(keys.text(event.data));
    field.value = ""; // pasted text goes through the clipboard sync (a paste event), not as keys
  });

  const releaseAll = (sendReleases = true) => {
    const releases = keys.releaseAll();
    if (sendReleases && mayControl()) {
      sendAll(releases);
      if (lastPointer && !lastPointer.endsWith(",0")) {
        const [x, y] = lastPointer.split(",").map(Number);
        send({ t: "pointer", x, y, buttons: 0 });
      }
    }
    lastPointer = null;
  };
  field.addEventListener("blur", (event) => {
    preedit.hide(); // the input method drops its composition with the focus
    if (event.relatedTarget !== canvas) releaseAll(); // canvas.focus() comes straight back
  });
  window.addEventListener("blur", () => releaseAll());
  return { releaseAll };
}
