// The browser face of rdesk: log in, draw the host's screen into a canvas, send input.
//
// Everything that comes from the host or the network is shown with textContent, never as HTML.
// The password lives in this module's memory only (for reconnecting), never in storage.
// The page exposes a read-only status for people and tests on <body>: data-state
// (login | connecting | active | reconnecting), data-role (control | view), data-exact
// (true once the canvas is pixel-exact), data-seq (last painted update).

import {
  CLOSE,
  ENCODING,
  LOCAL_USER,
  NOBODY,
  ProtocolError,
  STATE,
  ViewerSession,
  checkImageHeader,
  imageType,
  copySource,
} from "./protocol.js";
import { keysymFor } from "./keys.js";

const $ = (id) => document.getElementById(id);
const body = document.body;
const canvas = $("screen");
const ctx = canvas.getContext("2d", { alpha: false });

const HANDSHAKE_TIMEOUT_MS = 10000;
const PING_EVERY_MS = 2000;
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];
const VIEWER_NAME = "rdesk browser viewer";

let password = null; // kept in memory only, for automatic reconnects
let ws = null;
let session = null;
let everActive = false; // once logged in, a drop means "reconnect"
let userClosed = false;
let attempt = 0;
let reconnectTimer = null;
let handshakeTimer = null;
let pingTimer = null;
let queue = [];
let painting = false;
const stats = { frames: 0, bytes: 0, rtt: null, lastExact: false, encodings: new Set() };

// --- status --------------------------------------------------------------------------------

function setState(state) {
  body.dataset.state = state;
  $("login-panel").hidden = state === "active" || state === "reconnecting";
  $("desktop").hidden = !(state === "active" || state === "reconnecting");
}

function showMessage(text) {
  $("message").textContent = text;
}

function showBanner(text) {
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

function describeClose(code, reason) {
  const base = CLOSE_TEXT[code] || "The connection was lost.";
  return reason && code !== CLOSE.AUTH_FAILED ? `${base} (${reason})` : base;
}

// --- connection ----------------------------------------------------------------------------

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  userClosed = false;
  session = new ViewerSession();
  queue = [];
  setState(everActive ? "reconnecting" : "connecting");
  let socket;
  try {
    socket = new WebSocket(`wss://${location.host}/rdesk`);
  } catch (err) {
    onClosed(null, CLOSE.INTERNAL_ERROR, "");
    return;
  }
  socket.binaryType = "arraybuffer";
  ws = socket;
  handshakeTimer = setTimeout(() => {
    if (ws === socket && session.state !== STATE.ACTIVE) fail(CLOSE.HANDSHAKE_TIMEOUT, "handshake not completed in time");
  }, HANDSHAKE_TIMEOUT_MS);
  socket.onmessage = (event) => {
    if (ws === socket) onMessage(event.data);
  };
  socket.onclose = (event) => {
    if (ws === socket) onClosed(socket, event.code, event.reason);
  };
}

function send(frame) {
  if (frame !== null && ws && ws.readyState === WebSocket.OPEN) ws.send(frame);
}

function fail(code, reason) {
  // Our verdict on the host: tell it why (the fixed phrase, no internals) and hang up.
  if (!ws) return;
  try {
    send(session.closeFrame(code, reason));
  } catch (err) {
    /* already closed */
  }
  const socket = ws;
  try {
    socket.close(code >= 3000 || code === 1000 ? code : 1000, "");
  } catch (err) {
    /* ignore */
  }
  onClosed(socket, code, reason);
}

function onMessage(data) {
  stats.bytes += typeof data === "string" ? data.length : data.byteLength;
  let message;
  try {
    message = session.receive(data, performance.now());
  } catch (err) {
    if (err instanceof ProtocolError) {
      fail(err.code, err.reason);
      return;
    }
    throw err;
  }
  switch (message.t) {
    case "hello":
      send(session.auth(password, VIEWER_NAME));
      break;
    case "welcome":
      onWelcome(message);
      break;
    case "screen":
      resize(message.width, message.height);
      break;
    case "update":
      queue.push(message);
      pump();
      break;
    case "ping":
      send(session.send({ t: "pong", id: message.id }));
      break;
    case "pong":
      if (message.rtt !== undefined) stats.rtt = message.rtt;
      break;
    case "control":
      controlHolder = message.holder;
      showControl();
      break;
    case "peer":
      if (message.present) peers.set(message.id, message.name);
      else peers.delete(message.id);
      showControl();
      break;
    case "control_request":
      askControl(message.id, message.name);
      break;
    case "notice":
      showNotice(message.text);
      break;
    case "close":
      // The host's close frame; the websocket close follows and reports it.
      break;
    default:
      break;
  }
}

