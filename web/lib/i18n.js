//! i18n lookup for the pages: picks the language and finds a key's text in a zh/en table; it must never touch the DOM, storage or the network (pages pass in what they read), so node tests import it as it is.
// @ts-check

/** @typedef {'zh' | 'en'} Lang */
/** @typedef {{ zh: Record<string, string>, en: Record<string, string> }} Dict */

/**
 * What an untranslated key looks like when it leaks into a page: a snake_case word of two or
 * more parts (`mode_delivery`, `state_open`). Every key of the tables has this shape, and the
 * page-walk test looks for it in the visible text.
 */
export const KEY_PATTERN = /\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b/;

/**
 * The page language: `?lang=` (zh or en) wins, then the remembered choice, then Chinese.
 * @param {string | null | undefined} query the `lang` query parameter
 * @param {string | null | undefined} stored the remembered choice
 * @returns {Lang}
 */
export function pickLang(query, stored) {
  if (query === 'en' || query === 'zh') return query;
  return stored === 'en' ? 'en' : 'zh';
}

/**
 * A key's text in `lang`, else in Chinese, else `fallback` (the key itself unless given), so a
 * missing entry is visible, and the page-walk test finds it, rather than an empty label.
 * @param {Dict} dict
 * @param {Lang} lang
 * @param {string} key
 * @param {string} [fallback]
 * @returns {string}
 */
export function lookup(dict, lang, key, fallback) {
  return dict[lang]?.[key] ?? dict.zh?.[key] ?? fallback ?? key;
}

/**
 * Fills `{name}` placeholders from `vars`; a placeholder without a value stays as it is.
 * @param {string} template
 * @param {Record<string, string | number | null | undefined>} [vars]
 * @returns {string}
 */
export function fill(template, vars = {}) {
  return template.replace(/\{([a-z_]+)\}/g, (m, name) => {
    const v = vars[name];
    return v == null ? m : String(v);
  });
}

/**
 * Keys present in one language of `dict` and missing (or empty) in the other, as
 * `lang:key` strings: a page must never fall back to the key.
 * @param {Dict} dict
 * @returns {string[]}
 */
export function missingKeys(dict) {
  const out = [];
  for (const [a, b] of /** @type {const} */ ([['zh', 'en'], ['en', 'zh']])) {
    for (const k of Object.keys(dict[a])) {
      if (!dict[b][k]) out.push(`${b}:${k}`);
    }
  }
  return out.sort();
}

/**
 * Joins tables (each a zh/en pair) into one; a key defined twice is a mistake the node tests
 * catch with `duplicateKeys`.
 * @param {...Dict} parts
 * @returns {Dict}
 */
export function merge(...parts) {
  /** @type {Dict} */
  const out = { zh: {}, en: {} };
  for (const p of parts) {
    Object.assign(out.zh, p.zh);
    Object.assign(out.en, p.en);
  }
  return out;
}

/**
 * Keys that more than one of `parts` defines (in either language).
 * @param {...Dict} parts
 * @returns {string[]}
 */
export function duplicateKeys(...parts) {
  const seen = new Set();
  const dup = new Set();
  for (const p of parts) {
    for (const k of new Set([...Object.keys(p.zh), ...Object.keys(p.en)])) {
      if (seen.has(k)) dup.add(k);
      seen.add(k);
    }
  }
  return [...dup].sort();
}
