//! node --test: time formatting (web/lib/timefmt.js): the school's wall clock in both languages, never raw ISO text, "null" or "undefined"; it must never depend on the machine's time zone.
// @ts-check
import test from 'node:test';
import assert from 'node:assert/strict';
import { wallClock, hhmm, dateLabel, dateTime, humanizeTimes, duration } from '../lib/timefmt.js';

test('the wall clock as written, whatever the offset', () => {
  assert.deepEqual(wallClock('2026-12-04T14:50:00+08:00'), { year: 2026, month: 12, day: 4, hour: 14, minute: 50 });
  assert.equal(hhmm('2026-12-04T00:05:59.999Z'), '00:05');
  assert.equal(hhmm('2026-12-04T23:59:00-05:00'), '23:59');
});

test('nothing to show gives an empty string', () => {
  for (const bad of [null, undefined, '', 'soon', '2026-13-04T10:00:00Z', '2026-12-04T25:00:00Z']) {
    assert.equal(hhmm(bad), '', String(bad));
    assert.equal(dateTime(bad, 'zh'), '', String(bad));
  }
  assert.equal(dateLabel(null, 'en'), '');
});

test('dates and times in each language', () => {
  assert.equal(dateLabel('2026-09-07', 'zh'), '2026年9月7日');
  assert.equal(dateLabel('2026-09-07', 'en'), '7 Sep 2026');
  assert.equal(dateTime('2026-12-04T14:50:00+08:00', 'zh'), '12月4日 14:50');
  assert.equal(dateTime('2026-12-04T14:50:00+08:00', 'en'), '4 Dec 14:50');
  assert.equal(dateTime('2026-12-04T14:50:00+08:00', 'zh', { year: true }), '2026年12月4日 14:50');
});

test('ISO times inside text become readable', () => {
  const s = humanizeTimes('lesson 3 opens at 2026-12-04T14:50:00+08:00 (10 minutes before the bell at 2026-12-04T15:00:00+08:00)', 'en');
  assert.equal(s, 'lesson 3 opens at 4 Dec 14:50 (10 minutes before the bell at 4 Dec 15:00)');
  assert.ok(!/\d{4}-\d{2}-\d{2}T/.test(s));
});

test('durations', () => {
  assert.equal(duration(0), '00:00');
  assert.equal(duration(61_500), '01:01');
  assert.equal(duration(3_725_000), '1:02:05');
  assert.equal(duration(-5), '00:00');
  assert.equal(duration(Number.NaN), '00:00');
});
