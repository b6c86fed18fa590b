//! node --test: the i18n lookup and the page tables (both languages, no key twice, every problem kind worded); it must never need a browser or the server.
// @ts-check
import test from 'node:test';
import assert from 'node:assert/strict';
import { pickLang, lookup, fill, missingKeys, duplicateKeys, KEY_PATTERN } from '../lib/i18n.js';
import { WORDS } from '../lib/words.js';
import { DICT, PAGES_DICT } from '../app.js';

const dict = { zh: { a_b: '甲', only_zh: '中' }, en: { a_b: 'A' } };

test('pickLang: the query wins, then the stored choice, then Chinese', () => {
  assert.equal(pickLang('en', 'zh'), 'en');
  assert.equal(pickLang('zh', 'en'), 'zh');
  assert.equal(pickLang(null, 'en'), 'en');
  assert.equal(pickLang('fr', 'de'), 'zh');
  assert.equal(pickLang(undefined, undefined), 'zh');
});

test('lookup: the language, then Chinese, then the key itself', () => {
  assert.equal(lookup(dict, 'en', 'a_b'), 'A');
  assert.equal(lookup(dict, 'zh', 'a_b'), '甲');
  assert.equal(lookup(dict, 'en', 'only_zh'), '中');
  assert.equal(lookup(dict, 'en', 'nowhere_at_all'), 'nowhere_at_all');
  assert.equal(lookup(dict, 'en', 'nowhere_at_all', ''), '');
});

test('fill: placeholders from values, unknown ones kept', () => {
  assert.equal(fill('{name} 老师', { name: '王丽' }), '王丽 老师');
  assert.equal(fill('{a}-{b}', { a: 1 }), '1-{b}');
  assert.equal(fill('{a}', { a: null }), '{a}');
});

test('missingKeys and duplicateKeys find what they should', () => {
  assert.deepEqual(missingKeys(dict), ['en:only_zh']);
  assert.deepEqual(duplicateKeys(dict, { zh: { a_b: 'x' }, en: {} }), ['a_b']);
});

test('KEY_PATTERN matches keys, not sentences', () => {
  assert.ok(KEY_PATTERN.test('mode_delivery'));
  assert.ok(KEY_PATTERN.test('课堂 state_open'));
  assert.ok(!KEY_PATTERN.test('专递课堂 · 数学 · 五年级'));
  assert.ok(!KEY_PATTERN.test('Dedicated delivery'));
});

test('the page table: every key in both languages, no key defined twice, values are not keys', () => {
  assert.deepEqual(missingKeys(DICT), []);
  // A key in both app.js's table and lib/words.js would silently take one of the two.
  assert.deepEqual(duplicateKeys(PAGES_DICT, WORDS), []);
  for (const l of /** @type {const} */ (['zh', 'en'])) {
    for (const [k, v] of Object.entries(DICT[l])) {
      assert.ok(!KEY_PATTERN.test(v), `${l}:${k} = ${v} looks like a key`);
    }
  }
});

test('every lesson mode, role and kind the API sends has a label', () => {
  for (const m of ['delivery', 'master', 'sync']) assert.ok(DICT.zh[`mode_${m}`] && DICT.en[`mode_${m}`], m);
  assert.equal(DICT.zh.mode_delivery, '专递课堂');
  for (const r of ['admin', 'teacher', 'observer', 'inspector', 'device']) assert.ok(DICT.en[`role_${r}`], r);
  for (const k of ['hub', 'partner']) assert.ok(DICT.en[`school_kind_${k}`], k);
  for (const k of ['hub', 'interactive', 'receive_only']) assert.ok(DICT.en[`room_kind_${k}`], k);
});