// --- several viewers: who holds control -----------------------------------------------------

let viewerId = null;
let controlHolder = null; // null: the host said nothing about it (control goes with the role)
const peers = new Map();

function holdsControl() {
  return controlHolder === null || controlHolder === viewerId;
}

function showControl() {
  const role = session && session.role;
  const info = $("control-info");
  const take = $("take-control");
  if (role !== "control" || controlHolder === null) {
    info.textContent = "";
    take.hidden = true;
  } else if (controlHolder === viewerId) {
    info.textContent = "You have control";
    take.hidden = true;
  } else {
    const who =
      controlHolder === NOBODY ? "nobody" : controlHolder === LOCAL_USER ? "the host's user" : peers.get(controlHolder) || `viewer ${controlHolder}`;
    info.textContent = `Control: ${who}`;
    take.hidden = false;
  }
  body.dataset.control = holdsControl() && role === "control" ? "true" : "false";
}

function askControl(id, name) {
  const box = $("control-request");
  $("control-request-text").textContent = `${name} asks for control.`;
  box.hidden = false;
  const answer = (grant) => {
    box.hidden = true;
    if (session && session.state === STATE.ACTIVE) send(session.send({ t: "answer_control", id, grant }));
  };
  $("control-allow").onclick = () => answer(true);
  $("control-deny").onclick = () => answer(false);
}

let noticeTimer = null;
function showNotice(text) {
  const el = $("notice");
  el.textContent = text;
  el.hidden = !text;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (el.hidden = true), 8000);
}

$("take-control").addEventListener("click", () => {
  if (session && session.state === STATE.ACTIVE) send(session.send({ t: "request_control" }));
  canvas.focus();
});

function onWelcome(welcome) {
  clearTimeout(handshakeTimer);
  viewerId = welcome.viewer_id;
  controlHolder = null;
  peers.clear();
  everActive = true;
  attempt = 0;
  showMessage("");
  showBanner("");
  body.dataset.role = welcome.role;
  $("view-only").hidden = welcome.role !== "view";
  $("host-name").textContent = welcome.name;
  document.title = `${welcome.name} – rdesk`;
  resize(welcome.width, welcome.height);
  showControl();
  setState("active");
  layout(); // now that the desktop is shown, its size is known
  canvas.focus();
  clearInterval(pingTimer);
  pingTimer = setInterval(() => send(session.ping(performance.now())), PING_EVERY_MS);
  send(session.ping(performance.now()));
}

function onClosed(socket, wsCode, wsReason) {
  if (socket !== null && socket !== ws) return;
  ws = null;
  clearTimeout(handshakeTimer);
  clearInterval(pingTimer);
  releaseAll(false);
  queue = [];
  const [code, reason] = (session && session.closeReason) || [wsCode, wsReason];
  if (session) session.state = STATE.CLOSED;
  body.dataset.exact = "false";
  if (userClosed) {
    setState("login");
    return;
  }
  if (code === CLOSE.AUTH_FAILED || code === CLOSE.VERSION_MISMATCH || !everActive) {
    // Nothing to retry automatically: ask the person.
    if (code === CLOSE.AUTH_FAILED) password = null;
    everActive = false;
    setState("login");
    showMessage(code === 1006 ? "Cannot reach the host (or the host refused this page)." : describeClose(code, reason));
    $("password").value = "";
    $("password").focus();
    return;
  }
  const delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
  attempt += 1;
  setState("reconnecting");
  showBanner(`${describeClose(code, reason)} Reconnecting in ${Math.round(delay / 1000)} s…`);
  reconnectTimer = setTimeout(connect, delay);
}

// --- drawing -------------------------------------------------------------------------------

function resize(width, height) {
  canvas.width = width;
  canvas.height = height;
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, width, height);
  body.dataset.exact = "false";
  layout();
}

