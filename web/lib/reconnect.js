//! Reconnect rules shared by the lesson event reader and WHIP/WHEP links: how long to wait before the next attempt and which refusals no retry fixes; it must never set timers or open connections itself.
// @ts-check

/**
 * The wait before attempt `attempt + 1` after `attempt` failures in a row: `base` doubled per
 * failure, never more than `max` (attempt 0 waits `base`).
 * @param {number} attempt failures so far (0 or more)
 * @param {{ base?: number, max?: number }} [opts]
 * @returns {number} milliseconds
 */
export function backoff(attempt, { base = 500, max = 10000 } = {}) {
  const n = Number.isFinite(attempt) && attempt > 0 ? Math.floor(attempt) : 0;
  // 2 ** 30 already passes any sensible max; cap the exponent so the product stays finite.
  return Math.min(base * 2 ** Math.min(n, 30), max);
}

/**
 * Whether a refusal is final: a retry with the same credentials cannot fix a bad request, a
 * missing or refused login, a missing thing, a conflict or an unacceptable body. Network
 * errors (no status), 429 and 5xx are worth retrying.
 * @param {{ status?: number | null } | null | undefined} p
 * @returns {boolean}
 */
export function permanent(p) {
  const s = p?.status;
  return s === 400 || s === 401 || s === 403 || s === 404 || s === 406 || s === 409;
}

/**
 * Whether a lesson event stream that answered `status` should be given up (the credentials or
 * the lesson are wrong) rather than retried.
 * @param {number} status
 * @returns {boolean}
 */
export function eventsRefused(status) {
  return status === 401 || status === 403 || status === 404;
}
