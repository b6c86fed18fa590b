//! The reports page (/reports): 开课率, 到课率 per school and per site, minutes taught per teacher and link quality per school, by week or term, as tables, SVG bar charts and CSV downloads (UTF-8 with BOM). It only reads `/api/reports`; it must never compute a figure itself (the server's numbers are the ones sent upward).
// @ts-check

import { api, header, h, t, tf, showError, dateText } from '/app.js';

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const handle = { report: null, error: null };
/** @type {any} */ (window).classrelay = handle;

const pct = (/** @type {number} */ x) => `${(x * 100).toFixed(1)}%`;
const SVG = 'http://www.w3.org/2000/svg';

/** An SVG element with attributes. */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/**
 * A horizontal bar chart of shares (0..1): one bar per row, its label left and its percentage
 * right; `parts` splits a bar into coloured pieces (good/fair/poor).
 * @param {{ label: string, parts: { value: number, cls: string }[], text: string }[]} rows
 */
function bars(rows, title) {
  const rowH = 26;
  const labelW = 260;
  const barW = 420;
  const hgt = rows.length * rowH + 30;
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${labelW + barW + 80} ${hgt}`, role: 'img', 'aria-label': title });
  svg.append(s('text', { x: 0, y: 16, class: 'chart-title' }, title));
  rows.forEach((r, i) => {
    const y = 26 + i * rowH;
    svg.append(s('text', { x: 0, y: y + 15 }, r.label));
    svg.append(s('rect', { x: labelW, y, width: barW, height: rowH - 8, class: 'bar-bg' }));
    let x = labelW;
    for (const p of r.parts) {
      const w = Math.max(0, Math.min(1, p.value)) * barW;
      svg.append(s('rect', { x, y, width: w, height: rowH - 8, class: p.cls }));
      x += w;
    }
    svg.append(s('text', { x: labelW + barW + 6, y: y + 15 }, r.text));
  });
  return svg;
}

const table = (cols, rows) =>
  h('table', { class: 'list' },
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))));

/** A period as people read it: the week of a Monday, or a term's name. */
function periodText(p, by) {
  if (by === 'week') return tf('rp_week_of', { date: dateText(p) });
  return p || t('rp_no_term');
}

const OUTCOMES = { held: 'rp_o_held', cancelled: 'rp_o_cancelled', missed: 'rp_o_missed', upcoming: 'rp_o_upcoming' };

function csvLink(table, q) {
  return h('a', { class: 'button secondary', href: `/api/reports.csv?table=${table}&${q}`, download: true, dataset: { table } }, t('rp_csv'));
}

function section(id, title, table, q, ...body) {
  return h('section', { id, class: 'report' }, h('div', { class: 'bar' }, h('h2', {}, title), csvLink(table, q)), ...body);
}

function render(r, q) {
  const by = r.by;
  const P = (p) => periodText(p, by);
  const empty = (rows, el) => (rows.length ? el : h('p', { class: 'muted' }, t('rp_empty')));
  $('out').replaceChildren(
    h('p', { class: 'muted' }, tf('rp_window', { from: dateText(r.from), to: dateText(r.to) })),
    section('rate', t('rp_rate'), 'rate', q,
      h('p', { class: 'muted' }, t('rp_rate_hint')),
      empty(r.rate, bars(r.rate.map((x) => ({ label: P(x.period), parts: [{ value: x.rate, cls: 'q-good' }], text: `${pct(x.rate)} (${x.held}/${x.due})` })), t('rp_rate'))),
      empty(r.rate, table([t('rp_period'), t('rp_scheduled'), t('rp_cancelled'), t('rp_upcoming'), t('rp_due'), t('rp_held'), t('rp_rate')],
        r.rate.map((x) => [P(x.period), x.scheduled, x.cancelled, x.upcoming, x.due, x.held, pct(x.rate)])))),
    section('attendance', t('rp_attendance'), 'schools', q,
      empty(r.schools, bars(r.schools.map((x) => ({ label: `${P(x.period)} ${x.school}`, parts: [{ value: x.rate, cls: 'q-good' }], text: `${pct(x.rate)} (${x.present}/${x.expected})` })), t('rp_attendance'))),
      empty(r.schools, table([t('rp_period'), t('school'), t('rp_expected'), t('rp_present'), t('rp_attendance')],
        r.schools.map((x) => [P(x.period), x.school, x.expected, x.present, pct(x.rate)])))),
    section('sites', t('rp_sites'), 'sites', q,
      empty(r.sites, table([t('rp_period'), t('school'), t('rp_classroom'), t('rp_expected'), t('rp_present'), t('rp_attendance')],
        r.sites.map((x) => [P(x.period), x.school, x.classroom ?? '', x.expected, x.present, pct(x.rate)])))),
    section('teachers', t('rp_minutes'), 'teachers', q,
      empty(r.teachers, table([t('rp_period'), t('teacher'), t('school'), t('rp_lessons'), t('rp_minutes_n')],
        r.teachers.map((x) => [P(x.period), x.teacher, x.school, x.lessons, x.minutes.toFixed(1)])))),
    section('links', t('rp_links'), 'links', q,
      empty(r.links, bars(r.links.map((x) => {
        const n = x.good + x.fair + x.poor || 1;
        return { label: `${P(x.period)} ${x.school}`, parts: [{ value: x.good / n, cls: 'q-good' }, { value: x.fair / n, cls: 'q-fair' }, { value: x.poor / n, cls: 'q-poor' }], text: pct(x.good_share) };
      }), t('rp_links'))),
      empty(r.links, table([t('rp_period'), t('school'), t('quality_good'), t('quality_fair'), t('quality_poor'), t('rp_good_share')],
        r.links.map((x) => [P(x.period), x.school, x.good, x.fair, x.poor, pct(x.good_share)])))),
    section('lessons', t('rp_lessons_all'), 'lessons', q,
      empty(r.lessons, table([t('rp_date'), t('subject'), t('grade'), t('teacher'), t('rp_outcome'), t('rp_sites_present'), t('rp_minutes_n')],
        r.lessons.map((x) => [dateText(x.date), x.subject, x.grade, x.teacher,
          h('span', { class: `outcome outcome-${x.outcome}`, dataset: { lesson: x.id, outcome: x.outcome } }, t(OUTCOMES[x.outcome] ?? 'rp_o_upcoming')),
          `${x.sites_present}/${x.sites_expected}`, x.minutes.toFixed(1)])))),
  );
}

/** The query of the form as it stands. */
function query() {
  const p = new URLSearchParams();
  if ($('term').value) p.set('term_id', $('term').value);
  if ($('from').value) p.set('from', $('from').value);
  if ($('to').value) p.set('to', $('to').value);
  p.set('by', $('by').value);
  return p.toString();
}

async function show() {
  showError(null);
  delete document.body.dataset.ready;
  const q = query();
  history.replaceState(null, '', `/reports?${q}`);
  try {
    const r = await api('GET', `/api/reports?${q}`);
    handle.report = r;
    render(r, q);
  } catch (e) {
    handle.error = e;
    showError(e);
  }
  document.body.dataset.ready = 'reports';
}

async function main() {
  const me = await api('GET', '/api/me');
  await header(me);
  if (me.role !== 'admin' && me.role !== 'inspector') {
    showError({ status: 403, type: 'urn:classrelay:problem:role-forbidden', title: 'Forbidden', detail: null });
    document.body.dataset.ready = 'reports';
    return;
  }
  const terms = await api('GET', '/api/terms');
  $('term').replaceChildren(h('option', { value: '' }, t('rp_any_term')), ...terms.map((x) => h('option', { value: x.id }, x.name)));
  $('by').replaceChildren(h('option', { value: 'week' }, t('rp_by_week')), h('option', { value: 'term' }, t('rp_by_term')));
  const q = new URLSearchParams(location.search);
  if (q.get('term_id')) $('term').value = q.get('term_id');
  if (q.get('from')) $('from').value = q.get('from');
  if (q.get('to')) $('to').value = q.get('to');
  if (q.get('by')) $('by').value = q.get('by');
  $('ask').addEventListener('submit', (ev) => {
    ev.preventDefault();
    show();
  });
  await show();
}

main().catch((e) => {
  handle.error = e;
  showError(e);
  document.body.dataset.ready = 'reports';
});