async function pump() {
  if (painting) return;
  painting = true;
  try {
    while (queue.length) {
      const update = queue.shift();
      const socket = ws;
      await paint(update);
      if (ws !== socket || !socket) return;
      // Ack after painting (docs/protocol.md §7): the host's RTT then includes our decode time.
      send(session.send({ t: "ack", seq: update.seq }));
      stats.frames += 1;
      stats.lastExact = update.exact;
      body.dataset.exact = String(update.exact);
      body.dataset.seq = String(update.seq);
    }
  } catch (err) {
    fail(err instanceof ProtocolError ? err.code : CLOSE.PROTOCOL_ERROR, err instanceof ProtocolError ? err.reason : "cannot decode an image");
  } finally {
    painting = false;
  }
}

async function paint(update) {
  // Decode every image first (their headers were checked before any decoding), then paint the
  // rects strictly in order: a COPY reads what the rects before it painted.
  const bitmaps = await Promise.all(
    update.rects.map((rect) => {
      if (rect.encoding === ENCODING.COPY) return null;
      checkImageHeader(rect);
      stats.encodings.add(rect.encoding);
      const blob = new Blob([rect.payload], { type: imageType(rect.encoding) });
      return createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" }).catch(() => {
        throw new ProtocolError("cannot decode an image");
      });
    }),
  );
  try {
    update.rects.forEach((rect, k) => {
      if (rect.encoding === ENCODING.COPY) {
        const [sx, sy] = copySource(rect);
        // Drawing a canvas onto itself copies the source first (HTML canvas spec), so
        // overlapping source and destination behave as the protocol requires.
        ctx.drawImage(canvas, sx, sy, rect.w, rect.h, rect.x, rect.y, rect.w, rect.h);
        return;
      }
      const bitmap = bitmaps[k];
      if (bitmap.width > rect.w || bitmap.height > rect.h) throw new ProtocolError("image larger than its rect");
      if (bitmap.width === rect.w && bitmap.height === rect.h) {
        ctx.drawImage(bitmap, rect.x, rect.y);
      } else {
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(bitmap, rect.x, rect.y, rect.w, rect.h); // the host downscaled it
      }
    });
  } finally {
    for (const b of bitmaps) if (b) b.close();
  }
}

// --- layout: fit to window, full screen ----------------------------------------------------

function layout() {
  const fit = $("fit").checked;
  body.classList.toggle("fit", fit);
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

window.addEventListener("resize", layout);
document.addEventListener("fullscreenchange", layout);
$("fit").addEventListener("change", layout);
$("fullscreen").addEventListener("click", () => {
  if (document.fullscreenElement) document.exitFullscreen();
  else $("desktop").requestFullscreen().catch(() => {});
  canvas.focus();
});
$("stats-toggle").addEventListener("click", () => $("overlay").classList.toggle("off"));
$("disconnect").addEventListener("click", () => {
  userClosed = true;
  password = null;
  everActive = false;
  clearTimeout(reconnectTimer);
  if (ws) fail(CLOSE.NORMAL, "viewer closed");
  else setState("login");
});

// --- input ---------------------------------------------------------------------------------

function mayControl() {
  return (
    session !== null && session.state === STATE.ACTIVE && session.role === "control" && holdsControl() && ws !== null
  );
}

/** Host pixel under a mouse event, under whatever scaling the canvas is shown with. */
function hostPoint(event) {
  const r = canvas.getBoundingClientRect();
  const x = Math.floor(((event.clientX - r.left) * canvas.width) / r.width);
  const y = Math.floor(((event.clientY - r.top) * canvas.height) / r.height);
  return [Math.min(Math.max(x, 0), canvas.width - 1), Math.min(Math.max(y, 0), canvas.height - 1)];
}

// DOM MouseEvent.buttons bits → X button mask (bit n-1 = button n): left 1, middle 2, right 3,
// back 8. (Buttons 4-7 are the wheel, sent as wheel messages.)
function xButtons(domButtons) {
  let mask = 0;
  if (domButtons & 1) mask |= 1 << 0;
  if (domButtons & 4) mask |= 1 << 1;
  if (domButtons & 2) mask |= 1 << 2;
  if (domButtons & 8) mask |= 1 << 7;
  return mask;
}

let lastPointer = null;
function sendPointer(event) {
  if (!mayControl()) return;
  const [x, y] = hostPoint(event);
  const buttons = xButtons(event.buttons);
  const key = `${x},${y},${buttons}`;
  if (key === lastPointer) return;
  lastPointer = key;
  send(session.send({ t: "pointer", x, y, buttons }));
}

canvas.addEventListener("pointermove", sendPointer);
canvas.addEventListener("pointerdown", (event) => {
  canvas.focus();
  if (!mayControl()) return;
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId);
  sendPointer(event);
});
canvas.addEventListener("pointerup", (event) => {
  if (!mayControl()) return;
  event.preventDefault();
  sendPointer(event);
});
canvas.addEventListener("contextmenu", (event) => event.preventDefault());

