// What the page shows about the connection: the state attributes on <body>, the login message
// and the banner over the desktop.
//
// <body> carries a read-only status for people and tests: data-state (login | connecting |
// active | reconnecting), data-role (control | view), data-exact (true once the canvas is
// pixel-exact), data-seq (last painted update), data-control (true while this page may send
// input). Text from the host or the network is only ever set with textContent.

import { CLOSE } from "../core/protocol.js";

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

const body = document.body;

export function setState(state) {
  body.dataset.state = state;
  const desktop = state === "active" || state === "reconnecting";
  $("login-panel").hidden = desktop;
  $("desktop").hidden = !desktop;
}

export function getState() {
  return body.dataset.state;
}

/** Put one status attribute on <body>: role, exact, seq or control. */
export function setStatus(name, value) {
  body.dataset[name] = String(value);
}

/** The message under the login form ("" to clear). */
export function showMessage(text) {
  $("message").textContent = text;
}

/** The banner over the desktop ("" to hide). */
export function showBanner(text) {
  const banner = $("banner");
  banner.textContent = text;
  banner.hidden = !text;
}

const CLOSE_TEXT = {
  [CLOSE.NORMAL]: "The connection was closed.",
  [CLOSE.GOING_AWAY]: "The host went away.",
  [CLOSE.PROTOCOL_ERROR]: "Protocol error.",
  [CLOSE.TOO_BIG]: "A message was too large.",
  [CLOSE.INTERNAL_ERROR]: "The host had an internal error.",
  [CLOSE.AUTH_FAILED]: "Wrong password.",
  [CLOSE.VERSION_MISMATCH]: "The host speaks another rdesk protocol version.",
  [CLOSE.HANDSHAKE_TIMEOUT]: "The host did not answer in time.",
  [CLOSE.POLICY]: "The host refused the connection.",
  [CLOSE.UNRESPONSIVE]: "The connection stopped responding.",
  [CLOSE.SHUTDOWN]: "The host is shutting down.",
};

/** A sentence for a close code, with the reason unless it is a refused password. */
export function describeClose(code, reason) {
  const base = CLOSE_TEXT[code] || "The connection was lost.";
  return reason && code !== CLOSE.AUTH_FAILED ? `${base} (${reason})` : base;
}
