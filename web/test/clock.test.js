//! node --test: the lesson clock (web/lib/clock.js): time left to the slot's end, before the bell and over time, and the server-clock offset; never NaN or a negative time on screen.
// @ts-check
import test from 'node:test';
import assert from 'node:assert/strict';
import { skew, lessonClock } from '../lib/clock.js';

test('before the bell, running, over time', () => {
  const start = 1_000_000;
  const end = start + 40 * 60_000;
  assert.deepEqual(lessonClock(start - 60_000, start, end), { phase: 'before', ms: 60_000, text: '01:00' });
  assert.deepEqual(lessonClock(start, start, end), { phase: 'running', ms: 40 * 60_000, text: '40:00' });
  assert.equal(lessonClock(end - 1_000, start, end).text, '00:01');
  assert.deepEqual(lessonClock(end + 90_000, start, end), { phase: 'over', ms: 90_000, text: '01:30' });
  assert.equal(lessonClock(start, start, start + 3 * 3_600_000).text, '3:00:00');
});

test('the server clock offset', () => {
  assert.equal(skew(5_000, 2_000), 3_000);
  assert.equal(skew(2_000, 5_000), -3_000);
  assert.equal(skew(Number.NaN, 5_000), 0, 'no answer: the local clock');
});
