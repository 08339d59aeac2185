// The key bar: keys the local OS or browser keeps for itself (Ctrl+Alt+Del, Alt+Tab, Super,
// Esc in full screen, Tab, F-keys) sent to the host by a click.
//
// A bar key is a chord: its keysyms are pressed in order and released in reverse, as the same
// key messages typed keys send, and only while mayControl() says so (the host enforces it too).
// The canvas gets the focus back afterwards so typing continues where it was.

const CONTROL_L = 0xffe3;
const ALT_L = 0xffe9;
const SUPER_L = 0xffeb;
const DELETE = 0xffff;
const ESCAPE = 0xff1b;
const TAB = 0xff09;
const F1 = 0xffbe;

/** The chords of the bar's buttons, by the button's data-keys name. */
export const CHORDS = {
  "ctrl-alt-del": [CONTROL_L, ALT_L, DELETE],
  esc: [ESCAPE],
  tab: [TAB],
  super: [SUPER_L],
  "alt-tab": [ALT_L, TAB],
};
for (let n = 1; n <= 12; n++) CHORDS[`f${n}`] = [F1 + n - 1];

/** The key messages of one chord: every key down in order, then up in reverse. */
export function chordMessages(keysyms) {
  const down = keysyms.map((keysym) => ({ t: "key", keysym, down: true }));
  const up = [...keysyms].reverse().map((keysym) => ({ t: "key", keysym, down: false }));
  return [...down, ...up];
}

/**
 * Wire the bar: buttons with data-keys and the F-key menu (a select whose options' values
 * are CHORDS names).
 * @param {HTMLElement} bar
 * @param {HTMLCanvasElement} canvas
 * @param {{mayControl: () => boolean, send: (m: object) => boolean}} io
 */
export function wireKeyBar(bar, canvas, { mayControl, send }) {
  const press = (name) => {
    const keysyms = Object.prototype.hasOwnProperty.call(CHORDS, name) ? CHORDS[name] : null;
    if (keysyms === null || !mayControl()) return;
    for (const message of chordMessages(keysyms)) send(message);
    canvas.focus();
  };
  for (const button of bar.querySelectorAll("button[data-keys]")) {
    button.addEventListener("click", () => press(button.dataset.keys));
  }
  const fkeys = bar.querySelector("select");
  if (fkeys) {
    fkeys.addEventListener("change", () => {
      press(fkeys.value);
      fkeys.value = ""; // back to the "F-keys" label, so the same key can be chosen again
    });
  }
}
