// Several viewers on one host: who holds control, the "Request control" button, the dialog
// that asks this page to hand control over, and the host's notices.

import { LOCAL_USER, NOBODY } from "../core/protocol.js";
import { $, setStatus } from "./status.js";

const NOTICE_MS = 8000;

export class ControlPanel {
  /**
   * @param {(message: object) => boolean} send sends a message if connected
   * @param {() => string|null} role the role the host granted this page
   */
  constructor(send, role) {
    this.send = send;
    this.role = role;
    this.viewerId = null;
    this.holder = null; // null: the host said nothing about it (control goes with the role)
    this.peers = new Map();
    this.noticeTimer = null;
    $("take-control").addEventListener("click", () => {
      this.send({ t: "request_control" });
      $("screen").focus();
    });
  }

  /** A new session: forget the last one's peers and holder. */
  reset(welcome) {
    this.viewerId = welcome.viewer_id;
    this.holder = null;
    this.peers.clear();
    $("control-request").hidden = true;
    this.show();
  }

  /** Whether this page's input is the host's to take (as far as control goes). */
  holdsControl() {
    return this.holder === null || this.holder === this.viewerId;
  }

  /** React to a message from the host, if it is about control or a notice. */
  onMessage(message) {
    switch (message.t) {
      case "control":
        this.holder = message.holder;
        this.show();
        break;
      case "peer":
        if (message.present) this.peers.set(message.id, message.name);
        else this.peers.delete(message.id);
        this.show();
        break;
      case "control_request":
        this.ask(message.id, message.name);
        break;
      case "notice":
        this.notice(message.text);
        break;
      default:
        break;
    }
  }

  show() {
    const role = this.role();
    const info = $("control-info");
    const take = $("take-control");
    if (role !== "control" || this.holder === null) {
      info.textContent = "";
      take.hidden = true;
    } else if (this.holder === this.viewerId) {
      info.textContent = "You have control";
      take.hidden = true;
    } else {
      const who =
        this.holder === NOBODY
          ? "nobody"
          : this.holder === LOCAL_USER
            ? "the host's user"
            : this.peers.get(this.holder) || `viewer ${this.holder}`;
      info.textContent = `Control: ${who}`;
      take.hidden = false;
    }
    setStatus("control", this.holdsControl() && role === "control");
  }

  ask(id, name) {
    const box = $("control-request");
    $("control-request-text").textContent = `${name} asks for control.`;
    box.hidden = false;
    const answer = (grant) => {
      box.hidden = true;
      this.send({ t: "answer_control", id, grant });
    };
    $("control-allow").onclick = () => answer(true);
    $("control-deny").onclick = () => answer(false);
  }

  notice(text) {
    const el = $("notice");
    el.textContent = text;
    el.hidden = !text;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => (el.hidden = true), NOTICE_MS);
  }
}
