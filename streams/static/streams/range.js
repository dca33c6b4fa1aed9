// Range views' pure side: presets and custom ranges, the /range request, when a zoom needs finer
// points, and the server's answer as Plotly traces. No DOM, no Plotly: node --test runs this file.
//
// Times here are UTC ms since the epoch. The chart's x axis is local wall time (live.js shifts
// every point by its zone offset), so axis values are converted back before they are asked for.

/** @typedef {{start: number, end: number}} Range  UTC ms, start < end */

/**
 * What the chart holds now: the range its points cover and whether the server thinned them.
 * @typedef {{start: number, end: number, downsampled: boolean}} Loaded
 */

/**
 * The server's answer to GET /streams/<slug>/range (see streams/storage/ranges.py).
 * @typedef {{t: number[], y: Object<string, (number|null)[]>, stored: number, returned: number,
 *            downsampled: boolean}} Answer
 */

/** @typedef {(t: number) => number} OffsetOf  minutes, as Date#getTimezoneOffset at that time */

/** Points per series the chart asks for: the server never sends more (about a wide screen's worth). */
export const MAX_POINTS = 2000;

/** How long a chart waits after the last zoom event before asking (the caller's debounce). */
export const ZOOM_DEBOUNCE_MS = 300;

/** The preset buttons, in order, with the span each shows up to now ("live" has none). */
export const PRESETS = Object.freeze([
  { key: "live", label: "Live", span: null },
  { key: "15m", label: "15 min", span: 15 * 60_000 },
  { key: "1h", label: "1 h", span: 3_600_000 },
  { key: "24h", label: "24 h", span: 86_400_000 },
  { key: "7d", label: "7 d", span: 7 * 86_400_000 },
]);

// A zoom this close to what is loaded (a fraction of its span) is the same window: axis values
// round-trip through date strings, and a 1 % nudge is not worth a request.
const SAME_WINDOW = 0.01;

/**
 * The range a preset shows, ending at `now`; null for "live" (the socket's window, not a range).
 * @param {string} key
 * @param {number} now UTC ms
 * @returns {Range|null}
 */
export function presetRange(key, now) {
  const preset = PRESETS.find((each) => each.key === key);
  if (preset === undefined) throw new RangeError(`no range preset ${JSON.stringify(key)}`);
  return preset.span === null ? null : { start: now - preset.span, end: now };
}

/** @type {OffsetOf} */
export function browserOffset(t) {
  return new Date(t).getTimezoneOffset();
}

/**
 * A time as the chart's x: local wall time written as if it were UTC (how Plotly draws numbers).
 * @param {number} t UTC ms
 * @param {OffsetOf} [offsetOf]
 */
export function toLocalX(t, offsetOf = browserOffset) {
  return t - offsetOf(t) * 60_000;
}

/**
 * The inverse of toLocalX. The offset depends on the instant we are looking for, so look it up
 * twice: once near it, then at the first guess (right on both sides of a DST change).
 * @param {number} x
 * @param {OffsetOf} [offsetOf]
 */
export function fromLocalX(x, offsetOf = browserOffset) {
  const guess = x + offsetOf(x) * 60_000;
  return x + offsetOf(guess) * 60_000;
}

const PLOTLY_DATE = /^(-?\d{4})-(\d\d)-(\d\d)(?:[ T](\d\d)(?::(\d\d)(?::(\d\d)(\.\d+)?)?)?)?$/;

/**
 * A Plotly date-axis value (a number, or a date string such as "2024-05-01 12:30:15.1234",
 * which Plotly writes without a zone) as the chart's x number; null when it is neither.
 * @param {unknown} value
 * @returns {number|null}
 */
export function axisX(value) {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value !== "string") return null;
  const match = PLOTLY_DATE.exec(value.trim());
  if (match === null) return null;
  const [, year, month, day, hour = "0", minute = "0", second = "0", fraction = ""] = match;
  const ms = fraction ? Number(`0${fraction}`) * 1000 : 0;
  const x = Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second)) + ms;
  return Number.isFinite(x) ? x : null;
}

/**
 * A datetime-local input's value ("2024-05-01T12:30" or with seconds) as UTC ms, read as the
 * browser's local time (what the person picking it meant); null when empty or malformed.
 * @param {string} value
 * @returns {number|null}
 */
export function parseLocalInput(value) {
  const match = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(\.\d+)?)?$/.exec((value ?? "").trim());
  if (match === null) return null;
  const [, year, month, day, hour, minute, second = "0", fraction = ""] = match;
  const date = new Date(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second));
  // new Date rolls "02-31" over to March: a date that does not exist is not a date.
  if (date.getMonth() !== Number(month) - 1 || date.getDate() !== Number(day)) return null;
  const ms = fraction ? Math.round(Number(`0${fraction}`) * 1000) : 0;
  return date.getTime() + ms;
}

