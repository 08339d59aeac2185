// The browser face of rdesk: log in, show the host's screen, send input, reconnect after drops.
//
// This module wires the page (app/) to the DOM-free core (core/): one Connection at a time,
// drawing into the desktop canvas's framebuffer, with the ReconnectPolicy deciding what a drop
// leads to. The password lives in this module's memory only (for reconnecting), never in
// storage.

import { Connection } from "../core/connection.js";
import { CLOSE, ENCODING } from "../core/protocol.js";
import { ReconnectPolicy } from "../core/reconnect.js";
import { ControlPanel } from "./control.js";
import { Display } from "./display.js";
import { ClipboardSync } from "./clipboard.js";
import { HostCursor } from "./cursor.js";
import { MonitorSelector } from "./monitors.js";
import { DesktopResize } from "./resize.js";
import { onRelay, relayOptions, showIdLogin, socketBesidePage, typedId } from "./relay.js";
import { captureInput } from "./input.js";
import { wireKeyBar } from "./keybar.js";
import { StatsOverlay } from "./stats.js";
import { TransferPanel } from "./transfer.js";
import { enableVideo } from "./video.js";
import { $, describeClose, getState, setState, setStatus, showBanner, showMessage } from "./status.js";

const VIEWER_NAME = "rdesk browser viewer";
const STATS_EVERY_MS = 1000;

const canvas = $("screen");
const display = new Display(canvas);
const policy = new ReconnectPolicy();
const stats = new StatsOverlay(performance.now());
const videoReady = enableVideo(display.framebuffer); // before the first login declares it

let password = null; // kept in memory only, for automatic reconnects
let hostId = null; // on a relay: the host's ID, checked before anything but the hello is sent
let connection = null; // the current one, or null between connections
let userClosed = false;
let reconnectTimer = null;
let videoRects = 0; // H264 rects painted since the page loaded (data-video-rects)

const send = (message) => connection !== null && connection.send(message);
const control = new ControlPanel(send, () => (connection ? connection.role : null));
const transfers = new TransferPanel(send, (reason) => connection && connection.close(CLOSE.PROTOCOL_ERROR, reason));
const clipboard = new ClipboardSync(send, (reason) => connection && connection.close(CLOSE.PROTOCOL_ERROR, reason),
  () => connection !== null && connection.role === "control");
const cursor = new HostCursor(canvas, (reason) => connection && connection.close(CLOSE.PROTOCOL_ERROR, reason));
const monitors = new MonitorSelector(send);
const resize = new DesktopResize(send, () => [canvas.width, canvas.height]);
const mayControl = () =>
  connection !== null && connection.active && connection.role === "control" && control.holdsControl();
const input = captureInput(canvas, $("keyboard"), $("preedit"), { mayControl, send, hostPoint: (e) => display.hostPoint(e) });
wireKeyBar($("keybar"), canvas, { mayControl, send });
// The clipboard's fallback panel (app/clipboard.js shows it) until closed or a write succeeds.
$("clipboard-panel-close").addEventListener("click", () => { $("clipboard-panel").hidden = true; });

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  userClosed = false;
  setState(policy.everActive ? "reconnecting" : "connecting");
  const c = new Connection({
    url: socketBesidePage("rdesk"),
    ...(hostId !== null ? relayOptions(hostId) : {}),
    secret: password,
    name: VIEWER_NAME,
    display: display.framebuffer,
  });
  connection = c;
  const mine = (handler) => (detail) => {
    if (connection === c) handler(detail);
  };
  c.on("active", mine(onActive))
    .on("message", mine((message) => cursor.onMessage(message) || monitors.onMessage(message) || resize.onMessage(message) || clipboard.onMessage(message) || transfers.onMessage(message) || control.onMessage(message)))
    .on("resized", mine(() => {
      setStatus("exact", false);
      display.layout();
    }))
    .on("painted", mine((update) => {
      stats.onPainted(update);
      setStatus("exact", update.exact);
      setStatus("seq", update.seq);
      const video = update.rects.filter((rect) => rect.encoding === ENCODING.H264).length;
      if (video) setStatus("videoRects", (videoRects += video));
    }))
    .on("received", mine((bytes) => stats.onReceived(bytes)))
    .on("close", mine(onClosed));
  c.open();
}

function onActive(welcome) {
  policy.onActive(performance.now());
  showMessage("");
  showBanner("");
  setStatus("role", welcome.role);
  $("view-only").hidden = welcome.role !== "view";
  $("host-name").textContent = welcome.name;
  document.title = `${welcome.name} – rdesk`;
  control.reset(welcome);
  transfers.reset();
  clipboard.reset();
  cursor.reset();
  monitors.reset();
  setState("active");
  display.layout(); // now that the desktop is shown, its size is known
  resize.soon(); // with "Resize desktop" on, the host may take the area's size
  canvas.focus();
  connection.ping(); // a first round trip for the overlay
}

function onClosed({ code, reason }) {
  connection = null;
  transfers.closed(reason);
  input.releaseAll(false);
  setStatus("exact", false);
  if (userClosed) {
    setState("login");
    return;
  }
  const next = policy.onClosed(code, performance.now());
  if (next === null) {
    // Nothing to retry automatically: ask the person.
    if (code === CLOSE.AUTH_FAILED) password = null;
    setState("login");
    showMessage(code === 1006 ? "Cannot reach the host (or the host refused this page)." : describeClose(code, reason));
    $("password").value = "";
    $("password").focus();
    return;
  }
  setState("reconnecting");
  showBanner(`${describeClose(code, reason)} Reconnecting in ${Math.round(next.delay / 1000)} s…`);
  reconnectTimer = setTimeout(connect, next.delay);
}

$("disconnect").addEventListener("click", () => {
  userClosed = true;
  password = null;
  policy.start();
  clearTimeout(reconnectTimer);
  if (connection) connection.close(CLOSE.NORMAL, "viewer closed");
  else setState("login");
});

$("login").addEventListener("submit", async (event) => {
  event.preventDefault(); // never navigate (the CSP forbids form actions anyway)
  const value = $("password").value;
  if (!value) return;
  if (await onRelay) {
    try {
      hostId = typedId();
    } catch (error) {
      showMessage(error.message);
      return;
    }
  }
  password = value;
  $("password").value = "";
  showMessage("");
  policy.start();
  await videoReady;
  connect();
});

window.addEventListener("pagehide", () => {
  if (connection) {
    userClosed = true;
    connection.close(CLOSE.GOING_AWAY, "page left");
  }
});

setInterval(() => stats.tick(performance.now(), getState() === "active", connection), STATS_EVERY_MS);

setState("login");
onRelay.then((relay) => relay && showIdLogin());
