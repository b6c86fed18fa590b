//! The lesson clock's arithmetic (teacher console, classroom page): the server's "now" from a measured offset, and where the lesson stands against its slot ("12:05" left, over time); it must never read the clock, the DOM or the network itself.
// @ts-check

import { duration } from './timefmt.js';

/**
 * The offset to add to the browser's clock to get the server's (the school clock may differ
 * from this machine's, and a test server runs on a manual clock).
 * @param {number} serverNow the server's `now` (epoch ms) as it answered
 * @param {number} localNow the browser's clock when the answer came
 * @returns {number}
 */
export function skew(serverNow, localNow) {
  if (!Number.isFinite(serverNow) || !Number.isFinite(localNow)) return 0;
  return serverNow - localNow;
}

/**
 * Where the lesson stands against its slot at `now`: before the bell (`ms` until it),
 * running (`ms` left until the end), or over time (`ms` past the end); `text` is that time
 * as a clock ("12:05", "1:02:05").
 * @param {number} now epoch ms (server time)
 * @param {number} startsAt the bell, epoch ms
 * @param {number} endsAt the end of the slot, epoch ms
 * @returns {{ phase: 'before' | 'running' | 'over', ms: number, text: string }}
 */
export function lessonClock(now, startsAt, endsAt) {
  const at = (/** @type {'before' | 'running' | 'over'} */ phase, /** @type {number} */ ms) => ({ phase, ms, text: duration(ms) });
  if (now < startsAt) return at('before', startsAt - now);
  if (now <= endsAt) return at('running', endsAt - now);
  return at('over', now - endsAt);
}
