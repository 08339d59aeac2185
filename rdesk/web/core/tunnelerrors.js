// The tunnel's errors (the twin of rdesk/tunnel/errors.py): what tunnel.js, hostid.js and
// relaysocket.js throw when the relay or the host breaks the tunnel's contract.

export class TunnelError extends Error {
  /** @param {string} reason one line @param {number} [code] the close code it stands for */
  constructor(reason, code = 1008) {
    super(reason);
    this.name = "TunnelError";
    this.code = code;
  }
}

/** The host is not the one the ID (or the pin) names: refused before anything else is sent. */
export class HostIdentityError extends TunnelError {
  constructor(reason) {
    super(reason, 1008);
    this.name = "HostIdentityError";
  }
}
