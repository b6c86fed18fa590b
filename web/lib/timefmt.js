//! Time formatting for the pages: RFC 3339 times from the API shown as the school's wall clock ("14:50", "12月4日 14:50"), never raw ISO text; it must never read the clock, the browser's time zone or the DOM.
// @ts-check

// The API writes every time with the school's UTC offset (`2026-12-04T14:50:00+08:00`). The
// pages show that wall clock as written, not converted to the browser's zone: a classroom PC
// and the school agree, and a teacher travelling sees the timetable's times.

/** @typedef {'zh' | 'en'} Lang */

const ISO = /(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?/;
const ISO_G = new RegExp(ISO.source, 'g');
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * The wall-clock parts of an RFC 3339 time as written (no zone conversion), or null.
 * @param {string | null | undefined} iso
 * @returns {{ year: number, month: number, day: number, hour: number, minute: number } | null}
 */
export function wallClock(iso) {
  const m = ISO.exec(iso ?? '');
  if (!m) return null;
  const [year, month, day, hour, minute] = m.slice(1, 6).map(Number);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59) return null;
  return { year, month, day, hour, minute };
}

const two = (/** @type {number} */ n) => String(n).padStart(2, '0');

/**
 * "14:50" from an RFC 3339 time (or "" when there is none: never "null" or "undefined").
 * @param {string | null | undefined} iso
 * @returns {string}
 */
export function hhmm(iso) {
  const w = wallClock(iso);
  return w ? `${two(w.hour)}:${two(w.minute)}` : '';
}

/**
 * A calendar date in the page's language: "2026年12月4日" / "4 Dec 2026"; also takes a plain
 * `YYYY-MM-DD`. Unreadable input gives "".
 * @param {string | null | undefined} s
 * @param {Lang} lang
 * @returns {string}
 */
export function dateLabel(s, lang) {
  const d = DATE.exec(s ?? '');
  const w = d ? { year: Number(d[1]), month: Number(d[2]), day: Number(d[3]) } : wallClock(s);
  if (!w || w.month < 1 || w.month > 12) return '';
  return lang === 'en' ? `${w.day} ${MONTHS[w.month - 1]} ${w.year}` : `${w.year}年${w.month}月${w.day}日`;
}

/**
 * A date and time in the page's language: "12月4日 14:50" / "4 Dec 14:50"; `year` adds the
 * year. Unreadable input gives "".
 * @param {string | null | undefined} iso
 * @param {Lang} lang
 * @param {{ year?: boolean }} [opts]
 * @returns {string}
 */
export function dateTime(iso, lang, { year = false } = {}) {
  const w = wallClock(iso);
  if (!w) return '';
  const time = `${two(w.hour)}:${two(w.minute)}`;
  if (lang === 'en') return `${w.day} ${MONTHS[w.month - 1]}${year ? ` ${w.year}` : ''} ${time}`;
  return `${year ? `${w.year}年` : ''}${w.month}月${w.day}日 ${time}`;
}

/**
 * `text` with every RFC 3339 time in it replaced by `dateTime` (for server text that names a
 * time, such as a log line).
 * @param {string} text
 * @param {Lang} lang
 * @returns {string}
 */
export function humanizeTimes(text, lang) {
  return text.replace(ISO_G, (m) => dateTime(m, lang) || m);
}

/**
 * "mm:ss" (or "h:mm:ss") for a duration in milliseconds, as the lesson clocks show it.
 * @param {number} ms
 * @returns {string}
 */
export function duration(ms) {
  const s = Math.max(0, Math.floor((Number.isFinite(ms) ? ms : 0) / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${two(m)}:${two(s % 60)}` : `${two(m)}:${two(s % 60)}`;
}
