//! node --test: reconnect backoff and which refusals are final (web/lib/reconnect.js); it must never wait for real time.
// @ts-check
import test from 'node:test';
import assert from 'node:assert/strict';
import { backoff, permanent, eventsRefused } from '../lib/reconnect.js';

test('backoff doubles from the base and stops at the cap', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map((n) => backoff(n)), [500, 1000, 2000, 4000, 8000, 10000, 10000]);
  assert.deepEqual([0, 1, 4, 5].map((n) => backoff(n, { max: 8000 })), [500, 1000, 8000, 8000]);
  assert.equal(backoff(1e9), 10000);
  assert.equal(backoff(-3), 500);
  assert.equal(backoff(Number.NaN), 500);
  assert.equal(backoff(2, { base: 100, max: 1e6 }), 400);
});

test('final refusals stop a link; network errors, 429 and 5xx retry', () => {
  for (const s of [400, 401, 403, 404, 406, 409]) assert.ok(permanent({ status: s }), String(s));
  for (const s of [null, undefined, 429, 500, 502, 503]) assert.ok(!permanent({ status: s }), String(s));
  assert.ok(!permanent(null));
});

test('the event stream gives up only on credentials or a missing lesson', () => {
  assert.ok(eventsRefused(401) && eventsRefused(403) && eventsRefused(404));
  assert.ok(!eventsRefused(500) && !eventsRefused(503) && !eventsRefused(200));
});