/**
 * UTC ms as a datetime-local input's value in the browser's time, to the minute.
 * @param {number} t
 */
export function formatLocalInput(t) {
  const date = new Date(t);
  const two = (/** @type {number} */ n) => String(n).padStart(2, "0");
  return (
    `${String(date.getFullYear()).padStart(4, "0")}-${two(date.getMonth() + 1)}-${two(date.getDate())}` +
    `T${two(date.getHours())}:${two(date.getMinutes())}`
  );
}

/**
 * The custom range from the form's two inputs, or what is wrong with them. An end after `now`
 * is cut to now: stored points stop there, and "until tonight" is a reasonable thing to pick.
 * @param {{start: string, end: string, now: number}} input
 * @returns {{range: Range}|{error: string}}
 */
export function customRange({ start, end, now }) {
  if (!start || !end) return { error: "Choose both a start and an end." };
  const from = parseLocalInput(start);
  if (from === null) return { error: "The start is not a valid date and time." };
  const to = parseLocalInput(end);
  if (to === null) return { error: "The end is not a valid date and time." };
  if (from >= to) return { error: "The start must be before the end." };
  if (from >= now) return { error: "The range starts in the future: there are no points there yet." };
  return { range: { start: from, end: Math.min(to, now) } };
}

/**
 * The URL that asks the server for a range, thinned to at most `points` per series.
 * @param {string} base e.g. "/streams/line/range"
 * @param {{start: number, end: number, points?: number}} request
 */
export function rangeUrl(base, { start, end, points = MAX_POINTS }) {
  const query = new URLSearchParams({
    start: String(Math.floor(start)),
    end: String(Math.ceil(end)),
    points: String(points),
  });
  return `${base}?${query}`;
}

/**
 * What a plotly_relayout event asks of a chart holding `loaded`:
 * - fetch: an x range (a drag zoom, a pan, Plotly.relayout) that shows more than what is held
 *   (beyond its ends), or a narrower window of points the server thinned: finer points exist;
 * - reset: autorange (a double click, "reset axes"): back to the range the person chose;
 * - null: nothing to ask (a y zoom, a resize, a zoom inside points held in full).
 * The end is cut to `now`; a window wholly in the future asks nothing.
 * @param {Record<string, unknown>} event
 * @param {Loaded|null} loaded  null: nothing held
 * @param {{now: number, offsetOf?: OffsetOf}} options
 * @returns {{action: "fetch", start: number, end: number}|{action: "reset"}|null}
 */
export function relayoutAction(event, loaded, { now, offsetOf = browserOffset }) {
  if (event === null || typeof event !== "object") return null;
  const pair = Array.isArray(event["xaxis.range"])
    ? /** @type {unknown[]} */ (event["xaxis.range"])
    : [event["xaxis.range[0]"], event["xaxis.range[1]"]];
  const [low, high] = pair.map((value) => {
    const x = axisX(value);
    return x === null ? null : fromLocalX(x, offsetOf);
  });
  if (low === null || high === null) {
    // Only an autorange that is not also a new range resets; dragging one axis end is ignored.
    return event["xaxis.autorange"] === true ? { action: "reset" } : null;
  }
  const start = Math.min(low, high);
  const end = Math.min(Math.max(low, high), now);
  if (!(start < end)) return null;
  if (loaded === null) return { action: "fetch", start, end };
  const span = loaded.end - loaded.start;
  const slack = Number.isFinite(span) ? span * SAME_WINDOW : 0;
  const beyond = start < loaded.start - slack || end > loaded.end + slack;
  const finer = loaded.downsampled && end - start < span - slack;
  return beyond || finer ? { action: "fetch", start, end } : null;
}

/**
 * What the live chart holds, as a Loaded: from its oldest point on, in full. Null when empty.
 * @param {ArrayLike<number|string>[]} traceXs the traces' x arrays (chart x values)
 * @param {OffsetOf} [offsetOf]
 * @returns {Loaded|null}
 */
export function liveLoaded(traceXs, offsetOf = browserOffset) {
  let oldest = Number.POSITIVE_INFINITY;
  for (const xs of traceXs) {
    const x = xs.length > 0 ? axisX(xs[0]) : null;
    if (x !== null && x < oldest) oldest = x;
  }
  if (oldest === Number.POSITIVE_INFINITY) return null;
  return { start: fromLocalX(oldest, offsetOf), end: Number.POSITIVE_INFINITY, downsampled: false };
}

