// @ts-check
// Admin pages (/admin#lessons|schools|classrooms|pairings|timetable|import): today's lessons
// with live status, schools and classrooms (with device tokens and the kiosk link), pairings
// and the term timetable as a week view, CSV import (all rows or none; errors name row and
// column) and export, and the spreadsheet import tab (.xlsx or CSV in UTF-8/GBK, Chinese
// headers, templates, a per-row report). Everything goes through the same /api routes the
// tests exercise.

import { api, h, t, header, showError, modeLabel, hhmm, label, dateText } from '/app.js';

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const view = () => $('view');
const handle = { tab: null, error: null };
/** @type {any} */ (window).classrelay = handle;

const table = (cols, rows) =>
  h('table', { class: 'list' },
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))));

// 视频上限 (issue 19 item 2): the highest video layer a school's or classroom's viewers get
// (a satellite site: the lowest), set in place; the row is stored whole (PUT).
function layerCapSelect(row, path) {
  const opts = [['', t('layer_cap_none')], ['0', t('layer_cap_0')], ['1', t('layer_cap_1')], ['2', t('layer_cap_2')]];
  const sel = /** @type {HTMLSelectElement} */ (h('select', { 'aria-label': t('layer_cap') }, opts.map(([v, l]) => h('option', { value: v }, l))));
  sel.value = row.max_video_layer == null ? '' : String(row.max_video_layer);
  sel.addEventListener('change', async () => {
    showError(null);
    try {
      await api('PUT', path, { ...row, max_video_layer: sel.value === '' ? null : Number(sel.value) });
    } catch (e) {
      showError(e);
    }
  });
  return sel;
}

/** A small form: fields [{ name, label, type?, options? }] -> onSubmit(values). */
function form(fields, submitLabel, onSubmit) {
  const inputs = fields.map((f) => {
    const input = f.options
      ? h('select', { name: f.name }, f.options.map(([v, l]) => h('option', { value: v }, l)))
      : h('input', { name: f.name, type: f.type ?? 'text', placeholder: f.placeholder ?? '', required: f.required !== false });
    return [f, input];
  });
  const el = h('form', { class: 'inline' },
    inputs.map(([f, i]) => h('label', {}, h('span', {}, f.label), i)),
    h('button', { type: 'submit' }, submitLabel));
  el.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(null);
    const values = {};
    for (const [f, i] of inputs) {
      const v = i.value.trim();
      values[f.name] = f.type === 'number' ? (v === '' ? null : Number(v)) : v;
    }
    try {
      await onSubmit(values);
      el.reset();
    } catch (e) {
      showError(e);
    }
  });
  return el;
}

/** What the last import said, shown again once the tab has been drawn anew. */
let flash = null;

/** CSV import box: a file picker that posts the file and reports per-row errors. */
function csvBox(importPath, exportPath, after) {
  const out = h('div', { class: 'csv-result' }, flash ? h('p', { class: 'ok' }, flash) : null);
  flash = null;
  const file = h('input', { type: 'file', accept: `.csv,.xlsx,text/csv,${XLSX_TYPE}` });
  const go = h('button', {
    type: 'button',
    onclick: async () => {
      out.replaceChildren();
      showError(null);
      const f = file.files[0];
      if (!f) {
        out.append(h('p', { class: 'bad' }, t('import_no_file')));
        return;
      }
      try {
        const r = await api('POST', importPath, asUpload(f));
        const n = r?.imported ?? 0;
        flash = fill('import_done', { n, rows: r?.rows ?? n });
        if (r?.skipped?.length) flash += `; ${fill('import_skipped', { n: r.skipped.length })}`;
        out.append(h('p', { class: 'ok' }, flash));
        after();
      } catch (e) {
        showError(e);
        if (e.errors) out.append(table([t('col_row'), t('col_column'), t('col_problem')], e.errors.map((x) => [x.row, x.column, x.message])));
      }
    },
  }, t('import_csv'));
  return h('div', { class: 'bar' }, file, go, h('a', { class: 'button secondary', href: exportPath, download: true }, t('export_csv')), out);
}

