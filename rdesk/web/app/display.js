// The desktop's canvas on the page: the framebuffer drawing into it, fit to window, full
// screen, and mapping pointer positions back to host pixels.

import { FrameBuffer } from "../core/framebuffer.js";
import { $ } from "./status.js";

export class Display {
  constructor(canvas) {
    this.canvas = canvas;
    this.framebuffer = new FrameBuffer(canvas.getContext("2d", { alpha: false }));
    window.addEventListener("resize", () => this.layout());
    document.addEventListener("fullscreenchange", () => this.layout());
    $("fit").addEventListener("change", () => this.layout());
    $("fullscreen").addEventListener("click", () => {
      if (document.fullscreenElement) document.exitFullscreen();
      else $("desktop").requestFullscreen().catch(() => {});
      canvas.focus();
    });
  }

  /** Size the canvas on the page: scaled to the screen area, or 1:1. */
  layout() {
    const { canvas } = this;
    const fit = $("fit").checked;
    document.body.classList.toggle("fit", fit);
    if (!fit) {
      canvas.style.width = `${canvas.width}px`;
      canvas.style.height = `${canvas.height}px`;
      return;
    }
    const area = $("screen-area");
    const scale = Math.min(area.clientWidth / canvas.width, area.clientHeight / canvas.height) || 1;
    canvas.style.width = `${Math.max(1, Math.floor(canvas.width * scale))}px`;
    canvas.style.height = `${Math.max(1, Math.floor(canvas.height * scale))}px`;
  }

  /** The host pixel under a mouse event, under whatever scaling the canvas is shown with. */
  hostPoint(event) {
    const { canvas } = this;
    const r = canvas.getBoundingClientRect();
    const x = Math.floor(((event.clientX - r.left) * canvas.width) / r.width);
    const y = Math.floor(((event.clientY - r.top) * canvas.height) / r.height);
    return [Math.min(Math.max(x, 0), canvas.width - 1), Math.min(Math.max(y, 0), canvas.height - 1)];
  }
}
