// The page's file transfer: a "Files" button opens a panel where files are dropped or picked
// (dropping anywhere on the page works too), each with a progress bar, its speed and time left,
// and a cancel button; below, the host's transfer folder with a download button per file.
// The protocol work is core/transfer.js's; this module only draws it.
//
// Test hooks: each row is <li class="transfer" data-name data-direction data-state>, with
// data-state "running", "done", "failed" or "cancelled" and its last line in .transfer-text.

import { Meter, Transfers } from "../core/transfer.js";
import { $ } from "./status.js";

const REDRAW_MS = 100;

function element(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
}

function megabytes(bytes) {
  return (bytes / 1e6).toFixed(1);
}

function clock(seconds) {
  const s = Math.round(seconds);
  const mm = String(Math.floor(s / 60) % 60).padStart(s >= 3600 ? 2 : 1, "0");
  const ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${mm}:${ss}`;
}

export class TransferPanel {
  /**
   * @param {(message: object) => boolean} send sends a message if connected
   * @param {(reason: string) => void} onViolation the host broke the transfer protocol
   */
  constructor(send, onViolation) {
    this.send = send;
    this.onViolation = onViolation;
    this.transfers = this.fresh();
    this.build();
  }

  build() {
    this.button = element("button", { id: "files-toggle", type: "button", textContent: "Files" });
    $("toolbar").insertBefore(this.button, $("disconnect"));
    this.picker = element("input", { id: "transfer-pick", type: "file", multiple: true });
    this.rows = element("ul", { id: "transfer-list" });
    this.files = element("ul", { id: "transfer-files" });
    this.error = element("div", { id: "transfer-error", role: "status" });
    const refresh = element("button", { id: "transfer-refresh", type: "button", textContent: "Refresh" });
    this.drop = element("div", { id: "transfer-drop", textContent: "Drop files here, or choose: " }, this.picker);
    this.panel = element(
      "div", { id: "transfer-panel", hidden: true },
      element("h2", { textContent: "Files" }), this.drop, this.rows,
      element("h3", { textContent: "The host's transfer folder " }, refresh), this.files, this.error,
    );
    const style = this.panel.style; // CSSOM, which the page's CSP allows (no inline style)
    Object.assign(style, {
      position: "absolute", right: "8px", top: "48px", width: "360px", maxHeight: "70vh",
      overflow: "auto", background: "#222", color: "#eee", padding: "8px", zIndex: "20",
      border: "1px solid #555", font: "13px sans-serif",
    });
    Object.assign(this.drop.style, { border: "2px dashed #888", padding: "12px", margin: "4px 0" });
    $("screen-area").append(this.panel);

    this.button.addEventListener("click", () => {
      this.panel.hidden = !this.panel.hidden;
      if (!this.panel.hidden) this.refresh();
    });
    refresh.addEventListener("click", () => this.refresh());
    this.picker.addEventListener("change", () => {
      for (const file of this.picker.files) this.upload(file);
      this.picker.value = "";
    });
    // Dropping anywhere on the page sends the files; the browser must not open them instead.
    document.addEventListener("dragover", (event) => {
      if (event.dataTransfer && [...event.dataTransfer.types].includes("Files")) event.preventDefault();
    });
    document.addEventListener("drop", (event) => {
      if (!event.dataTransfer || event.dataTransfer.files.length === 0) return;
      event.preventDefault();
      this.panel.hidden = false;
      for (const file of event.dataTransfer.files) this.upload(file);
    });
  }

  fresh() {
    return new Transfers(this.send, this.onViolation, () => performance.now() / 1000);
  }

  /** A host message: true if it was a transfer's (handled here). */
  onMessage(message) {
    return this.transfers.onMessage(message);
  }

  /** A new session: transfers start afresh (ids and all). */
  reset() {
    this.transfers = this.fresh();
    this.files.replaceChildren();
    this.error.textContent = "";
  }

  /** The connection ended: every running transfer fails. */
  closed(reason) {
    this.transfers.closed(reason || "connection closed");
  }

  /** Upload one File; returns the promise of the host's confirmation. */
  upload(file) {
    const row = this.row(file.name, "upload", file.size);
    const job = this.transfers.upload(file, row.progress);
    row.cancel.addEventListener("click", () => job.cancel());
    return row.settle(job.promise.then((done) => {
      this.refresh();
      return `stored as ${done.name}, SHA-256 ${done.sha256.slice(0, 16)}…`;
    }));
  }

  /** Download one file of the folder and hand it to the browser as a file to save. */
  download(name, size) {
    const row = this.row(name, "download", size);
    const job = this.transfers.download(name, row.progress);
    row.cancel.addEventListener("click", () => job.cancel());
    return row.settle(job.promise.then((got) => {
      const url = URL.createObjectURL(new Blob(got.parts));
      const link = element("a", { href: url, download: got.name });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      return `saved, SHA-256 ${got.sha256.slice(0, 16)}…`;
    }));
  }

  async refresh() {
    try {
      const entries = await this.transfers.list();
      this.error.textContent = "";
      this.files.replaceChildren(...entries.map(({ name, size }) => {
        const button = element("button", { type: "button", textContent: "Download" });
        button.addEventListener("click", () => this.download(name, size));
        return element("li", { className: "transfer-file", title: name },
          element("span", { textContent: `${name} (${megabytes(size)} MB) ` }), button);
      }));
    } catch (error) {
      this.error.textContent = error.message;
    }
  }

  row(name, direction, size) {
    const bar = element("progress", { max: size || 1, value: 0 });
    const text = element("span", { className: "transfer-text", textContent: "waiting for the host…" });
    const cancel = element("button", { type: "button", className: "transfer-cancel", textContent: "Cancel" });
    const li = element("li", { className: "transfer" },
      element("div", { textContent: `${direction === "upload" ? "↑" : "↓"} ${name}` }), bar, " ", text, " ", cancel);
    li.dataset.name = name;
    li.dataset.direction = direction;
    li.dataset.state = "running";
    this.rows.prepend(li);
    const meter = new Meter(size, performance.now());
    let drawn = -Infinity;
    const progress = (done, total) => {
      const now = performance.now();
      meter.update(done, now);
      if (now - drawn < REDRAW_MS && done < total) return;
      drawn = now;
      bar.value = done;
      const percent = total ? Math.floor((100 * done) / total) : 100;
      const left = meter.left === null ? "" : `, ${clock(meter.left)} left`;
      text.textContent = `${percent}% · ${megabytes(meter.rate)} MB/s${left}`;
    };
    const settle = (promise) => promise.then(
      (line) => {
        li.dataset.state = "done";
        bar.value = bar.max;
        text.textContent = line;
        cancel.hidden = true;
      },
      (error) => {
        li.dataset.state = error.message === "cancelled" ? "cancelled" : "failed";
        text.textContent = error.message;
        cancel.hidden = true;
      },
    );
    return { progress, cancel, settle };
  }
}
