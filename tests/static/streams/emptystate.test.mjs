import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { emptyState } from "../../../streams/static/streams/emptystate.js";

describe("emptyState", () => {
  test("a chart with points shows them", () => {
    assert.equal(emptyState({ points: 1 }), null);
    assert.equal(emptyState({ points: 3, view: "range" }), null);
  });

  test("an empty live chart waits for the first point and says what the feed is doing", () => {
    const state = emptyState({ points: 0, status: { state: "error", error: "connection refused" } });
    assert.equal(state?.title, "Waiting for the first point");
    assert.match(state?.detail ?? "", /cannot reach its source/);
    assert.match(state?.detail ?? "", /Last error: connection refused/);
    assert.equal(state?.state, "error");
  });

  test("before any status it still says it is waiting, and names a connection that is not up", () => {
    const state = emptyState({ points: 0, status: null, connection: "reconnecting" });
    assert.equal(state?.title, "Waiting for the first point");
    assert.match(state?.detail ?? "", /Connection: reconnecting/);
    assert.equal(state?.state, "unknown");
  });

  test("points that arrived but are not drawn yet (out of view) are not 'waiting'", () => {
    const state = emptyState({ points: 0, pending: true, status: { state: "live" } });
    assert.equal(state?.title, "Points received");
    assert.match(state?.detail ?? "", /scrolls into view/);
  });

  test("an empty range says so, and loading says loading", () => {
    assert.equal(emptyState({ points: 0, view: "range" })?.title, "No stored points in this range");
    assert.equal(emptyState({ points: 0, view: "range", loading: true })?.title, "Loading…");
  });
});
