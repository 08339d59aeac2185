// The host's cursor drawn by the browser itself: a CSS cursor made from the host's PNG, so
// pointing feels local even on a slow link. data-cursor on <body> is the serial shown.

import { CursorCache } from "../core/cursor.js";
import { setStatus } from "./status.js";

export class HostCursor {
  /** @param {HTMLElement} element the screen canvas @param {(reason: string) => void} fail */
  constructor(element, fail) {
    this.element = element;
    this.fail = fail;
    this.cache = new CursorCache();
  }

  reset() {
    this.cache = new CursorCache();
    this.element.style.cursor = "";
  }

  /** true if it was a cursor message. */
  onMessage(message) {
    let shown;
    try {
      shown = this.cache.onMessage(message);
    } catch (err) {
      this.fail(err.reason || String(err));
      return true;
    }
    if (shown === undefined) return false;
    if (shown !== null) {
      const { shape, png } = shown;
      this.element.style.cursor = `url(data:image/png;base64,${png}) ${shape.xhot} ${shape.yhot}, default`;
      setStatus("cursor", shape.serial);
    }
    return true;
  }
}
