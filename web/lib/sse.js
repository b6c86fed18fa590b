//! The server-sent-events wire format read incrementally (text chunks in, events out), for the lesson event reader; it must never fetch, time or touch the DOM: the caller owns the stream.
// @ts-check

/** @typedef {{ event: string, id: string | null, data: string }} SseMessage */

/**
 * An incremental parser of `text/event-stream` (the WHATWG rules): lines end in LF, CR or
 * CRLF (a CR at a chunk's end waits for the next chunk), `:` lines are comments, a blank line
 * dispatches, `data` lines join with LF, a message without data is not dispatched, and `id`
 * (without a NUL) is remembered as the last event id even for a message without data.
 */
export class SseParser {
  constructor() {
    this.buf = '';
    /** The last event id seen (for `Last-Event-ID` on the next connection). */
    /** @type {string | null} */
    this.lastId = null;
    this.event = '';
    /** @type {string[]} */
    this.data = [];
    /** @type {string | null} */
    this.id = null;
  }

  /**
   * Feeds a chunk of text; returns the messages it completed.
   * @param {string} chunk
   * @returns {SseMessage[]}
   */
  push(chunk) {
    this.buf += chunk;
    /** @type {SseMessage[]} */
    const out = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      // A lone CR at the end may be the first half of a CRLF split across chunks.
      if (m[0] === '\r' && m.index === this.buf.length - 1) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      const msg = this.line(line);
      if (msg) out.push(msg);
    }
    return out;
  }

  /**
   * @param {string} line
   * @returns {SseMessage | null}
   */
  line(line) {
    if (line === '') {
      const msg = this.data.length ? { event: this.event || 'message', id: this.id, data: this.data.join('\n') } : null;
      this.event = '';
      this.data = [];
      return msg;
    }
    if (line.startsWith(':')) return null;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let val = i < 0 ? '' : line.slice(i + 1);
    if (val.startsWith(' ')) val = val.slice(1);
    if (field === 'event') this.event = val;
    else if (field === 'data') this.data.push(val);
    else if (field === 'id' && !val.includes('\0')) {
      this.id = val;
      this.lastId = val;
    }
    return null;
  }
}

/**
 * A lesson event from one SSE message: the server sends `{seq, at, data}` as JSON; anything
 * else is passed on as `{ data: <text> }`.
 * @param {SseMessage} msg
 * @returns {{ kind: string, seq: number | null, at: number | null, data: any }}
 */
export function lessonEvent(msg) {
  let parsed;
  try {
    parsed = JSON.parse(msg.data);
  } catch {
    parsed = { data: msg.data };
  }
  if (parsed === null || typeof parsed !== 'object') parsed = { data: parsed };
  return { kind: msg.event, seq: parsed.seq ?? null, at: parsed.at ?? null, data: 'data' in parsed ? parsed.data : parsed };
}
