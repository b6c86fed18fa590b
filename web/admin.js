// @ts-check
// Admin pages (/admin#lessons|manage|regions|schools|classrooms|teachers|users|terms|pairings|
// timetable|devices|import): today's lessons with live status; every entity the API holds with
// search, filter and paging, single-item forms, edit and delete (two clicks: the first arms the
// button); lessons generated, added ad hoc, moved, cancelled or deleted; device tokens listed,
// revoked and re-issued with the kiosk link and its QR code; CSV and spreadsheet import.
// Everything goes through the same /api routes the tests exercise, inside the admin's scope.

import { api, h, t, tf, header, showError, modeLabel, hhmm, label, dateText, lang, lessonStateOf } from '/app.js';

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
    if (f.multiple) input.multiple = true;
    if (f.value != null) {
      if (f.multiple) for (const o of input.options) o.selected = f.value.map(String).includes(o.value);
      else input.value = String(f.value);
    }
    return [f, input];
  });
  const el = h('form', { class: 'inline', dataset: { form: submitLabel } },
    inputs.map(([f, i]) => h('label', {}, h('span', {}, f.label), i)),
    h('button', { type: 'submit' }, submitLabel));
  el.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(null);
    const values = {};
    for (const [f, i] of inputs) {
      if (f.multiple) {
        values[f.name] = [...i.selectedOptions].map((o) => o.value);
        continue;
      }
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

// ---- recording settings (issue 20 item 4) ----

/** The signed-in admin (`/api/me`): whose place the recording settings are shown for. */
let me = null;

/** Whether school `s` lies in the admin's place (the server checks again on save). */
function inPlace(s, regions) {
  const sc = me?.scope ?? {};
  if (sc.level === 'global') return true;
  if (sc.level === 'school') return sc.school_id === s.id;
  const r = regions.find((x) => x.id === s.region_id);
  if (!r) return false;
  if (sc.level === 'county') return sc.region_id === r.id;
  if (sc.level === 'city') return sc.province === r.province && sc.city === r.city;
  if (sc.level === 'province') return sc.province === r.province;
  return false;
}

/** Per school in the admin's place: record its timetable lessons (on/off) and keep their
 *  recordings this many days (blank: the server's default). Saved with PUT /api/schools/{id},
 *  which a county admin or higher may call: a school's own admin sees them, unchangeable. */
function recordingSettings(schools, regions) {
  const writes = ['county', 'city', 'province', 'global'].includes(me?.scope?.level);
  const rows = schools.filter((s) => inPlace(s, regions)).map((s) => {
    const on = h('input', { type: 'checkbox', name: 'record_lessons' });
    on.checked = s.record_lessons !== false;
    const days = h('input', { type: 'number', name: 'retention_days', min: 1, max: 36500, placeholder: t('rs_days_default') });
    days.value = s.retention_days == null ? '' : String(s.retention_days);
    const note = h('span', { class: 'muted' });
    const row = h('tr', { dataset: { school: s.id } });
    if (!writes) {
      on.disabled = true;
      days.disabled = true;
      row.append(h('td', {}, s.name), h('td', {}, h('label', {}, on, ` ${t('rs_on')}`)), h('td', {}, days), h('td', { class: 'muted' }, t('rs_by_county')));
      return row;
    }
    const save = h('button', {
      type: 'button',
      onclick: async () => {
        const v = days.value.trim();
        row.dataset.saved = 'saving';
        try {
          const body = { ...s, record_lessons: on.checked, retention_days: v === '' ? null : Number(v) };
          Object.assign(s, await api('PUT', `/api/schools/${s.id}`, body));
          note.textContent = t('rs_saved');
          note.className = 'ok';
          row.dataset.saved = '1';
        } catch (e) {
          note.textContent = e?.detail ?? e?.title ?? String(e);
          note.className = 'bad';
          row.dataset.saved = 'error';
        }
      },
    }, t('rs_save'));
    row.append(h('td', {}, s.name), h('td', {}, h('label', {}, on, ` ${t('rs_on')}`)), h('td', {}, days), h('td', {}, save, ' ', note));
    return row;
  });
  return h('section', { id: 'recSettings' },
    h('h2', {}, t('rs_settings')),
    h('p', { class: 'muted' }, t('rs_settings_hint')),
    h('table', { class: 'list' },
      h('thead', {}, h('tr', {}, [t('school'), t('rs_lessons'), t('rs_days'), ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, rows)));
}

// ---- end of recording settings ----

// ---- Lists, forms and confirmations for every entity (issue 22 item 1) ----

/** What the last change said ("已保存"), shown above the tab once it is drawn anew. */
let done = null;
const say = (/** @type {string} */ text) => {
  done = text;
};

/** Rows per page of every list. */
const PAGE = 20;

/**
 * A button that acts on the second click within 5 s (the first arms it and says so): delete,
 * revoke and cancel never happen on one stray click, and nothing blocks the page.
 */
function confirmButton(text, onConfirm, cls = 'danger') {
  const b = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: cls, dataset: { armed: '0', action: text } }, text));
  let timer = null;
  b.addEventListener('click', async () => {
    if (b.dataset.armed !== '1') {
      b.dataset.armed = '1';
      b.textContent = t('ad_confirm');
      timer = setTimeout(() => {
        b.dataset.armed = '0';
        b.textContent = text;
      }, 5000);
      return;
    }
    clearTimeout(timer);
    b.disabled = true;
    showError(null);
    try {
      await onConfirm();
    } catch (e) {
      showError(e);
      b.disabled = false;
      b.dataset.armed = '0';
      b.textContent = text;
    }
  });
  return b;
}

