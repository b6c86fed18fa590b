//! node --test: server problems worded in the page's language (web/lib/problems.js); it must never show English detail on a Chinese page, a raw ISO time, or a placeholder.
// @ts-check
import test from 'node:test';
import assert from 'node:assert/strict';
import { MESSAGES, problemText, problemKind } from '../lib/problems.js';

const P = 'urn:classrelay:problem:';
const CJK = /[\u4e00-\u9fff]/;

test('every message has both languages: Chinese in Chinese, no CJK in English', () => {
  for (const [k, [zh, en]] of Object.entries(MESSAGES)) {
    assert.ok(CJK.test(zh), `${k} zh`);
    assert.ok(en && !CJK.test(en), `${k} en`);
  }
});

test('a duplicate on a Chinese page: the sentence, not the server detail', () => {
  const p = { status: 409, type: `${P}duplicate`, title: 'Conflict', detail: 'a record with the same key already exists' };
  const zh = problemText(p, 'zh');
  assert.equal(zh, MESSAGES.duplicate[0]);
  assert.ok(!zh.includes('record'));
  assert.ok(problemText(p, 'en').startsWith(MESSAGES.duplicate[1]));
});

test('lesson-not-open names the opening time in local words', () => {
  const p = { status: 403, type: `${P}lesson-not-open`, detail: 'lesson 3 opens at 2026-12-04T14:50:00+08:00 (…)', opens_at: '2026-12-04T14:50:00+08:00' };
  assert.equal(problemText(p, 'zh'), '本节课尚未开放，12月4日 14:50 开放');
  const en = problemText(p, 'en');
  assert.ok(en.startsWith('This lesson is not open yet; it opens at 4 Dec 14:50'), en);
  assert.ok(!/\d{4}-\d{2}-\d{2}T/.test(en), en);
});

test('a placeholder the problem does not fill is dropped, never shown', () => {
  const zh = problemText({ status: 403, type: `${P}lesson-not-open` }, 'zh');
  assert.ok(!zh.includes('{'), zh);
  assert.ok(zh.startsWith('本节课尚未开放'), zh);
});

test('unknown kinds fall back to the status, then to a generic sentence; network errors are worded', () => {
  assert.equal(problemText({ status: 404, type: `${P}brand-new` }, 'zh'), '找不到该内容');
  assert.equal(problemText({ status: 418, type: null }, 'zh'), '操作失败');
  assert.equal(problemText({ status: null, title: 'network error', detail: 'Failed to fetch' }, 'zh'), MESSAGES.network[0]);
  assert.equal(problemText(null, 'en'), 'Something went wrong');
  // A browser error (no status, no type) is not a network error.
  assert.equal(problemText({ status: null, title: 'NotAllowedError', detail: 'Permission denied' }, 'zh'), '操作失败');
});

test('problemKind reads only our own types', () => {
  assert.equal(problemKind({ type: `${P}not-found` }), 'not-found');
  assert.equal(problemKind({ type: 'about:blank' }), null);
  assert.equal(problemKind({}), null);
});
