//! node --test: the event-stream reader (web/lib/sse.js) on the wire cases a lesson stream meets; it must never open a connection.
// @ts-check
import test from 'node:test';
import assert from 'node:assert/strict';
import { SseParser, lessonEvent } from '../lib/sse.js';

test('one event, the fields and the id', () => {
  const p = new SseParser();
  const out = p.push('id: 7\nevent: hand\ndata: {"seq":7,"at":1000,"data":{"part":"c:2"}}\n\n');
  assert.deepEqual(out, [{ event: 'hand', id: '7', data: '{"seq":7,"at":1000,"data":{"part":"c:2"}}' }]);
  assert.equal(p.lastId, '7');
  assert.deepEqual(lessonEvent(out[0]), { kind: 'hand', seq: 7, at: 1000, data: { part: 'c:2' } });
});

test('split anywhere: the same events whatever the chunking', () => {
  const wire = ': keep-alive\r\nid: 1\r\nevent: joined\r\ndata: {"seq":1}\r\n\r\nid: 2\rdata: a\rdata: b\r\rdata: x\n\n';
  const whole = new SseParser().push(wire);
  assert.equal(whole.length, 3);
  for (let cut = 0; cut <= wire.length; cut++) {
    const p = new SseParser();
    const got = [...p.push(wire.slice(0, cut)), ...p.push(wire.slice(cut))];
    assert.deepEqual(got, whole, `cut at ${cut}`);
  }
  assert.deepEqual(whole[1], { event: 'message', id: '2', data: 'a\nb' });
  // The id carries over to a message that sets none.
  assert.equal(whole[2].id, '2');
});

test('comments, empty data, no data and unknown fields', () => {
  const p = new SseParser();
  assert.deepEqual(p.push(':x\n\nevent: a\n\nretry: 5\nfoo\ndata\n\n'), [{ event: 'message', id: null, data: '' }]);
  // An event name without data is not dispatched and does not leak into the next one.
  assert.deepEqual(p.push('data: z\n\n'), [{ event: 'message', id: null, data: 'z' }]);
});

test('an id-only message moves the resume point; an id with NUL is ignored', () => {
  const p = new SseParser();
  assert.deepEqual(p.push('id: 41\n\n'), []);
  assert.equal(p.lastId, '41');
  p.push('id: 4\u00002\n\n');
  assert.equal(p.lastId, '41');
});

test('lessonEvent: JSON envelope, plain text, JSON that is not an object', () => {
  assert.deepEqual(lessonEvent({ event: 'resync', id: null, data: '{"seq":3,"data":{"present":[]}}' }), { kind: 'resync', seq: 3, at: null, data: { present: [] } });
  assert.deepEqual(lessonEvent({ event: 'm', id: null, data: 'hello' }), { kind: 'm', seq: null, at: null, data: 'hello' });
  assert.deepEqual(lessonEvent({ event: 'm', id: null, data: '5' }), { kind: 'm', seq: null, at: null, data: 5 });
  assert.deepEqual(lessonEvent({ event: 'm', id: null, data: 'null' }), { kind: 'm', seq: null, at: null, data: null });
});