/**
 * Only the newest request's answer is drawn: a slow answer to an earlier zoom must not replace
 * a later one. `loading` is true from begin() until the newest request finishes or is cancelled.
 */
export class Latest {
  #token = 0;
  loading = false;

  /** A new request: every earlier one is now stale. @returns {number} its token */
  begin() {
    this.#token += 1;
    this.loading = true;
    return this.#token;
  }

  /** Whether `token` is still the newest (false: drop its answer). */
  isCurrent(token) {
    return token === this.#token;
  }

  /** The request `token` is over; true when its answer is wanted. */
  finish(token) {
    if (!this.isCurrent(token)) return false;
    this.loading = false;
    return true;
  }

  /** Whatever is in flight is no longer wanted (e.g. back to live). */
  cancel() {
    this.#token += 1;
    this.loading = false;
  }
}

/**
 * The answer checked for the shape we draw from; throws a TypeError naming what is wrong.
 * @param {any} body
 * @returns {Answer}
 */
export function readAnswer(body) {
  if (body === null || typeof body !== "object") throw new TypeError("the answer is not a JSON object");
  const { t, y } = body;
  if (!Array.isArray(t)) throw new TypeError("the answer has no times");
  if (y === null || typeof y !== "object" || Array.isArray(y)) throw new TypeError("the answer has no series");
  for (const [name, values] of Object.entries(y)) {
    if (!Array.isArray(values) || values.length !== t.length) {
      throw new TypeError(`series ${JSON.stringify(name)} does not match the times`);
    }
  }
  const count = (/** @type {unknown} */ value) => (typeof value === "number" && value >= 0 ? value : t.length);
  return { t, y, stored: count(body.stored), returned: count(body.returned), downsampled: body.downsampled === true };
}

/**
 * The chart's traces with the answer's points in place of theirs: same order and names as the
 * live traces (so going back to live extends the right ones), a trace with no points in the
 * range emptied, and a new trace (from `newTrace`) for each series the chart lacks. Null values
 * are left out, as on the live path (a series with no value at a time gets no point there).
 * @param {{traces: {name?: string}[], answer: Answer, newTrace?: object, toX?: (t: number) => number}} input
 * @returns {object[]}
 */
export function rangeTraces({ traces, answer, newTrace = {}, toX = (t) => t }) {
  const xs = answer.t.map(toX);
  const column = (/** @type {string} */ name) => {
    const values = answer.y[name] ?? [];
    const x = [];
    const y = [];
    for (let i = 0; i < values.length; i += 1) {
      if (values[i] === null || values[i] === undefined) continue;
      x.push(xs[i]);
      y.push(values[i]);
    }
    return { x, y };
  };
  const names = new Set(traces.map((trace) => trace.name ?? ""));
  const kept = traces.map((trace) => ({ ...trace, ...column(trace.name ?? "") }));
  const added = Object.keys(answer.y)
    .filter((name) => !names.has(name))
    .map((name) => ({ ...newTrace, name, ...column(name) }));
  return [...kept, ...added];
}

const count = (/** @type {number} */ n) => n.toLocaleString("en-US");

/**
 * The note under the range buttons: how many points the range holds and what is drawn.
 * @param {Answer} answer
 */
export function describeAnswer(answer) {
  if (answer.stored === 0) return "no stored points in this range";
  if (answer.downsampled) {
    return `${count(answer.stored)} points · downsampled to ${count(answer.returned)} per series`;
  }
  return answer.stored === 1 ? "all 1 point" : `all ${count(answer.stored)} points`;
}

/**
 * What to tell the person when a range could not be loaded.
 * @param {{status?: number, body?: any, error?: unknown}} failure  status 0 / error: no answer
 */
export function describeFailure({ status = 0, body = null, error = null }) {
  const said = typeof body?.message === "string" && body.message ? body.message : null;
  if (status === 401) return "You are signed out (perhaps in another tab): sign in again to load ranges.";
  if (status === 403) return "You may no longer see this stream: ask an operator for access, then reload.";
  if (status === 404) return "This stream is gone: there is nothing stored to show.";
  if (status === 400) return `The server refused this range: ${said ?? "bad request"}.`;
  if (status >= 200 && status < 300) return `The server's answer could not be read${said ? `: ${said}` : ""}.`;
  if (status >= 500) return `The server could not load this range (HTTP ${status}). Try again in a moment.`;
  if (status > 0) return `The range could not be loaded (HTTP ${status}${said ? `: ${said}` : ""}).`;
  const why = error instanceof Error && error.message ? `: ${error.message}` : "";
  return `The range could not be loaded: no answer from the server${why}. Check the connection and try again.`;
}