/**
 * A list with search (over every column's text), filters and paging.
 * columns: [{ label, value(row) -> string | Node, text?(row) -> string }];
 * filters: [{ label, options: [value, label][], test(row, value) }].
 */
function listView(id, columns, rows, filters = []) {
  const search = /** @type {HTMLInputElement} */ (h('input', { type: 'search', class: 'search', placeholder: t('ad_search') }));
  const selects = filters.map((f) => /** @type {HTMLSelectElement} */ (h('select', { class: 'filter' },
    h('option', { value: '' }, f.label), f.options.map(([v, l]) => h('option', { value: String(v) }, l)))));
  const body = h('tbody');
  const info = h('span', { class: 'muted count' });
  const prev = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'secondary' }, t('ad_prev')));
  const next = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'secondary' }, t('ad_next')));
  let page = 0;
  const textOf = (r) => columns.map((c) => {
    if (c.text) return c.text(r);
    const v = c.value(r);
    return typeof v === 'string' || typeof v === 'number' ? String(v) : '';
  }).join(' ').toLowerCase();
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const shown = rows.filter((r) => (!q || textOf(r).includes(q))
      && filters.every((f, i) => !selects[i].value || f.test(r, selects[i].value)));
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    page = Math.min(page, pages - 1);
    body.replaceChildren(...shown.slice(page * PAGE, (page + 1) * PAGE).map((r) =>
      h('tr', { dataset: { id: r.id } }, columns.map((c) => h('td', {}, c.value(r))))));
    info.textContent = tf('ad_page', { n: shown.length, page: page + 1, pages });
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  };
  search.addEventListener('input', () => {
    page = 0;
    draw();
  });
  selects.forEach((x) => x.addEventListener('change', () => {
    page = 0;
    draw();
  }));
  prev.addEventListener('click', () => {
    page -= 1;
    draw();
  });
  next.addEventListener('click', () => {
    page += 1;
    draw();
  });
  draw();
  return h('div', { class: 'listview', id },
    h('div', { class: 'bar' }, search, selects, info, prev, next),
    h('table', { class: 'list' }, h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, c.label)))), body));
}

/** The place to put an edit form (one per tab). */
const editor = () => h('div', { id: 'editor', class: 'editor' });

/** Opens `fields` prefilled in #editor; `save(values)` stores them, then the tab is redrawn. */
function edit(title, fields, save, redraw) {
  const box = document.getElementById('editor');
  if (!box) return;
  box.replaceChildren(h('h3', {}, title), form(fields, t('ad_save'), async (v) => {
    await save(v);
    say(t('ad_saved'));
    await redraw();
  }), h('button', { type: 'button', class: 'secondary', onclick: () => box.replaceChildren() }, t('ad_cancel_edit')));
  box.scrollIntoView?.({ block: 'nearest' });
}

/** Row buttons: edit, and delete with confirmation. */
function rowActions(onEdit, path, redraw, extra = []) {
  return h('span', { class: 'tile-actions' },
    onEdit ? h('button', { type: 'button', class: 'secondary', dataset: { act: 'edit' }, onclick: onEdit }, t('ad_edit')) : null,
    ...extra,
    path ? confirmButton(t('ad_delete'), async () => {
      await api('DELETE', path);
      say(t('ad_deleted'));
      await redraw();
    }) : null);
}

