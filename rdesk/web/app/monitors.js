// The monitor selector: a <select> in the toolbar listing the host's monitors (docs/protocol.md,
// "Monitors"); choosing one asks the host to share it (only the viewer in control may: the
// host answers anyone else with a notice). Hidden while the host has a single monitor.
// data-monitor on <body> is the shared monitor's index (-1: the whole screen).

import { setStatus } from "./status.js";

export class MonitorSelector {
  /** @param {(message: object) => boolean} send */
  constructor(send) {
    this.send = send;
    this.monitors = new Map();
    this.select = document.createElement("select");
    this.select.id = "monitor-select";
    this.select.title = "Monitor";
    this.select.hidden = true;
    this.select.addEventListener("change", () => this.send({ t: "select_monitor", index: Number(this.select.value) }));
    const toolbar = document.getElementById("toolbar");
    const before = document.getElementById("disconnect");
    if (toolbar) toolbar.insertBefore(this.select, before && before.parentNode === toolbar ? before : null);
  }

  reset() {
    this.monitors.clear();
    this.select.hidden = true;
  }

  /** true if it was a monitor message. */
  onMessage(message) {
    if (message.t === "monitor") {
      // A list sent again (the host's monitors changed) replaces the old: drop what is past it.
      for (const index of [...this.monitors.keys()]) {
        if (index >= message.count) this.monitors.delete(index);
      }
      this.monitors.set(message.index, message);
      return true;
    }
    if (message.t !== "monitor_current") return false;
    this.select.replaceChildren();
    const add = (value, label) => {
      const option = document.createElement("option");
      option.value = String(value);
      option.textContent = label;
      this.select.append(option);
    };
    add(-1, "All monitors");
    for (const m of [...this.monitors.values()].sort((a, b) => a.index - b.index)) {
      add(m.index, `${m.index}: ${m.name} ${m.width}×${m.height}`);
    }
    this.select.value = String(message.index);
    this.select.hidden = this.monitors.size <= 1;
    setStatus("monitor", message.index);
    return true;
  }
}
