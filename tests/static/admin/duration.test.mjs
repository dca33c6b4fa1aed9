import assert from "node:assert/strict";
import { test } from "node:test";

import { durationWords } from "../../../streams/static/streams/admin/duration.js";

test("says seconds in the two largest units, as the server renders them", () => {
  // The same cases as tests/test_admin.py test_durations_are_said_in_words.
  assert.equal(durationWords("2592000"), "30 days");
  assert.equal(durationWords("5400"), "1 hour 30 minutes");
  assert.equal(durationWords("60"), "1 minute");
  assert.equal(durationWords("90061"), "1 day 1 hour");
  assert.equal(durationWords("0"), "0 seconds");
  assert.equal(durationWords("31536000000"), "365,000 days");
});

test("says nothing for a blank, negative or non-numeric value", () => {
  for (const value of ["", "  ", "-5", "abc"]) assert.equal(durationWords(value), "");
});