// ---- Spreadsheet import (issue 22 item 2) ----

/** The importers, in the order a county sets up a term. */
const SHEETS = ['schools', 'classrooms', 'teachers', 'users', 'pairings', 'timetable'];
const XLSX_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';

/** `t(key)` with `{name}` placeholders filled. */
const fill = (key, vars) => t(key).replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));

/**
 * The chosen file as its bytes (never decoded here: a GBK CSV must reach the server as GBK),
 * typed by its name: operating systems call a CSV text/csv, application/vnd.ms-excel or
 * nothing; the server reads what it is from the bytes.
 */
function asUpload(f) {
  return new Blob([f], { type: /\.xlsx$/i.test(f.name) ? XLSX_TYPE : 'text/csv' });
}

/** The spreadsheet tab: importer choice, templates, file picker, check-only, the report. */
function importView() {
  const pick = h('select', { id: 'importSheet' }, SHEETS.map((s) => h('option', { value: s }, t(`sheet_${s}`))));
  const file = h('input', { id: 'importFile', type: 'file', accept: `.csv,.xlsx,text/csv,${XLSX_TYPE}` });
  const dry = h('input', { id: 'importDry', type: 'checkbox' });
  const out = h('div', { id: 'importResult', class: 'csv-result' });
  const tplCsv = h('a', { id: 'templateCsv', class: 'button secondary', download: true }, t('import_template_csv'));
  const tplXlsx = h('a', { id: 'templateXlsx', class: 'button secondary', download: true }, t('import_template_xlsx'));
  const chosen = () => {
    tplCsv.href = `/api/templates/${pick.value}.csv`;
    tplXlsx.href = `/api/templates/${pick.value}.xlsx`;
    // The users importer has no check-only mode.
    dry.disabled = pick.value === 'users';
    if (dry.disabled) dry.checked = false;
    out.replaceChildren();
  };
  pick.addEventListener('change', chosen);
  chosen();
  const go = h('button', {
    id: 'importGo',
    type: 'button',
    onclick: async () => {
      out.replaceChildren();
      delete out.dataset.done;
      showError(null);
      const f = file.files[0];
      if (!f) {
        out.append(h('p', { class: 'bad' }, t('import_no_file')));
        return;
      }
      const path = `/api/${pick.value}/import${dry.checked ? '?dry_run=1' : ''}`;
      try {
        const r = await api('POST', path, asUpload(f));
        const n = r?.imported ?? 0;
        out.append(h('p', { class: 'ok', dataset: { imported: n } },
          fill(r?.dry_run ? 'import_checked' : 'import_done', { n, rows: r?.rows ?? n })));
        if (r?.skipped?.length) {
          out.append(h('p', {}, fill('import_skipped', { n: r.skipped.length })),
            table([t('import_row'), t('import_problem')], r.skipped.map((x) => [x.row, x.message])));
        }
        if (r?.created?.length) {
          out.append(table([t('username'), t('import_password')],
            r.created.map((u) => [u.username, h('code', { class: 'secret' }, u.password)])));
        }
        out.dataset.done = 'ok';
      } catch (e) {
        showError(e);
        if (e.errors) {
          out.append(h('p', { class: 'bad' }, fill('import_failed', { n: e.errors.length })),
            table([t('import_row'), t('import_column'), t('import_problem')],
              e.errors.map((x) => [x.row, x.column, x.message])));
        }
        out.dataset.done = 'failed';
      }
    },
  }, t('import_go'));
  view().replaceChildren(
    h('h2', {}, t('import_tab')),
    h('p', { class: 'muted' }, t('import_hint')),
    h('div', { class: 'bar' }, h('label', {}, `${t('import_what')} `, pick), tplCsv, tplXlsx),
    h('div', { class: 'bar' }, h('label', {}, `${t('import_file')} `, file),
      h('label', {}, dry, ` ${t('import_check')}`), go),
    out);
}

// ---- end of spreadsheet import ----