/** Epoch milliseconds as this browser's local date and time, in the page's language. */
const msText = (/** @type {number} */ ms) => new Date(ms).toLocaleString(lang() === 'en' ? 'en-GB' : 'zh-CN',
  { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

const regionName = (regions, id) => {
  const r = regions.find((x) => x.id === id);
  return r ? [r.province, r.city, r.county].filter(Boolean).join(' / ') : '';
};
const nameOf = (list, id) => list.find((x) => x.id === id)?.name ?? '';
const opts = (list, text = (x) => x.name) => list.map((x) => [String(x.id), text(x)]);
const WEEKDAYS = [1, 2, 3, 4, 5, 6, 7];
const MODES = ['delivery', 'master', 'sync'];
const ROLES = ['admin', 'teacher', 'observer', 'inspector'];
const LEVELS = ['global', 'province', 'city', 'county', 'school'];

/** The kiosk link of a device token, and its QR code (an SVG the server draws). */
function kioskLink(token, room) {
  const link = `${location.origin}/classroom?device=${encodeURIComponent(token)}`;
  const img = /** @type {HTMLImageElement} */ (h('img', { class: 'qr', alt: t('ad_qr') }));
  // Drawn by the server from a POST (the link carries the device's secret: no URL holds it).
  api('POST', '/api/qr.svg', { text: link })
    .then((svg) => {
      img.src = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
    })
    .catch(showError);
  return h('div', { class: 'issued', id: 'issued' },
    h('p', {}, `${t('kiosk_link')} (${room}):`), h('code', { class: 'secret' }, link), img);
}

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
        h('span', { class: `state state-${lessonStateOf(l)}`, dataset: { lesson: l.id } }, t(`state_${lessonStateOf(l)}`)), present,
        h('a', { href: `/classroom?lesson=${l.id}` }, t('watch'))];
    }));
    view().replaceChildren(h('h2', {}, `${t('lessons_today')} ${dateText(d.date)}`),
      table([t('time'), t('subject'), t('grade'), t('kind'), t('status'), t('col_present'), ''], rows));
  },

  async regions() {
    const regions = await api('GET', '/api/regions');
    const fields = (r = null) => [
      { name: 'province', label: t('ad_province'), value: r?.province },
      { name: 'city', label: t('ad_city'), value: r?.city },
      { name: 'county', label: t('ad_county'), value: r?.county },
    ];
    view().replaceChildren(
      h('h2', {}, t('ad_regions')),
      listView('regionList', [
        { label: t('ad_province'), value: (r) => r.province },
        { label: t('ad_city'), value: (r) => r.city },
        { label: t('ad_county'), value: (r) => r.county },
        { label: '', value: (r) => rowActions(() => edit(t('ad_edit'), fields(r), (v) => api('PUT', `/api/regions/${r.id}`, { ...r, ...v }), show), `/api/regions/${r.id}`, show) },
      ], regions),
      editor(),
      h('h3', {}, t('ad_new')),
      form(fields(), t('add'), async (v) => {
        await api('POST', '/api/regions', v);
        say(t('ad_added'));
        await show();
      }));
  },

  async schools() {
    const [schools, regions] = await Promise.all([api('GET', '/api/schools'), api('GET', '/api/regions')]);
    const fields = (s = null) => [
      { name: 'code', label: t('col_code'), value: s?.code },
      { name: 'name', label: t('name'), value: s?.name },
      { name: 'kind', label: t('kind'), options: ['hub', 'partner'].map((k) => [k, label('school_kind', k)]), value: s?.kind },
      { name: 'region_id', label: t('region'), options: [['', '—'], ...regions.map((r) => [String(r.id), regionName(regions, r.id)])], value: s?.region_id ?? '' },
    ];
    const body = (v) => ({ ...v, region_id: v.region_id ? Number(v.region_id) : null });
    view().replaceChildren(
      h('h2', {}, t('schools')),
      listView('schoolList', [
        { label: t('col_code'), value: (s) => s.code },
        { label: t('name'), value: (s) => s.name },
        { label: t('kind'), value: (s) => label('school_kind', s.kind) },
        { label: t('region'), value: (s) => regionName(regions, s.region_id) },
        { label: t('layer_cap'), value: (s) => layerCapSelect(s, `/api/schools/${s.id}`) },
        { label: '', value: (s) => rowActions(() => edit(`${t('ad_edit')} ${s.name}`, fields(s), (v) => api('PUT', `/api/schools/${s.id}`, { ...s, ...body(v) }), show), `/api/schools/${s.id}`, show) },
      ], schools, [
        { label: t('kind'), options: ['hub', 'partner'].map((k) => [k, label('school_kind', k)]), test: (s, v) => s.kind === v },
        { label: t('region'), options: opts(regions, (r) => regionName(regions, r.id)), test: (s, v) => String(s.region_id) === v },
      ]),
      editor(),
      h('h3', {}, t('ad_new')),
      form(fields(), t('add'), async (v) => {
        await api('POST', '/api/schools', body(v));
        say(t('ad_added'));
        await show();
      }),
      recordingSettings(schools, regions));
  },

  async classrooms() {
    const [rooms, schools] = await Promise.all([api('GET', '/api/classrooms'), api('GET', '/api/schools')]);
    const kinds = ['hub', 'interactive', 'receive_only'].map((k) => [k, label('room_kind', k)]);
    const fields = (c = null) => [
      { name: 'school_id', label: t('school'), options: opts(schools), value: c?.school_id },
      { name: 'name', label: t('name'), value: c?.name },
      { name: 'kind', label: t('kind'), options: kinds, value: c?.kind },
      { name: 'device', label: `${t('col_device')} ${t('optional')}`, required: false, value: c?.device ?? '' },
    ];
    const body = (v) => ({ ...v, school_id: Number(v.school_id) });
    view().replaceChildren(
      h('h2', {}, t('classrooms')),
      listView('classroomList', [
        { label: t('school'), value: (c) => nameOf(schools, c.school_id) },
        { label: t('name'), value: (c) => c.name },
        { label: t('kind'), value: (c) => label('room_kind', c.kind) },
        { label: t('col_device'), value: (c) => c.device ?? '' },
        { label: t('layer_cap'), value: (c) => layerCapSelect(c, `/api/classrooms/${c.id}`) },
        { label: '', value: (c) => rowActions(() => edit(`${t('ad_edit')} ${c.name}`, fields(c), (v) => api('PUT', `/api/classrooms/${c.id}`, { ...c, ...body(v) }), show), `/api/classrooms/${c.id}`, show,
          [h('a', { class: 'button secondary', href: `#devices?classroom=${c.id}` }, t('ad_devices'))]) },
      ], rooms, [
        { label: t('school'), options: opts(schools), test: (c, v) => String(c.school_id) === v },
        { label: t('kind'), options: kinds, test: (c, v) => c.kind === v },
      ]),
      editor(),
      h('h3', {}, t('ad_new')),
      form(fields(), t('add'), async (v) => {
        await api('POST', '/api/classrooms', body(v));
        say(t('ad_added'));
        await show();
      }));
  },

  async teachers() {
    const [teachers, schools] = await Promise.all([api('GET', '/api/teachers'), api('GET', '/api/schools')]);
    const fields = (x = null) => [
      { name: 'code', label: t('col_code'), value: x?.code },
      { name: 'name', label: t('name'), value: x?.name },
      { name: 'school_id', label: t('school'), options: opts(schools), value: x?.school_id },
      { name: 'subjects', label: `${t('ad_subjects')} ${t('optional')}`, required: false, value: x?.subjects ?? '' },
    ];
    const body = (v) => ({ ...v, school_id: Number(v.school_id) });
    view().replaceChildren(
      h('h2', {}, t('ad_teachers')),
      listView('teacherList', [
        { label: t('col_code'), value: (x) => x.code },
        { label: t('name'), value: (x) => x.name },
        { label: t('school'), value: (x) => nameOf(schools, x.school_id) },
        { label: t('ad_subjects'), value: (x) => x.subjects ?? '' },
        { label: '', value: (x) => rowActions(() => edit(`${t('ad_edit')} ${x.name}`, fields(x), (v) => api('PUT', `/api/teachers/${x.id}`, { ...x, ...body(v) }), show), `/api/teachers/${x.id}`, show) },
      ], teachers, [{ label: t('school'), options: opts(schools), test: (x, v) => String(x.school_id) === v }]),
      editor(),
      h('h3', {}, t('ad_new')),
      form(fields(), t('add'), async (v) => {
        await api('POST', '/api/teachers', body(v));
        say(t('ad_added'));
        await show();
      }));
  },

  async users() {
    const [users, schools, regions, teachers] = await Promise.all([api('GET', '/api/users'), api('GET', '/api/schools'),
      api('GET', '/api/regions'), api('GET', '/api/teachers')]);
    const scopeText = (u) => {
      const where = u.scope === 'school' ? nameOf(schools, u.school_id) : u.scope === 'global' ? '' : regionName(regions, u.region_id);
      return [t(`ad_level_${u.scope}`), where].filter(Boolean).join(' · ');
    };
    const scopeFields = (u = null) => [
      { name: 'scope', label: t('ad_scope'), options: LEVELS.map((l) => [l, t(`ad_level_${l}`)]), value: u?.scope ?? 'school' },
      { name: 'school_id', label: t('school'), options: [['', '—'], ...opts(schools)], value: u?.school_id ?? '' },
      { name: 'region_id', label: t('region'), options: [['', '—'], ...opts(regions, (r) => regionName(regions, r.id))], value: u?.region_id ?? '' },
    ];
    const ids = (v) => ({ ...v, school_id: v.school_id ? Number(v.school_id) : null, region_id: v.region_id ? Number(v.region_id) : null });
    const password = (u) => edit(`${t('ad_reset_password')} ${u.username}`, [{ name: 'password', label: t('password'), type: 'password' }],
      (v) => api('PATCH', `/api/users/${u.id}`, { password: v.password }), show);
    const scope = (u) => edit(`${t('ad_scope')} ${u.username}`, scopeFields(u), (v) => api('PATCH', `/api/users/${u.id}`, ids(v)), show);
    // Changing a role (issue 22 item 2): the server keeps it inside the admin's scope.
    const role = (u) => edit(`${t('ad_change_role')} ${u.username}`,
      [{ name: 'role', label: t('ad_role'), options: ROLES.map((r) => [r, label('role', r)]), value: u.role }],
      (v) => api('PATCH', `/api/users/${u.id}`, { role: v.role }), show);
    const toggle = (u) => confirmButton(t(u.disabled ? 'ad_enable' : 'ad_disable'), async () => {
      await api('PATCH', `/api/users/${u.id}`, { disabled: !u.disabled });
      say(t('ad_saved'));
      await show();
    }, u.disabled ? 'secondary' : 'danger');
    view().replaceChildren(
      h('h2', {}, t('ad_users')),
      listView('userList', [
        { label: t('username'), value: (u) => u.username },
        { label: t('name'), value: (u) => u.display_name },
        { label: t('ad_role'), value: (u) => label('role', u.role) },
        { label: t('ad_scope'), value: (u) => scopeText(u) },
        { label: t('teacher'), value: (u) => nameOf(teachers, u.teacher_id) },
        { label: t('status'), value: (u) => (u.disabled ? t('ad_disabled') : t('ad_active')) },
        { label: '', value: (u) => h('span', { class: 'tile-actions' },
          h('button', { type: 'button', class: 'secondary', onclick: () => password(u) }, t('ad_reset_password')),
          h('button', { type: 'button', class: 'secondary', onclick: () => scope(u) }, t('ad_scope')),
          h('button', { type: 'button', class: 'secondary', dataset: { act: 'role' }, onclick: () => role(u) }, t('ad_change_role')),
          toggle(u),
          confirmButton(t('ad_delete'), async () => {
            await api('DELETE', `/api/users/${u.id}`);
            say(t('ad_deleted'));
            await show();
          })) },
      ], users, [
        { label: t('ad_role'), options: ROLES.map((r) => [r, label('role', r)]), test: (u, v) => u.role === v },
        { label: t('status'), options: [['1', t('ad_disabled')], ['0', t('ad_active')]], test: (u, v) => (u.disabled ? '1' : '0') === v },
      ]),
      editor(),
      h('h3', {}, t('ad_new')),
      form([
        { name: 'username', label: t('username') },
        { name: 'display_name', label: t('name') },
        { name: 'role', label: t('ad_role'), options: ROLES.map((r) => [r, label('role', r)]) },
        { name: 'password', label: t('password'), type: 'password' },
        { name: 'teacher_id', label: `${t('teacher')} ${t('optional')}`, options: [['', '—'], ...opts(teachers)] },
        ...scopeFields(),
      ], t('add'), async (v) => {
        await api('POST', '/api/users', { ...ids(v), teacher_id: v.teacher_id ? Number(v.teacher_id) : null });
        say(t('ad_added'));
        await show();
      }));
  },

  async terms() {
    const terms = await api('GET', '/api/terms');
    const fields = (x = null) => [
      { name: 'name', label: t('name'), value: x?.name },
      { name: 'starts_on', label: t('ad_starts_on'), type: 'date', value: x?.starts_on },
      { name: 'ends_on', label: t('ad_ends_on'), type: 'date', value: x?.ends_on },
    ];
    view().replaceChildren(
      h('h2', {}, t('ad_terms')),
      listView('termList', [
        { label: t('name'), value: (x) => x.name },
        { label: t('ad_starts_on'), value: (x) => dateText(x.starts_on) },
        { label: t('ad_ends_on'), value: (x) => dateText(x.ends_on) },
        { label: '', value: (x) => rowActions(() => edit(`${t('ad_edit')} ${x.name}`, fields(x), (v) => api('PUT', `/api/terms/${x.id}`, { ...x, ...v }), show), `/api/terms/${x.id}`, show) },
      ], terms),
      editor(),
      h('h3', {}, t('ad_new')),
      form(fields(), t('add'), async (v) => {
        await api('POST', '/api/terms', v);
        say(t('ad_added'));
        await show();
      }));
  },

  async pairings() {
    const [ps, schools, terms] = await Promise.all([api('GET', '/api/pairings'), api('GET', '/api/schools'), api('GET', '/api/terms')]);
    const kindOf = (k) => schools.filter((x) => x.kind === k);
    const fields = (p = null) => [
      { name: 'hub_school_id', label: t('col_hub'), options: opts(kindOf('hub')), value: p?.hub_school_id },
      { name: 'partner_school_id', label: t('col_partner'), options: opts(kindOf('partner')), value: p?.partner_school_id },
      { name: 'subject', label: t('subject'), value: p?.subject },
      { name: 'grade', label: t('grade'), value: p?.grade },
      { name: 'term', label: t('term'), options: terms.map((x) => [x.name, x.name]), value: p?.term },
      { name: 'owner', label: `${t('col_owner')} ${t('optional')}`, required: false, value: p?.owner ?? '' },
    ];
    const body = (v) => ({ ...v, hub_school_id: Number(v.hub_school_id), partner_school_id: Number(v.partner_school_id) });
    view().replaceChildren(
      h('h2', {}, t('pairings')),
      csvBox('/api/pairings/import', '/api/pairings.csv', () => TABS.pairings()),
      listView('pairingList', [
        { label: t('col_hub'), value: (p) => nameOf(schools, p.hub_school_id) },
        { label: t('col_partner'), value: (p) => nameOf(schools, p.partner_school_id) },
        { label: t('subject'), value: (p) => p.subject },
        { label: t('grade'), value: (p) => p.grade },
        { label: t('term'), value: (p) => p.term },
        { label: t('col_owner'), value: (p) => p.owner ?? '' },
        { label: '', value: (p) => rowActions(() => edit(t('ad_edit'), fields(p), (v) => api('PUT', `/api/pairings/${p.id}`, { ...p, ...body(v) }), show), `/api/pairings/${p.id}`, show) },
      ], ps, [{ label: t('term'), options: terms.map((x) => [x.name, x.name]), test: (p, v) => p.term === v }]),
      editor(),
      h('h3', {}, t('ad_new')),
      form(fields(), t('add'), async (v) => {
        await api('POST', '/api/pairings', body(v));
        say(t('ad_added'));
        await show();
      }));
  },

  async timetable() {
    const terms = await api('GET', '/api/terms');
    const pick = h('select', { id: 'termPick' }, terms.map((x) => h('option', { value: x.id }, `${x.name} (${dateText(x.starts_on)}–${dateText(x.ends_on)})`)));
    const grid = h('div', { class: 'week' });
    const box = h('div');
    const list = h('div');
    const adder = h('div');
    const draw = async () => {
      const term = Number(pick.value);
      if (!term) {
        grid.replaceChildren(t('no_term'));
        return;
      }
      const [slots, teachers, rooms] = await Promise.all([
        api('GET', `/api/slots?term_id=${term}`), api('GET', '/api/teachers'), api('GET', '/api/classrooms'),
      ]);
      const tname = (id) => nameOf(teachers, id);
      const rname = (id) => nameOf(rooms, id);
      const periods = [...new Set(slots.map((s) => s.period))].sort((a, b) => a - b);
      const cell = (wd, p) => slots.filter((s) => s.weekday === wd && s.period === p).map((s) =>
        h('div', { class: `slot mode-${s.mode}`, dataset: { slot: s.id } },
          h('strong', {}, `${s.subject} ${s.grade}`), h('span', {}, `${s.starts}–${s.ends}`),
          h('span', {}, `${modeLabel(s.mode)} · ${tname(s.hub_teacher_id)} @ ${rname(s.hub_classroom_id)}`),
          h('span', { class: 'muted' }, `→ ${s.sites.map((x) => rname(x.classroom_id)).join(', ')}`)));
      grid.replaceChildren(h('table', { class: 'week' },
        h('thead', {}, h('tr', {}, h('th', {}, ''), WEEKDAYS.map((d) => h('th', {}, t(`weekday_${d}`))))),
        h('tbody', {}, periods.map((p) => h('tr', {}, h('th', {}, `${p}`), WEEKDAYS.map((d) => h('td', {}, cell(d, p))))))));
      box.replaceChildren(csvBox(`/api/timetable/import?term_id=${term}`, `/api/timetable.csv?term_id=${term}`, draw));
      // One slot at a time, besides the CSV.
      const fields = (s = null) => [
        { name: 'weekday', label: t('ad_weekday'), options: WEEKDAYS.map((d) => [String(d), t(`weekday_${d}`)]), value: s?.weekday },
        { name: 'period', label: t('col_period'), type: 'number', value: s?.period },
        { name: 'starts', label: t('ad_starts'), type: 'time', value: s?.starts },
        { name: 'ends', label: t('ad_ends'), type: 'time', value: s?.ends },
        { name: 'subject', label: t('subject'), value: s?.subject },
        { name: 'grade', label: t('grade'), value: s?.grade },
        { name: 'mode', label: t('kind'), options: MODES.map((m) => [m, modeLabel(m)]), value: s?.mode },
        { name: 'hub_teacher_id', label: t('teacher'), options: opts(teachers), value: s?.hub_teacher_id },
        { name: 'hub_classroom_id', label: t('ad_hub_room'), options: opts(rooms.filter((r) => r.kind !== 'receive_only')), value: s?.hub_classroom_id },
        { name: 'sites', label: t('sites'), options: opts(rooms), multiple: true, value: s?.sites.map((x) => x.classroom_id) ?? [] },
      ];
      const body = (v, s = null) => ({
        ...v, term_id: term, weekday: Number(v.weekday), hub_teacher_id: Number(v.hub_teacher_id), hub_classroom_id: Number(v.hub_classroom_id),
        sites: v.sites.map((c) => ({ classroom_id: Number(c), assisting_teacher_id: s?.sites.find((x) => x.classroom_id === Number(c))?.assisting_teacher_id ?? null })),
      });
      const redraw = () => show();
      list.replaceChildren(listView('slotList', [
        { label: t('ad_weekday'), value: (s) => t(`weekday_${s.weekday}`) },
        { label: t('col_period'), value: (s) => String(s.period) },
        { label: t('time'), value: (s) => `${s.starts}–${s.ends}` },
        { label: t('subject'), value: (s) => s.subject },
        { label: t('grade'), value: (s) => s.grade },
        { label: t('kind'), value: (s) => modeLabel(s.mode) },
        { label: t('teacher'), value: (s) => tname(s.hub_teacher_id) },
        { label: t('sites'), value: (s) => s.sites.map((x) => rname(x.classroom_id)).join(', ') },
        { label: '', value: (s) => rowActions(() => edit(`${t('ad_edit')} ${s.subject} ${t(`weekday_${s.weekday}`)}`, fields(s),
          (v) => api('PUT', `/api/slots/${s.id}`, { ...s, ...body(v, s) }), redraw), `/api/slots/${s.id}`, redraw) },
      ], slots, [
        { label: t('ad_weekday'), options: WEEKDAYS.map((d) => [String(d), t(`weekday_${d}`)]), test: (s, v) => String(s.weekday) === v },
        { label: t('teacher'), options: opts(teachers), test: (s, v) => String(s.hub_teacher_id) === v },
      ]), editor());
      adder.replaceChildren(h('h3', {}, t('ad_new_slot')), form(fields(), t('add'), async (v) => {
        await api('POST', '/api/slots', body(v));
        say(t('ad_added'));
        await redraw();
      }));
    };
    pick.addEventListener('change', () => draw().catch(showError));
    view().replaceChildren(h('h2', {}, t('timetable')), h('div', { class: 'bar' }, h('label', {}, `${t('term')} `, pick)), box, grid, list, adder);
    await draw();
  },

  async manage() {
    const q = new URLSearchParams(location.hash.split('?')[1] ?? '');
    // The school's today (the server's clock), not this browser's.
    const today = (await api('GET', '/api/today')).date;
    const from = q.get('from') ?? today;
    const to = q.get('to') ?? from;
    const [lessons, teachers, rooms] = await Promise.all([api('GET', `/api/lessons?from=${from}&to=${to}`),
      api('GET', '/api/teachers'), api('GET', '/api/classrooms')]);
    const range = form([
      { name: 'from', label: t('rp_from'), type: 'date', value: from },
      { name: 'to', label: t('rp_to'), type: 'date', value: to },
    ], t('rp_show'), async (v) => {
      location.hash = `#manage?from=${v.from}&to=${v.to || v.from}`;
    });
    const redraw = () => show();
    const day = (iso) => (iso ?? '').slice(0, 10);
    const atMs = (date, time) => new Date(`${date}T${time}:00${(lessons[0]?.starts ?? '+08:00').slice(-6)}`).getTime();
    const fields = (l = null) => [
      { name: 'date', label: t('rp_date'), type: 'date', value: l ? day(l.starts) : from },
      { name: 'start', label: t('ad_starts'), type: 'time', value: l ? hhmm(l.starts) : '' },
      { name: 'end', label: t('ad_ends'), type: 'time', value: l ? hhmm(l.ends) : '' },
      { name: 'subject', label: t('subject'), value: l?.subject },
      { name: 'grade', label: t('grade'), value: l?.grade },
      { name: 'title', label: `${t('ad_lesson_title')} ${t('optional')}`, required: false, value: l?.title ?? '' },
      { name: 'mode', label: t('kind'), options: MODES.map((m) => [m, modeLabel(m)]), value: l?.mode },
      { name: 'hub_teacher_id', label: t('teacher'), options: opts(teachers), value: l?.hub_teacher_id },
      { name: 'hub_classroom_id', label: t('ad_hub_room'), options: opts(rooms.filter((r) => r.kind !== 'receive_only')), value: l?.hub_classroom_id },
      { name: 'sites', label: t('sites'), options: opts(rooms), multiple: true, value: l?.sites.map((x) => x.classroom_id) ?? [] },
    ];
    const body = (v, l = null) => ({
      textbook: l?.textbook ?? '', chapter: l?.chapter ?? '', mode: v.mode, subject: v.subject, grade: v.grade, title: v.title,
      hub_teacher_id: Number(v.hub_teacher_id), hub_classroom_id: Number(v.hub_classroom_id),
      starts_at: atMs(v.date, v.start), ends_at: atMs(v.date, v.end),
      sites: v.sites.map((c) => ({ classroom_id: Number(c), assisting_teacher_id: l?.sites.find((x) => x.classroom_id === Number(c))?.assisting_teacher_id ?? null })),
    });
    const actions = (l) => {
      // A lesson held or being held: its link report per classroom (issue 19 item 6).
      if (l.state === 'live' || l.state === 'ended') return h('a', { href: `/lesson?id=${l.id}#links`, dataset: { act: 'links' } }, t('link_report'));
      if (l.state !== 'scheduled' && l.state !== 'open') return '';
      return h('span', { class: 'tile-actions' },
        h('button', { type: 'button', class: 'secondary', dataset: { act: 'edit' }, onclick: () => edit(`${t('ad_edit')} ${l.subject}`, fields(l), (v) => api('PUT', `/api/lessons/${l.id}`, body(v, l)), redraw) }, t('ad_edit')),
        confirmButton(t('ad_cancel_lesson'), async () => {
          await api('POST', `/api/lessons/${l.id}/cancel`, { reason: '' });
          say(t('ad_cancelled'));
          await redraw();
        }),
        l.state === 'scheduled' ? confirmButton(t('ad_delete'), async () => {
          await api('DELETE', `/api/lessons/${l.id}`);
          say(t('ad_deleted'));
          await redraw();
        }) : null);
    };
    const gen = form([
      { name: 'from', label: t('rp_from'), type: 'date', value: from },
      { name: 'to', label: t('rp_to'), type: 'date', value: to },
    ], t('ad_generate'), async (v) => {
      const r = await api('POST', '/api/lessons/generate', { from: v.from, to: v.to || v.from });
      say(tf('ad_generated', { n: r.created }));
      const next = `#manage?from=${r.from}&to=${r.to}`;
      if (location.hash === next) await show();
      else location.hash = next;
    });
    gen.id = 'generate';
    view().replaceChildren(
      h('h2', {}, t('ad_lessons')),
      range,
      listView('lessonList', [
        { label: t('rp_date'), value: (l) => dateText(day(l.starts)) },
        { label: t('time'), value: (l) => `${hhmm(l.starts)}–${hhmm(l.ends)}` },
        { label: t('subject'), value: (l) => l.subject },
        { label: t('grade'), value: (l) => l.grade },
        { label: t('kind'), value: (l) => modeLabel(l.mode) },
        { label: t('teacher'), value: (l) => nameOf(teachers, l.hub_teacher_id) },
        { label: t('status'), value: (l) => h('span', { class: `state state-${lessonStateOf(l)}`, dataset: { lesson: l.id } }, t(`state_${lessonStateOf(l)}`)), text: (l) => t(`state_${lessonStateOf(l)}`) },
        { label: '', value: actions },
      ], lessons, [
        { label: t('status'), options: ['scheduled', 'open', 'live', 'ended', 'cancelled'].map((x) => [x, t(`state_${x}`)]), test: (l, v) => lessonStateOf(l) === v },
        { label: t('teacher'), options: opts(teachers), test: (l, v) => String(l.hub_teacher_id) === v },
      ]),
      editor(),
      h('h3', {}, t('ad_generate')), h('p', { class: 'muted' }, t('ad_generate_hint')), gen,
      h('h3', {}, t('ad_adhoc')), form(fields(), t('add'), async (v) => {
        await api('POST', '/api/lessons', body(v));
        say(t('ad_added'));
        await redraw();
      }));
  },

  async devices() {
    const q = new URLSearchParams(location.hash.split('?')[1] ?? '');
    const [rooms, schools] = await Promise.all([api('GET', '/api/classrooms'), api('GET', '/api/schools')]);
    const only = q.get('classroom');
    const shown = only ? rooms.filter((c) => String(c.id) === only) : rooms;
    const lists = await Promise.all(shown.map((c) => api('GET', `/api/classrooms/${c.id}/devices`).then((ds) => ds.map((d) => ({ ...d, room: c })))));
    const devices = lists.flat();
    const issued = h('div', { id: 'issuedBox' });
    const redraw = () => show();
    const issue = async (c, labelText) => {
      const r = await api('POST', `/api/classrooms/${c.id}/devices`, { label: labelText });
      return kioskLink(r.token, c.name);
    };
    const reissue = (d) => confirmButton(t('ad_reissue'), async () => {
      const box = await issue(d.room, d.label);
      await api('DELETE', `/api/devices/${d.id}`);
      say(t('ad_reissued'));
      await redraw();
      document.getElementById('issuedBox')?.replaceChildren(box);
    }, 'secondary');
    // Relabelling (issue 22 item 1): the token and its kiosk link stay as they are.
    const rename = (d) => h('button', { type: 'button', class: 'secondary', dataset: { act: 'rename' }, onclick: () => edit(`${t('ad_rename')} ${d.label}`,
      [{ name: 'label', label: t('ad_label'), value: d.label }],
      (v) => api('PATCH', `/api/devices/${d.id}`, { label: v.label }), redraw) }, t('ad_rename'));
    view().replaceChildren(
      h('h2', {}, t('ad_devices')),
      listView('deviceList', [
        { label: t('school'), value: (d) => nameOf(schools, d.room.school_id) },
        { label: t('rp_classroom'), value: (d) => d.room.name },
        { label: t('ad_label'), value: (d) => d.label },
        { label: t('ad_issued_at'), value: (d) => msText(d.created_at) },
        // Last seen (issue 22 item 1): when the device last used its token, to the minute.
        { label: t('ad_last_seen'), value: (d) => h('span', { dataset: { lastSeen: d.last_seen_at ?? '' } }, d.last_seen_at ? msText(d.last_seen_at) : t('ad_never_seen')) },
        { label: t('status'), value: (d) => h('span', { dataset: { device: d.id, revoked: d.revoked_at ? '1' : '0' } }, d.revoked_at ? `${t('ad_revoked')} ${msText(d.revoked_at)}` : t('ad_active')) },
        { label: '', value: (d) => (d.revoked_at ? '' : h('span', { class: 'tile-actions' }, rename(d), reissue(d), confirmButton(t('revoke'), async () => {
          await api('DELETE', `/api/devices/${d.id}`);
          say(t('ad_revoked_done'));
          await redraw();
        }))) },
      ], devices, [
        { label: t('status'), options: [['0', t('ad_active')], ['1', t('ad_revoked')]], test: (d, v) => (d.revoked_at ? '1' : '0') === v },
        { label: t('school'), options: opts(schools), test: (d, v) => String(d.room.school_id) === v },
      ]),
      editor(),
      issued,
      h('h3', {}, t('issue_token')),
      form([
        { name: 'classroom', label: t('rp_classroom'), options: opts(shown) },
        { name: 'label', label: t('ad_label'), value: '讲台电脑' },
      ], t('issue_token'), async (v) => {
        const c = rooms.find((x) => String(x.id) === v.classroom);
        const box = await issue(c, v.label);
        say(t('ad_added'));
        await redraw();
        document.getElementById('issuedBox')?.replaceChildren(box);
      }));
  },

  async import() {
    importView();
  },
};

async function show() {
  const tab = (location.hash || '#lessons').slice(1).split('?')[0];
  handle.tab = tab;
  document.querySelectorAll('nav.tabs a').forEach((a) => a.classList.toggle('active', /** @type {HTMLAnchorElement} */ (a).hash === `#${tab}`));
  showError(null);
  try {
    await (TABS[tab] ?? TABS.lessons)();
    if (done) view().prepend(h('p', { class: 'ok', id: 'done' }, done));
    done = null;
  } catch (e) {
    handle.error = e;
    showError(e);
  }
  document.body.dataset.ready = tab;
}

async function main() {
  me = await api('GET', '/api/me');
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
