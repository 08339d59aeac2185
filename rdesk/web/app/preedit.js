// An input method's text being composed (preedit), shown over the desktop: the host gets the
// text only once committed (app/input.js, core/keyinput.js), so without this the user would
// type blind until the commit. Shown at the pointer's last place over the screen (the host's
// text caret is not known to the viewer), where the hidden field also sits after a click, so
// the input method's candidate window opens beside it.

export class Preedit {
  /** @param {HTMLElement} element the overlay (#preedit) */
  constructor(element) {
    this.element = element;
    this.x = 0;
    this.y = 0;
  }

  /** The pointer is at page point (x, y): a composition starting now shows there. */
  point(x, y) {
    this.x = x;
    this.y = y;
  }

  /** Show `text` (an empty one hides the overlay), just below the point, inside the window. */
  show(text) {
    const element = this.element;
    if (!text) {
      this.hide();
      return;
    }
    element.textContent = text;
    element.hidden = false;
    const left = Math.max(0, Math.min(this.x, window.innerWidth - element.offsetWidth));
    const below = this.y + 18; // under the pointer's tip, not over what it points at
    const top = below + element.offsetHeight > window.innerHeight ? this.y - element.offsetHeight - 4 : below;
    element.style.left = `${left}px`;
    element.style.top = `${Math.max(0, top)}px`;
  }

  /** The composition ended (committed or cancelled). */
  hide() {
    this.element.hidden = true;
    this.element.textContent = "";
  }
}
