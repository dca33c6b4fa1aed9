// The socket protocol's pure side (DESIGN.md, "Browser protocol"): point ids, the
// accept/drop/resubscribe decision for a batch, and merging batches into per-series arrays.
// No DOM, no Plotly, no WebSocket: node --test runs this file as is.

/**
 * One stream's batch, columnar: `t` in ms since the epoch (UTC), `y` a column per series
 * (null where that series had no value at that time).
 * @typedef {{stream: string, prev: string|null, id: string, t: number[],
 *            y: Object<string, (number|null)[]>}} Batch
 */

/**
 * Points waiting to be drawn, per series, already shifted to the chart's x values.
 * `reset` says the chart's traces must be emptied first (the server reported a gap).
 * @typedef {{reset: boolean, series: Map<string, {x: number[], y: number[]}>}} Buffer
 */

/** @typedef {"apply"|"drop"|"resubscribe"} Decision */

const ID = /^(\d{1,15})-(\d{1,9})$/;

// A re-subscribe that got no answer in this long (lost, or refused as rate_limited) may be sent again.
export const RESYNC_TIMEOUT_MS = 5000;

/**
 * The (ms, seq) pair of an id, or null when it is not one of ours. 15 digits of ms stay
 * below 2^53, so plain numbers compare exactly.
 * @param {unknown} id
 * @returns {[number, number]|null}
 */
export function parseId(id) {
  if (typeof id !== "string") return null;
  const match = ID.exec(id);
  return match ? [Number(match[1]), Number(match[2])] : null;
}

/**
 * Order two ids numerically as (ms, seq): "9-0" < "10-0", which string order gets wrong.
 * @param {string} a
 * @param {string} b
 * @returns {-1|0|1}
 */
export function compareIds(a, b) {
  const left = parseId(a);
  const right = parseId(b);
  if (left === null || right === null) throw new TypeError(`not a point id: ${left ? b : a}`);
  if (left[0] !== right[0]) return left[0] < right[0] ? -1 : 1;
  if (left[1] !== right[1]) return left[1] < right[1] ? -1 : 1;
  return 0;
}

/**
 * What to do with a batch, given what the chart holds.
 * - drop: seen already (id <= lastId), malformed, or we are waiting for a re-subscribe's answer;
 * - resubscribe: it does not follow our last id, so a batch was lost on the way: ask again
 *   with after=lastId (the server re-sends from there) and drop this one;
 * - apply: it follows on (or we hold nothing yet).
 * @param {{lastId: string|null, resyncSince: number|null}} state
 * @param {{id: string, prev: string|null}} batch
 * @param {number} now  ms, any monotonic clock
 * @param {number} [timeoutMs]
 * @returns {Decision}
 */
export function decideBatch(state, batch, now, timeoutMs = RESYNC_TIMEOUT_MS) {
  if (parseId(batch.id) === null) return "drop";
  if (state.lastId === null) return "apply";
  if (compareIds(batch.id, state.lastId) <= 0) return "drop";
  if (batch.prev === state.lastId) return "apply";
  if (state.resyncSince !== null && now - state.resyncSince < timeoutMs) return "drop";
  return "resubscribe";
}

/** @returns {Buffer} */
export function emptyBuffer() {
  return { reset: false, series: new Map() };
}

/**
 * Append a batch to the buffer, series by series, dropping null values (a series with no
 * value at a time gets no point there). A series seen for the first time gets an entry even
 * when all its values are null, so the chart can add its trace.
 * @param {Buffer} buffer
 * @param {Batch} batch
 * @param {(t: number) => number} [toX]  maps a time to the chart's x (e.g. local wall time)
 * @returns {{points: number, newestX: number|null}} points = times in the batch
 */
export function mergeBatch(buffer, batch, toX = (t) => t) {
  const times = Array.isArray(batch.t) ? batch.t : [];
  const xs = times.map(toX);
  let newestX = null;
  for (const x of xs) if (newestX === null || x > newestX) newestX = x;
  for (const [name, values] of Object.entries(batch.y ?? {})) {
    let target = buffer.series.get(name);
    if (target === undefined) {
      target = { x: [], y: [] };
      buffer.series.set(name, target);
    }
    const count = Math.min(xs.length, Array.isArray(values) ? values.length : 0);
    for (let i = 0; i < count; i += 1) {
      const value = values[i];
      if (value === null || value === undefined) continue;
      target.x.push(xs[i]);
      target.y.push(value);
    }
  }
  return { points: times.length, newestX };
}
