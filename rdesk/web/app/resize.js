// "Resize desktop": the host's virtual desktop takes the size of the page's screen area
// (docs/protocol.md, "Resize"; docs/browser.md). While the toolbar's checkbox is on, the area's
// size is sent DEBOUNCE_MS after the window last changed size (a drag sends one request), when
// the box is ticked and at each login. A refusal (a real display, Xvfb, not in control) is
// shown and unticks the box. data-resize-sent on <body> is the last size sent ("WxH"),
// data-resize-result the host's last answer ("ok WxH" or the reason).

import { RESIZE } from "../core/codec.js";
import { $, setStatus, showBanner } from "./status.js";

const DEBOUNCE_MS = 300;
const clamp = (v) => Math.min(Math.max(Math.floor(v), RESIZE.MIN_SIDE), RESIZE.MAX_SIDE);

export class DesktopResize {
  /**
   * @param {(message: object) => boolean} send
   * @param {() => [number, number]} current the framebuffer's size now
   */
  constructor(send, current) {
    this.send = send;
    this.current = current;
    this.box = $("resize-desktop");
    this.nextId = 1;
    this.timer = null;
    window.addEventListener("resize", () => this.soon());
    this.box.addEventListener("change", () => this.soon());
  }

  /** Send the area's size once it has stayed put (no-op while the box is off). */
  soon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.now(), DEBOUNCE_MS);
  }

  now() {
    this.timer = null;
    if (!this.box.checked) return;
    const area = $("screen-area");
    const width = clamp(area.clientWidth);
    const height = clamp(area.clientHeight);
    const [w, h] = this.current();
    if (width === w && height === h) return;
    const id = this.nextId;
    this.nextId = (this.nextId + 1) >>> 0;
    if (this.send({ t: "resize", id, width, height })) setStatus("resizeSent", `${width}x${height}`);
  }

  /** true if it was a resize message. */
  onMessage(message) {
    if (message.t !== "resize_result") return false;
    if (message.ok) {
      setStatus("resizeResult", `ok ${message.width}x${message.height}`);
    } else if (!message.reason.startsWith("replaced")) {
      setStatus("resizeResult", message.reason);
      this.box.checked = false;
      showBanner(`Resize refused: ${message.reason}`);
    }
    return true;
  }
}