const TABS = {
  async lessons() {
    const d = await api('GET', '/api/today');
    const rows = await Promise.all(d.lessons.map(async (l) => {
      let present = '';
      if (l.state === 'open' || l.state === 'live') {
        const live = await api('GET', `/api/lessons/${l.id}/live`).catch(() => null);
        if (live) present = `${live.present.length} / ${l.sites.length + 1}`;
      }
      return [`${hhmm(l.starts)}–${hhmm(l.ends)}`, l.subject, l.grade, modeLabel(l.mode),
        h('span', { class: `state state-${l.state}`, dataset: { lesson: l.id } }, t(`state_${l.state}`)), present,
        h('a', { href: `/classroom?lesson=${l.id}` }, t('watch'))];
    }));
    view().replaceChildren(h('h2', {}, `${t('lessons_today')} ${dateText(d.date)}`),
      table([t('time'), t('subject'), t('grade'), t('kind'), t('status'), t('col_present'), ''], rows));
  },

  async schools() {
    const [schools, regions] = await Promise.all([api('GET', '/api/schools'), api('GET', '/api/regions')]);
    const rname = (id) => {
      const r = regions.find((x) => x.id === id);
      return r ? [r.province, r.city, r.county].filter(Boolean).join(' / ') : '';
    };
    view().replaceChildren(
      h('h2', {}, t('schools')),
      table([t('col_id'), t('col_code'), t('name'), t('kind'), t('region'), t('layer_cap')], schools.map((s) => [s.id, s.code, s.name, label('school_kind', s.kind), rname(s.region_id), layerCapSelect(s, `/api/schools/${s.id}`)])),
      form([
        { name: 'code', label: t('col_code') },
        { name: 'name', label: t('name') },
        { name: 'kind', label: t('kind'), options: ['hub', 'partner'].map((k) => [k, label('school_kind', k)]) },
        { name: 'region_id', label: t('region'), options: [['', '—'], ...regions.map((r) => [String(r.id), rname(r.id)])] },
      ], t('add'), async (v) => {
        await api('POST', '/api/schools', { ...v, region_id: v.region_id ? Number(v.region_id) : null });
        await TABS.schools();
      }));
  },

  async classrooms() {
    const [rooms, schools] = await Promise.all([api('GET', '/api/classrooms'), api('GET', '/api/schools')]);
    const sname = (id) => schools.find((s) => s.id === id)?.name ?? id;
    const issued = h('div', { class: 'issued' });
    const issue = async (c) => {
      const label = window.prompt(t('device_token'), `${c.name} 一体机`);
      if (!label) return;
      try {
        const r = await api('POST', `/api/classrooms/${c.id}/devices`, { label });
        const link = `${location.origin}/classroom?device=${encodeURIComponent(r.token)}`;
        issued.replaceChildren(h('p', {}, `${t('kiosk_link')} (${c.name}):`), h('code', { class: 'secret' }, link));
      } catch (e) {
        showError(e);
      }
    };
    view().replaceChildren(
      h('h2', {}, t('classrooms')),
      table([t('col_id'), t('school'), t('name'), t('kind'), t('col_device'), t('layer_cap'), ''], rooms.map((c) => [c.id, sname(c.school_id), c.name, label('room_kind', c.kind), c.device ?? '',
        layerCapSelect(c, `/api/classrooms/${c.id}`),
        h('button', { class: 'secondary', onclick: () => issue(c) }, t('issue_token'))])),
      issued,
      form([
        { name: 'school_id', label: t('school'), options: schools.map((s) => [String(s.id), s.name]) },
        { name: 'name', label: t('name') },
        { name: 'kind', label: t('kind'), options: ['hub', 'interactive', 'receive_only'].map((k) => [k, label('room_kind', k)]) },
        { name: 'device', label: `${t('col_device')} ${t('optional')}`, required: false },
      ], t('add'), async (v) => {
        await api('POST', '/api/classrooms', { ...v, school_id: Number(v.school_id) });
        await TABS.classrooms();
      }));
  },

  async pairings() {
    const [ps, schools] = await Promise.all([api('GET', '/api/pairings'), api('GET', '/api/schools')]);
    const sname = (id) => schools.find((s) => s.id === id)?.name ?? id;
    view().replaceChildren(
      h('h2', {}, t('pairings')),
      csvBox('/api/pairings/import', '/api/pairings.csv', () => TABS.pairings()),
      table([t('col_id'), t('col_hub'), t('col_partner'), t('subject'), t('grade'), t('term'), t('col_owner')],
        ps.map((p) => [p.id, sname(p.hub_school_id), sname(p.partner_school_id), p.subject, p.grade, p.term, p.owner ?? ''])));
  },

  async timetable() {
    const terms = await api('GET', '/api/terms');
    const pick = h('select', {}, terms.map((x) => h('option', { value: x.id }, `${x.name} (${dateText(x.starts_on)}–${dateText(x.ends_on)})`)));
    const grid = h('div', { class: 'week' });
    const box = h('div');
    const draw = async () => {
      const term = Number(pick.value);
      if (!term) {
        grid.replaceChildren(t('no_term'));
        return;
      }
      const [slots, teachers, rooms] = await Promise.all([
        api('GET', `/api/slots?term_id=${term}`), api('GET', '/api/teachers'), api('GET', '/api/classrooms'),
      ]);
      const tname = (id) => teachers.find((x) => x.id === id)?.name ?? id;
      const rname = (id) => rooms.find((x) => x.id === id)?.name ?? id;
      const periods = [...new Set(slots.map((s) => s.period))].sort((a, b) => a - b);
      const cell = (wd, p) => slots.filter((s) => s.weekday === wd && s.period === p).map((s) =>
        h('div', { class: `slot mode-${s.mode}`, dataset: { slot: s.id } },
          h('strong', {}, `${s.subject} ${s.grade}`), h('span', {}, `${s.starts}–${s.ends}`),
          h('span', {}, `${modeLabel(s.mode)} · ${tname(s.hub_teacher_id)} @ ${rname(s.hub_classroom_id)}`),
          h('span', { class: 'muted' }, `→ ${s.sites.map((x) => rname(x.classroom_id)).join(', ')}`)));
      grid.replaceChildren(h('table', { class: 'week' },
        h('thead', {}, h('tr', {}, h('th', {}, ''), [1, 2, 3, 4, 5, 6, 7].map((d) => h('th', {}, t(`weekday_${d}`))))),
        h('tbody', {}, periods.map((p) => h('tr', {}, h('th', {}, `${p}`), [1, 2, 3, 4, 5, 6, 7].map((d) => h('td', {}, cell(d, p))))))));
      box.replaceChildren(csvBox(`/api/timetable/import?term_id=${term}`, `/api/timetable.csv?term_id=${term}`, draw));
    };
    pick.addEventListener('change', () => draw().catch(showError));
    view().replaceChildren(h('h2', {}, t('timetable')), h('div', { class: 'bar' }, h('label', {}, `${t('term')} `, pick)), box, grid);
    await draw();
  },

  async import() {
    importView();
  },
};

async function show() {
  const tab = (location.hash || '#lessons').slice(1);
  handle.tab = tab;
  document.querySelectorAll('nav.tabs a').forEach((a) => a.classList.toggle('active', /** @type {HTMLAnchorElement} */ (a).hash === `#${tab}`));
  showError(null);
  try {
    await (TABS[tab] ?? TABS.lessons)();
  } catch (e) {
    handle.error = e;
    showError(e);
  }
  document.body.dataset.ready = tab;
}

async function main() {
  const me = await api('GET', '/api/me');
  await header(me);
  if (me.role !== 'admin') {
    showError({ status: 403, type: 'urn:classrelay:problem:role-forbidden', title: 'Forbidden', detail: null });
    return;
  }
  window.addEventListener('hashchange', show);
  await show();
}

main().catch((e) => {
  handle.error = e;
  showError(e);
});
