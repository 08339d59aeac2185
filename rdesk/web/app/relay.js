// The page as a relay serves it: the login asks for the host's ID as well as the password or
// one-time code, and the session goes through the relay's /connect and the end-to-end tunnel.
//
// The relay says it is one at /relay.json (a host's page answers 404 there: the ordinary
// login). The ID field is added to the form here because the same index.html serves both.
//
// Pins: after the first verified contact the host key's fingerprint (SHA-256 of its SPKI) is
// remembered in localStorage under the ID. The ID alone already binds the key (65 bits of its
// hash); the pin adds that a second key found by a 2^65 search under the same ID is refused,
// and the person is told. A new certificate for the same key keeps the pin. A pin stored before
// key pins (a certificate's fingerprint) is still honoured and, once it matched, replaced by
// the key's. It does not
// protect against the page itself: the relay serves this JavaScript, so a relay that alters
// what it serves is not stopped by anything the page checks (docs/relay.md, "The browser").

import { relaySocket } from "../core/relaysocket.js";
import { parseHostId } from "../core/hostid.js";
import { $ } from "./status.js";

const PIN_PREFIX = "rdesk.pin.";

/**
 * The websocket URL of `name` beside this page: the directory of its own path + name, so a page
 * a gateway serves under a prefix (https://gw/desk/) reaches wss://gw/desk/NAME, and one at the
 * root wss://host/NAME.
 */
export function socketBesidePage(name) {
  const dir = location.pathname.slice(0, location.pathname.lastIndexOf("/") + 1);
  return `wss://${location.host}${dir}${name}`;
}

/** Whether this page was served by a relay (asked once). */
export const onRelay = fetch("relay.json", { cache: "no-store" })
  .then((r) => (r.ok ? r.json() : null))
  .then((info) => Boolean(info && info.relay === true && info.tunnel === 1))
  .catch(() => false);

/** Add the ID field to the login form and relabel it for a relay. */
export function showIdLogin() {
  const form = $("login");
  if ($("host-id")) return;
  const label = document.createElement("label");
  label.htmlFor = "host-id";
  label.textContent = "Host ID";
  const input = document.createElement("input");
  Object.assign(input, { id: "host-id", name: "host-id", type: "text", required: true, spellcheck: false });
  input.setAttribute("autocomplete", "off");
  input.placeholder = "XXXX-XXXX-XXXXX";
  form.prepend(label, input);
  const password = form.querySelector('label[for="password"]');
  if (password) password.textContent = "Password or one-time code";
  const advice = document.querySelector(".advice");
  if (advice) {
    advice.replaceChildren();
    const h = document.createElement("h2");
    h.textContent = "Is this really your host?";
    const p = document.createElement("p");
    p.textContent = "The host ID is a hash of the host's key: this page checks the key the host presents against it, and against the key it saw the last time, before it sends your password. The relay only carries encrypted bytes — but it serves this page, so use a relay you trust to serve it unaltered.";
    advice.append(h, p);
  }
  input.focus();
}

/** The canonical ID typed in the form, or throws Error with a one-line reason. */
export const typedId = () => parseHostId($("host-id").value);

const storage = () => {
  try {
    return globalThis.localStorage;
  } catch {
    return null; // storage disabled: no pins
  }
};

/** The Connection options for reaching `hostId` through this relay. */
export function relayOptions(hostId) {
  const store = storage();
  const pin = store ? store.getItem(PIN_PREFIX + hostId) : null;
  return {
    url: socketBesidePage("connect"),
    WebSocket: relaySocket({
      hostId,
      pin: pin && /^SHA256:[A-Za-z0-9+/]{43}$/.test(pin) ? pin : null,
      onVerified: ({ fingerprint }) => {
        if (store && pin !== fingerprint) store.setItem(PIN_PREFIX + hostId, fingerprint);
      },
    }),
  };
}
