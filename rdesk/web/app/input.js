// Keyboard, mouse and wheel on the desktop's canvas → pointer, wheel and key messages.
//
// Input is sent only while mayControl() says so (active, control role, holding control); the
// host enforces the same. Leaving the canvas or the window releases what is held.

import { keysymFor } from "../core/keys.js";

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
 * Capture input on `canvas`.
 * @param {HTMLCanvasElement} canvas
 * @param {{mayControl: () => boolean, send: (m: object) => boolean,
 *          hostPoint: (e: MouseEvent) => number[]}} io
 * @returns {{releaseAll: (sendReleases?: boolean) => void}}
 */
export function captureInput(canvas, { mayControl, send, hostPoint }) {
  let lastPointer = null;
  let wheelX = 0;
  let wheelY = 0;
  const heldKeys = new Map(); // KeyboardEvent.code (or key) → keysym sent on key down

  const sendPointer = (event) => {
    if (!mayControl()) return;
    const [x, y] = hostPoint(event);
    const buttons = xButtons(event.buttons);
    const key = `${x},${y},${buttons}`;
    if (key === lastPointer) return;
    lastPointer = key;
    send({ t: "pointer", x, y, buttons });
  };

  canvas.addEventListener("pointermove", sendPointer);
  canvas.addEventListener("pointerdown", (event) => {
    canvas.focus();
    if (!mayControl()) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    sendPointer(event);
  });
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
      send({ t: "wheel", x, y, dx, dy });
    },
    { passive: false },
  );

  canvas.addEventListener("keydown", (event) => {
    if (!mayControl() || event.isComposing) return;
    const keysym = keysymFor(event);
    if (keysym === null) return;
    event.preventDefault(); // keep Tab, Backspace, / … from acting on the page
    heldKeys.set(event.code || event.key, keysym);
    send({ t: "key", keysym, down: true });
  });
  canvas.addEventListener("keyup", (event) => {
    if (!mayControl()) return;
    const id = event.code || event.key;
    // Release what was pressed, even if the modifiers changed the key's meaning meanwhile.
    const keysym = heldKeys.has(id) ? heldKeys.get(id) : keysymFor(event);
    heldKeys.delete(id);
    if (keysym === null) return;
    event.preventDefault();
    send({ t: "key", keysym, down: false });
  });

  const releaseAll = (sendReleases = true) => {
    if (sendReleases && mayControl()) {
      for (const keysym of heldKeys.values()) send({ t: "key", keysym, down: false });
      if (lastPointer && !lastPointer.endsWith(",0")) {
        const [x, y] = lastPointer.split(",").map(Number);
        send({ t: "pointer", x, y, buttons: 0 });
      }
    }
    heldKeys.clear();
    lastPointer = null;
  };
  canvas.addEventListener("blur", () => releaseAll());
  window.addEventListener("blur", () => releaseAll());
  return { releaseAll };
}
