// The page's clipboard sync: the host's text into the local clipboard with the async Clipboard
// API (navigator.clipboard.writeText), the local text to the host when the page regains focus
// (navigator.clipboard.readText, where the browser lets the page read) or on a paste event
// (which every browser allows). Where neither works, the host's last text is shown in the
// fallback panel (#clipboard-panel) to copy by hand.
//
// Status attributes on <body> (for people's tools and the tests): data-clipboard-sent (bytes of
// the last text the host took), data-clipboard-received (bytes of the last host text put into
// the local clipboard), data-clipboard-refused (the host's last refusal).

import { ClipboardExchange } from "../core/clipboard.js";
import { setStatus } from "./status.js";

export class ClipboardSync {
  /**
   * @param {(message: object) => boolean} send
   * @param {(reason: string) => void} fail
   * @param {() => boolean} mayWrite whether this viewer may send (a control login)
   */
  constructor(send, fail, mayWrite) {
    this.send = send;
    this.fail = fail;
    this.mayWrite = mayWrite;
    this.exchange = null;
    this.last = null; // the last text either way: never sent back where it came from
    window.addEventListener("focus", () => this.readLocal());
    document.addEventListener("paste", (event) => {
      const text = event.clipboardData ? event.clipboardData.getData("text/plain") : "";
      if (text) this.toHost(text);
    });
  }

  /** A new session: forget the last one's state. */
  reset() {
    this.exchange = new ClipboardExchange(this.send, this.fail);
    this.exchange.onText = (selection, text) => {
      if (selection === "clipboard") this.toLocal(text);
    };
    this.exchange.onResult = (result) => {
      if (!result.ok) setStatus("clipboardRefused", result.reason);
      else if (this.pending && this.pending.id === result.id) setStatus("clipboardSent", this.pending.size);
    };
    this.pending = null;
    this.last = null;
    this.readLocal();
  }

  onMessage(message) {
    return this.exchange !== null && this.exchange.onMessage(message);
  }

  /** Send the local clipboard's text if the browser lets the page read it. */
  async readLocal() {
    if (this.exchange === null || !navigator.clipboard || !navigator.clipboard.readText) return;
    try {
      const text = await navigator.clipboard.readText();
      if (text) this.toHost(text);
    } catch (err) {
      /* not allowed here (no permission, no focus): the paste event still works */
    }
  }

  toHost(text) {
    if (this.exchange === null || text === this.last || !this.mayWrite()) return;
    this.last = text;
    const id = this.exchange.sendText(text);
    if (typeof id === "string") setStatus("clipboardRefused", id);
    else this.pending = { id, size: new TextEncoder().encode(text).length };
  }

  async toLocal(text) {
    this.last = text;
    const panel = document.getElementById("clipboard-panel");
    try {
      await navigator.clipboard.writeText(text);
      setStatus("clipboardReceived", new TextEncoder().encode(text).length);
      if (panel) panel.hidden = true;
    } catch (err) {
      // The fallback: shown only when the page may not write the clipboard itself.
      if (panel) {
        panel.hidden = false;
        const area = panel.querySelector("textarea");
        if (area) area.value = text;
      }
    }
  }
}
