// Reconnect delays: exponential backoff with full jitter, capped. Pure: the clock and the
// random source are passed in, so node --test can pin them.
//
// Full jitter (a uniform delay between 0 and the exponential bound) spreads the reconnects
// of many viewers after a server restart, instead of having them all arrive together.

export const BASE_MS = 500;
export const CAP_MS = 15000;
// A connection that stayed open this long was a good one: start the next backoff from scratch.
export const STABLE_MS = 10000;

/**
 * The delay before reconnect attempt `attempt` (0 for the first): uniform in [0, bound),
 * bound = min(cap, base * 2^attempt).
 * @param {number} attempt
 * @param {{baseMs?: number, capMs?: number, random?: () => number}} [options]
 * @returns {number} ms
 */
export function backoffDelay(attempt, { baseMs = BASE_MS, capMs = CAP_MS, random = Math.random } = {}) {
  const bound = Math.min(capMs, baseMs * 2 ** Math.max(0, Math.min(attempt, 30)));
  return Math.floor(random() * bound);
}

/** Counts failed attempts; a connection that stayed open long enough resets the count. */
export class Backoff {
  /** @param {{baseMs?: number, capMs?: number, stableMs?: number, random?: () => number}} [options] */
  constructor({ baseMs = BASE_MS, capMs = CAP_MS, stableMs = STABLE_MS, random = Math.random } = {}) {
    this.options = { baseMs, capMs, random };
    this.stableMs = stableMs;
    this.attempt = 0;
    /** @type {number|null} */
    this.openedAt = null;
  }

  /** @param {number} now ms */
  opened(now) {
    this.openedAt = now;
  }

  /**
   * The socket closed (or never opened): the delay before the next attempt.
   * @param {number} now ms
   * @returns {number} ms
   */
  closed(now) {
    if (this.openedAt !== null && now - this.openedAt >= this.stableMs) this.attempt = 0;
    this.openedAt = null;
    const delay = backoffDelay(this.attempt, this.options);
    this.attempt += 1;
    return delay;
  }
}

// Close code 4029: this account holds too many sockets (consumers.py MAX_SOCKETS_PER_USER).
// Asking again at once cannot help until another tab closes, so wait at least this long.
export const TOO_MANY_SOCKETS = 4029;
export const CROWDED_MIN_MS = 30000;

/**
 * The delay before reconnecting after a close with `code`, given the ordinary backoff delay:
 * the same, except after 4029, where it is 30 to 60 s (jittered, so the tabs over the limit
 * do not retry together).
 * @param {number} code
 * @param {number} delay ms
 * @param {() => number} [random]
 * @returns {number} ms
 */
export function delayAfterClose(code, delay, random = Math.random) {
  if (code !== TOO_MANY_SOCKETS) return delay;
  return CROWDED_MIN_MS + Math.floor(random() * CROWDED_MIN_MS);
}