let wheelX = 0;
let wheelY = 0;
canvas.addEventListener(
  "wheel",
  (event) => {
    if (!mayControl()) return;
    event.preventDefault();
    // One detent per 100 px (Chromium's notch), 3 lines or 1 page.
    const unit = event.deltaMode === 1 ? 3 : event.deltaMode === 2 ? 1 : 100;
    wheelX += event.deltaX / unit;
    wheelY += event.deltaY / unit;
    const dx = Math.max(-100, Math.min(100, Math.trunc(wheelX)));
    const dy = Math.max(-100, Math.min(100, Math.trunc(wheelY)));
    if (dx === 0 && dy === 0) return;
    wheelX -= dx;
    wheelY -= dy;
    const [x, y] = hostPoint(event);
    send(session.send({ t: "wheel", x, y, dx, dy }));
  },
  { passive: false },
);

const heldKeys = new Map(); // KeyboardEvent.code (or key) → keysym sent on key down

canvas.addEventListener("keydown", (event) => {
  if (!mayControl() || event.isComposing) return;
  const keysym = keysymFor(event);
  if (keysym === null) return;
  event.preventDefault(); // keep Tab, Backspace, / … from acting on the page
  heldKeys.set(event.code || event.key, keysym);
  send(session.send({ t: "key", keysym, down: true }));
});
canvas.addEventListener("keyup", (event) => {
  if (!mayControl()) return;
  const id = event.code || event.key;
  // Release what was pressed, even if the modifiers changed the key's meaning meanwhile.
  const keysym = heldKeys.has(id) ? heldKeys.get(id) : keysymFor(event);
  heldKeys.delete(id);
  if (keysym === null) return;
  event.preventDefault();
  send(session.send({ t: "key", keysym, down: false }));
});

function releaseAll(sendReleases = true) {
  if (sendReleases && mayControl()) {
    for (const keysym of heldKeys.values()) send(session.send({ t: "key", keysym, down: false }));
    if (lastPointer && !lastPointer.endsWith(",0")) {
      const [x, y] = lastPointer.split(",").map(Number);
      send(session.send({ t: "pointer", x, y, buttons: 0 }));
    }
  }
  heldKeys.clear();
  lastPointer = null;
}
canvas.addEventListener("blur", () => releaseAll());
window.addEventListener("blur", () => releaseAll());

// --- overlay -------------------------------------------------------------------------------

function formatRate(bitsPerSecond) {
  if (bitsPerSecond >= 1e6) return `${(bitsPerSecond / 1e6).toFixed(1)} Mbit/s`;
  return `${Math.round(bitsPerSecond / 1e3)} kbit/s`;
}

let lastTick = performance.now();
setInterval(() => {
  const now = performance.now();
  const seconds = (now - lastTick) / 1000 || 1;
  lastTick = now;
  if (body.dataset.state === "active") {
    $("stat-fps").textContent = (stats.frames / seconds).toFixed(1);
    $("stat-rtt").textContent = stats.rtt === null ? "–" : `${Math.round(stats.rtt)} ms`;
    $("stat-bw").textContent = formatRate((stats.bytes * 8) / seconds);
    const names = [...stats.encodings].map((e) => ({ 1: "JPEG", 2: "PNG", 3: "WebP" })[e]).join("+");
    $("stat-quality").textContent = `${stats.lastExact ? "lossless" : "lossy"}${names ? ` (${names})` : ""}`;
  }
  stats.frames = 0;
  stats.bytes = 0;
  stats.encodings.clear();
}, 1000);

// --- login ---------------------------------------------------------------------------------

$("login").addEventListener("submit", (event) => {
  event.preventDefault(); // never navigate (the CSP forbids form actions anyway)
  const value = $("password").value;
  if (!value) return;
  password = value;
  $("password").value = "";
  showMessage("");
  everActive = false;
  attempt = 0;
  connect();
});

window.addEventListener("pagehide", () => {
  if (ws) {
    userClosed = true;
    fail(CLOSE.GOING_AWAY, "page left");
  }
});

setState("login");
