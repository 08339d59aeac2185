// When to reconnect after a drop: the backoff policy as pure logic (time is passed in, in ms).

import { CLOSE } from "./codec.js";

/** Waits between attempts: 1, 2, 4, 8, 15, then 30 s. */
export const BACKOFF_MS = Object.freeze([1000, 2000, 4000, 8000, 15000, 30000]);
/** A connection that stayed active this long counts as working: the backoff starts over. */
export const STABLE_MS = 10000;

/**
 * The reconnect policy of one login.
 *
 * Contract: nothing is retried until a connection of this login has once been active (a wrong
 * address or password at login is for the person to fix), and never after AUTH_FAILED or
 * VERSION_MISMATCH. Otherwise each drop waits the next delay of `delays` (the last one
 * repeats); the series starts over after a connection that stayed active `stableAfter` ms, so
 * a host that accepts and drops at once is not hammered.
 */
export class ReconnectPolicy {
  constructor({ delays = BACKOFF_MS, stableAfter = STABLE_MS } = {}) {
    this.delays = delays;
    this.stableAfter = stableAfter;
    this.start();
  }

  /** A new login: a fresh series, nothing to retry until it has been active. */
  start() {
    this.attempt = 0;
    this.everActive = false;
    this.activeSince = null;
  }

  /** The connection became active at `now`. */
  onActive(now) {
    this.everActive = true;
    this.activeSince = now;
  }

  /** Whether a connection closed with `code` may be retried. */
  retryable(code) {
    return this.everActive && code !== CLOSE.AUTH_FAILED && code !== CLOSE.VERSION_MISMATCH;
  }

  /**
   * The connection closed with `code` at `now`: {delay, at} (ms) of the next attempt, or null
   * to give up and ask the person (the login is over then).
   */
  onClosed(code, now) {
    if (!this.retryable(code)) {
      this.start();
      return null;
    }
    if (this.activeSince !== null && now - this.activeSince >= this.stableAfter) this.attempt = 0;
    this.activeSince = null;
    const delay = this.delays[Math.min(this.attempt, this.delays.length - 1)];
    this.attempt += 1;
    return { delay, at: now + delay };
  }
}
