// The statistics overlay: updates painted, round trip, bandwidth and picture quality, per second.

import { $ } from "./status.js";

const ENCODING_NAMES = { 1: "JPEG", 2: "PNG", 3: "WebP", 5: "H.264" };

function formatRate(bitsPerSecond) {
  if (bitsPerSecond >= 1e6) return `${(bitsPerSecond / 1e6).toFixed(1)} Mbit/s`;
  return `${Math.round(bitsPerSecond / 1e3)} kbit/s`;
}

export class StatsOverlay {
  constructor(now) {
    this.frames = 0;
    this.bytes = 0;
    this.lastExact = false;
    this.encodings = new Set();
    this.lastTick = now;
    $("stats-toggle").addEventListener("click", () => $("overlay").classList.toggle("off"));
  }

  get visible() {
    return !$("overlay").classList.contains("off");
  }

  onReceived(bytes) {
    this.bytes += bytes;
  }

  onPainted(update) {
    this.frames += 1;
    this.lastExact = update.exact;
    for (const rect of update.rects) if (ENCODING_NAMES[rect.encoding]) this.encodings.add(rect.encoding);
  }

  /**
   * Show the last second's numbers (when `active`) and start over. While the overlay is shown it
   * asks `connection` for a fresh round trip (an on-demand ping; none while one is outstanding).
   */
  tick(now, active, connection) {
    const seconds = (now - this.lastTick) / 1000 || 1;
    this.lastTick = now;
    if (active) {
      const rtt = connection && connection.session ? connection.session.rtt : null;
      $("stat-fps").textContent = (this.frames / seconds).toFixed(1);
      $("stat-rtt").textContent = rtt === null ? "–" : `${Math.round(rtt)} ms`;
      $("stat-bw").textContent = formatRate((this.bytes * 8) / seconds);
      const names = [...this.encodings].map((e) => ENCODING_NAMES[e]).join("+");
      $("stat-quality").textContent = `${this.lastExact ? "lossless" : "lossy"}${names ? ` (${names})` : ""}`;
      if (this.visible && connection) connection.ping();
    }
    this.frames = 0;
    this.bytes = 0;
    this.encodings.clear();
  }
}
