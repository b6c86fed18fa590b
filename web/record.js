// @ts-check
// The teacher record page (/record?teacher=ID&term=NAME): draws one teacher's term from
// GET /api/teachers/{id}/record — lessons, recordings, observation results with inline SVG
// charts (rubric-total trend, S-T types, FIAS ratios), micro-ability points with evidence
// and grades — with a link from every figure to what it came from. The teacher adds
// evidence here; admins and observers over the school grade it. Each observation and point
// drawn in a sampling inspection (抽检) shows its round, review state and outcome, and the
// teacher may appeal a decided one once. Never computes a figure or a rule itself (the
// server does, and says where each came from).

import { api, header, h, t, lang, showError } from '/app.js';
import { mountPlayer, clock } from '/player.js';

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const params = new URLSearchParams(window.location.search);
const SVG = 'http://www.w3.org/2000/svg';
let me = null;
let teacher = 0;
let term = '';
/** @type {any} */
let record = null; // the record as last drawn
/** @type {any} */
let clipPlayer = null; // the clip player, with the recording id it plays
let clipRec = 0;
/** @type {{ id: number, in_ms: number, out_ms: number } | null} */
let clip = null; // the evidence clip playing now: the player pauses at its out point
let picking = false; // the teacher is picking in/out points for new evidence
/** @type {number | null} */
let pickIn = null;
/** @type {number | null} */
let pickOut = null;
// What the clip player did (for the page's own tests): each clip's start and end, with where
// every source was on the lesson timeline.
/** @type {any[]} */
const clipLog = [];

/** An SVG element: s('rect', { x: 1 }, child, 'text'). */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) el.setAttribute(k, v);
  for (const c of children.flat()) {
    if (c == null) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const num = (v) => (v == null ? '–' : Number(v).toFixed(3));
const when = (ms) => (ms == null ? '–' : new Date(ms).toLocaleString(lang() === 'en' ? 'en-GB' : 'zh-CN', { dateStyle: 'short', timeStyle: 'short' }));
const obsUrl = (id) => `/observe?observation=${id}`;

/** Links to the lessons a figure came from. */
function lessonLinks(ids) {
  return h('span', { class: 'src' }, ...ids.map((id) => h('a', { href: `/lesson?id=${id}`, dataset: { lesson: id } }, `#${id}`)));
}

/** Links to the observations a figure came from. */
function obsLinks(ids) {
  return h('span', { class: 'src' }, ...ids.map((id) => h('a', { href: obsUrl(id), class: 'obsLink', dataset: { obs: id } }, `#${id}`)));
}

function drawTeaching(r) {
  const row = (key, f) => h('tr', { dataset: { role: key } },
    h('td', {}, t(`rec_role_${key}`)),
    h('td', {}, h('strong', {}, f.count), ' ', lessonLinks(f.lesson_ids)),
    h('td', {}, f.minutes),
    h('td', {}, ...f.modes.map((m) => h('div', {}, `${t(`rec_mode_${m.key}`)}: ${m.lessons} / ${m.minutes}′ `, lessonLinks(m.lesson_ids)))),
    h('td', {}, ...f.paired_schools.map((p) => h('div', {}, `${p.name ?? `#${p.key}`}: ${p.lessons} / ${p.minutes}′ `, lessonLinks(p.lesson_ids)))));
  $('teachingRows').replaceChildren(row('hub', r.teaching.hub), row('assisting', r.teaching.assisting));
  $('upcoming').replaceChildren(r.teaching.upcoming.length ? lessonLinks(r.teaching.upcoming) : t('rec_none'));
  $('lessonRows').replaceChildren(...r.teaching.lessons.map((l) => h('tr', {},
    h('td', {}, h('a', { href: l.url }, `#${l.id}`)), h('td', {}, when(l.starts_at)),
    h('td', {}, `${l.subject} · ${l.grade} · ${l.title}`), h('td', {}, t(`rec_mode_${l.mode}`)),
    h('td', {}, t(`rec_role_${l.role}`)), h('td', {}, `${l.minutes}′`))));
}

function drawRecordings(r) {
  $('recordingRows').replaceChildren(...(r.recordings.length ? r.recordings.map((x) => h('tr', {},
    h('td', {}, `#${x.id}`), h('td', {}, h('a', { href: x.lesson_url }, `${t('obs_lesson')} #${x.lesson_id}`)),
    h('td', {}, when(x.started_at)), h('td', {}, t(`rec_rec_${x.state}`)),
    h('td', {}, x.processing ? t(`rec_proc_${x.processing}`) : ''),
    // Its exports (晒课): preset and state, newest first.
    h('td', { class: 'exports', title: t('rec_exports') }, x.exports.map((j) => `${t(`rec_exp_${j.preset}`)} · ${t(`rec_exp_${j.state}`)}`).join('；')))) : [h('tr', {}, h('td', {}, t('rec_none')))]));
}

/** The rubric totals in lesson order, each point a link to its observation. */
function rubricChart(results) {
  const pts = results.filter((o) => o.rubric && o.rubric.band);
  const W = 320, H = 180, L = 30, B = 20, T = 10;
  const x = (i) => L + (pts.length < 2 ? (W - L) / 2 : ((W - L - 15) * i) / (pts.length - 1) + 5);
  const y = (v) => T + (H - T - B) * (1 - v / 100);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': t('rec_chart_rubric') });
  for (const v of [0, 60, 75, 85, 100]) {
    svg.append(s('line', { x1: L, x2: W, y1: y(v), y2: y(v), stroke: '#ddd' }),
      s('text', { x: 2, y: y(v) + 4, 'font-size': 10 }, v));
  }
  if (pts.length > 1) svg.append(s('polyline', { points: pts.map((o, i) => `${x(i)},${y(o.rubric.total)}`).join(' '), fill: 'none', stroke: '#1d5c3a', 'stroke-width': 2 }));
  pts.forEach((o, i) => svg.append(s('a', { href: obsUrl(o.id) },
    s('circle', { cx: x(i), cy: y(o.rubric.total), r: 5, fill: '#1d5c3a', 'data-obs': o.id },
      s('title', {}, `#${o.id} ${o.rubric.total} ${o.rubric.band_name ?? ''}`)))));
  if (!pts.length) svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', fill: '#888' }, t('rec_none')));
  return svg;
}

/** How many S-T codings gave each lesson type. */
function stChart(tallies) {
  const types = ['practice', 'lecture', 'dialogue', 'mixed'];
  const count = Object.fromEntries(tallies.map((x) => [x.key, x]));
  const max = Math.max(1, ...tallies.map((x) => x.count));
  const W = 320, H = 180, B = 24, bw = 50;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': t('rec_chart_st') });
  types.forEach((k, i) => {
    const n = count[k]?.count ?? 0;
    const bh = ((H - B - 20) * n) / max;
    const x = 20 + i * 75;
    const bar = s('rect', { x, y: H - B - bh, width: bw, height: bh, fill: '#3b6fb6', 'data-type': k, 'data-count': n });
    svg.append(n && count[k].observation_ids.length === 1 ? s('a', { href: obsUrl(count[k].observation_ids[0]) }, bar) : bar,
      s('text', { x: x + bw / 2, y: H - B - bh - 4, 'text-anchor': 'middle', 'font-size': 12 }, n),
      s('text', { x: x + bw / 2, y: H - 6, 'text-anchor': 'middle', 'font-size': 11 }, t(`obs_type_${k}`)));
  });
  return svg;
}

/** Each FIAS coding's teacher talk / student talk / silence as a stacked bar. */
function fiasChart(results) {
  const rows = results.filter((o) => o.fias && o.fias.n > 0);
  const W = 320, H = 180, B = 20, L = 10;
  const bw = rows.length ? Math.min(40, (W - L * 2) / rows.length - 6) : 0;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': t('rec_chart_fias') });
  const colours = [['teacher_talk', '#3b6fb6'], ['student_talk', '#2e8b57'], ['silence', '#aaa']];
  rows.forEach((o, i) => {
    const x = L + i * (bw + 6);
    let top = H - B;
    const g = s('a', { href: obsUrl(o.id) });
    for (const [k, c] of colours) {
      const hgt = (H - B - 10) * (o.fias[k] ?? 0);
      top -= hgt;
      g.append(s('rect', { x, y: top, width: bw, height: hgt, fill: c }, s('title', {}, `#${o.id} ${t(`obs_${k}`)} ${num(o.fias[k])}`)));
    }
    svg.append(g, s('text', { x: x + bw / 2, y: H - 6, 'text-anchor': 'middle', 'font-size': 10 }, `#${o.id}`));
  });
  if (!rows.length) svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', fill: '#888' }, t('rec_none')));
  colours.forEach(([k, c], i) => svg.append(s('rect', { x: 200, y: 6 + i * 14, width: 10, height: 10, fill: c }),
    s('text', { x: 214, y: 15 + i * 14, 'font-size': 10 }, t(`obs_${k}`))));
  return svg;
}

function drawObservations(r) {
  const o = r.observations;
  const bandName = Object.fromEntries(o.results.filter((x) => x.rubric?.band).map((x) => [x.rubric.band, x.rubric.band_name]));
  const mean = (key, m) => h('span', { class: 'badge', dataset: { figure: key } }, `${t(key)}: ${num(m.mean)} `, obsLinks(m.observation_ids));
  $('summary').replaceChildren(
    mean('rec_mean_rubric', o.rubric_mean),
    ...o.rubric_bands.map((b) => h('span', { class: 'badge' }, `${bandName[b.key] ?? b.key}: ${b.count} `, obsLinks(b.observation_ids))),
    ...o.st_types.map((x) => h('span', { class: 'badge' }, `${t(`obs_type_${x.key}`)}: ${x.count} `, obsLinks(x.observation_ids))),
    mean('rec_mean_teacher_talk', o.fias_teacher_talk));
  $('chartRubric').replaceChildren(rubricChart(o.results));
  $('chartSt').replaceChildren(stChart(o.st_types));
  $('chartFias').replaceChildren(fiasChart(o.results));
  $('resultRows').replaceChildren(...o.results.map((x) => h('tr', { dataset: { obs: x.id } },
    h('td', {}, h('a', { href: x.url, class: 'obsLink', dataset: { obs: x.id } }, `#${x.id}`), ' ', h('span', { class: 'muted' }, t(`obs_state_${x.state}`))),
    h('td', {}, h('a', { href: x.lesson_url }, `#${x.lesson_id}`), ` ${when(x.lesson_starts_at)} ${x.lesson_title}`),
    h('td', {}, x.rubric ? `${x.rubric.total} ${x.rubric.band_name ?? ''}` : '–'),
    h('td', { class: 'stType' }, x.st?.type ? t(`obs_type_${x.st.type}`) : '–'),
    h('td', {}, num(x.st?.rt)), h('td', {}, num(x.st?.ch)),
    h('td', {}, num(x.fias?.teacher_talk)), h('td', {}, num(x.fias?.student_talk)), h('td', {}, num(x.fias?.silence)),
    h('td', { class: 'inspections' }, inspections(x.inspections)))));
}

/** Where each inspection that drew an item stands; the teacher's appeal button once decided. */
function inspections(list) {
  if (!list?.length) return h('span', { class: 'muted' }, t('rec_not_drawn'));
  const mine = me.kind === 'user' && me.role === 'teacher' && me.teacher_id === teacher;
  return h('span', {}, ...list.map((i) => h('div', { class: 'inspection', dataset: { sample: i.sample_id, state: i.state, outcome: i.outcome ?? '' } },
    `${t(`ins_level_${i.level}`)} 「${i.round_name}」 `,
    h('span', { class: `badge ins-${i.outcome ?? i.state}` }, i.outcome ? t(`ins_outcome_${i.outcome}`) : `${t('rec_ins_reviewing')} ${i.graded}/${i.reviews}`),
    i.disputed ? ` ${t('ins_disputed')}` : '',
    i.appealed ? ` ${t('rec_ins_appealed')}` : '',
    mine && i.may_appeal ? h('button', { type: 'button', class: 'appeal noprint', onclick: () => appeal(i.sample_id).catch(showError) }, t('rec_ins_appeal')) : null)));
}

async function appeal(sample) {
  const reason = window.prompt(t('rec_ins_reason'));
  if (!reason || !reason.trim()) return;
  await api('POST', '/api/inspections/appeals', { sample_id: sample, reason });
  await load();
}

async function grade(id, g) {
  await api('PUT', `/api/evidence/${id}/grade`, { grade: g || null });
  await load();
}

function drawAbilities(r) {
  const a = r.abilities;
  $('minimum').textContent = `${t('rec_min_points')} ${a.min_points} · ${t('rec_picked')} ${a.points.length} · ${a.meets_minimum ? t('rec_met') : t('rec_not_met')}`;
  const grader = me.kind === 'user' && (me.role === 'admin' || me.role === 'observer');
  const pname = (p) => (lang() === 'en' ? p.name_en : p.name);
  $('pointRows').replaceChildren(...a.points.map((p) => h('tr', { dataset: { point: p.code } },
    h('td', {}, h('strong', {}, p.code), ` ${pname(p)}`),
    h('td', {}, h('span', { class: `badge grade-${p.grade ?? p.status}` }, p.grade ? t(`rec_grade_${p.grade}`) : t(`rec_status_${p.status}`))),
    h('td', { class: 'inspections' }, inspections(p.inspections)),
    h('td', {}, ...p.evidence.map((e) => h('div', { dataset: { evidence: e.id } },
      `#${e.id} `,
      e.recording_id ? `${t('rec_recording')} #${e.recording_id} ${clock(e.in_ms)}–${clock(e.out_ms)} ` : '',
      e.recording_id ? h('button', { type: 'button', class: 'clipPlay secondary noprint', dataset: { evidence: e.id }, onclick: () => playClip(e).catch(showError) }, t('rec_play_clip')) : null,
      ' ',
      e.note ? `${e.note} ` : '',
      ...e.files.map((f) => h('a', { href: f.url, class: 'file' }, `${f.name} `)),
      h('span', { class: 'badge' }, e.grade ? t(`rec_grade_${e.grade}`) : t('rec_status_pending')),
      grader ? h('select', { class: 'noprint', onchange: (ev) => grade(e.id, ev.target.value).catch(showError) },
        h('option', { value: '' }, '–'),
        ...['excellent', 'pass', 'fail'].map((g) => h('option', { value: g, selected: e.grade === g }, t(`rec_grade_${g}`)))) : null))))));
}

/**
 * The clip player on recording `id` (mounted once per recording), shown.
 * @param {number} id
 */
async function playerFor(id) {
  $('clipCard').hidden = false;
  if (clipPlayer && clipRec === id) return clipPlayer;
  clip = null;
  // The one it replaces stops (its frame loop goes on, but only while playing does it move).
  clipPlayer?.pause();
  clipRec = id;
  clipPlayer = await mountPlayer($('clipPlayer'), id, { onTime: clipTime });
  await clipPlayer.ready;
  return clipPlayer;
}

// The lesson time moved: a clip stops at its out point (paused, then put exactly there).
function clipTime(/** @type {number} */ ms) {
  if (picking) drawPicks(ms);
  if (!clip || ms < clip.out_ms) return;
  const c = clip;
  clip = null;
  const p = clipPlayer;
  p.pause();
  const stoppedAt = p.time();
  p.seek(c.out_ms).then(() => {
    clipLog.push({ evidence: c.id, event: 'end', stopped_at: stoppedAt, time: p.time(), positions: p.positions() });
  });
}

/**
 * Plays evidence `e`'s clip: from its in point, pausing at its out point; the sources stay in
 * sync as the player keeps them.
 * @param {any} e
 */
async function playClip(e) {
  picking = false;
  $('clipPick').hidden = true;
  const p = await playerFor(e.recording_id);
  $('clipTitle').textContent = `${t('rec_clip')} #${e.id} · ${clock(e.in_ms)}–${clock(e.out_ms)}`;
  clip = null;
  p.pause();
  await p.seek(e.in_ms);
  clipLog.push({ evidence: e.id, event: 'start', time: p.time(), positions: p.positions() });
  clip = { id: e.id, in_ms: e.in_ms, out_ms: e.out_ms };
  p.play();
}

function drawPicks(/** @type {number} */ now) {
  $('inAt').textContent = pickIn == null ? '–' : clock(pickIn);
  $('outAt').textContent = pickOut == null ? '–' : clock(pickOut);
  $('inAt').dataset.ms = pickIn ?? '';
  $('outAt').dataset.ms = pickOut ?? '';
  $('clipPick').dataset.now = String(Math.round(now));
}

/** Picks the in (`which` = 'in') or out point at the player's time now. */
function setPoint(/** @type {'in' | 'out'} */ which) {
  if (!picking || !clipPlayer) return;
  const ms = Math.round(clipPlayer.time());
  if (which === 'in') pickIn = ms;
  else pickOut = ms;
  $('clipMsg').textContent = '';
  drawPicks(ms);
}

function draw(r) {
  record = r;
  $('teacherName').textContent = `${r.teacher.name}（${r.teacher.code}）`;
  $('schoolName').textContent = r.teacher.school_name;
  $('csv').href = `/api/teachers/${teacher}/record.csv?term=${encodeURIComponent(term)}`;
  drawTeaching(r);
  drawRecordings(r);
  drawObservations(r);
  drawAbilities(r);
}

async function load() {
  const r = await api('GET', `/api/teachers/${teacher}/record?term=${encodeURIComponent(term)}`);
  draw(r);
  return r;
}

async function evidenceForm() {
  const list = await api('GET', '/api/ability-points');
  $('evPoint').replaceChildren(...list.point.map((p) => h('option', { value: p.code }, `${p.code} ${lang() === 'en' ? p.name_en : p.name}`)));
  $('evidenceForm').hidden = false;
  // The clip comes from one of the teacher's processed recordings, its in and out points
  // picked on the player (buttons, or the keys I and O), never typed.
  const ready = record.recordings.filter((/** @type {any} */ x) => x.processing === 'ready');
  $('evRecording').replaceChildren(h('option', { value: '' }, t('rec_no_clip')),
    ...ready.map((/** @type {any} */ x) => h('option', { value: x.id }, `${t('rec_recording')} #${x.id} · ${when(x.started_at)}`)));
  $('evRecording').addEventListener('change', () => {
    pickIn = null;
    pickOut = null;
    clip = null;
    const id = Number($('evRecording').value);
    picking = id > 0;
    $('clipPick').hidden = !picking;
    if (!picking) {
      $('clipCard').hidden = true;
      clipPlayer?.pause();
      return;
    }
    $('clipTitle').textContent = t('rec_pick_title');
    playerFor(id).then((p) => drawPicks(p.time())).catch(showError);
  });
  $('setIn').addEventListener('click', () => setPoint('in'));
  $('setOut').addEventListener('click', () => setPoint('out'));
  document.addEventListener('keydown', (e) => {
    const tag = (/** @type {any} */ (e.target).tagName || '').toLowerCase();
    if (!picking || tag === 'input' || tag === 'select' || tag === 'textarea') return;
    if (e.key === 'i' || e.key === 'I') setPoint('in');
    else if (e.key === 'o' || e.key === 'O') setPoint('out');
    else return;
    e.preventDefault();
  });
  $('evidenceForm').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const body = { term, point: $('evPoint').value, note: $('evNote').value };
      if ($('evRecording').value) {
        if (pickIn == null || pickOut == null || pickOut <= pickIn) {
          $('clipMsg').textContent = t('rec_clip_needs_points');
          return;
        }
        body.recording_id = Number($('evRecording').value);
        body.in_ms = pickIn;
        body.out_ms = pickOut;
      }
      const ev = await api('POST', `/api/teachers/${teacher}/evidence`, body);
      const file = $('evFile').files[0];
      if (file) {
        const resp = await fetch(`/api/evidence/${ev.id}/files?name=${encodeURIComponent(file.name)}`, {
          method: 'POST', body: file, credentials: 'same-origin', headers: { 'Content-Type': 'application/octet-stream' },
        });
        if (!resp.ok) {
          const p = await resp.json().catch(() => ({}));
          throw { status: resp.status, title: p.title ?? resp.statusText, detail: p.detail ?? null };
        }
      }
      $('evidenceForm').reset();
      picking = false;
      pickIn = null;
      pickOut = null;
      $('clipPick').hidden = true;
      $('clipCard').hidden = true;
      clipPlayer?.pause();
      await load();
    } catch (err) {
      showError(err);
    }
  });
}

try {
  me = await api('GET', '/api/me');
  await header(me);
  teacher = Number(params.get('teacher')) || me.teacher_id || 0;
  if (!(teacher > 0)) throw { status: null, title: t('rec_no_teacher'), detail: null };
  const terms = await api('GET', '/api/terms');
  const today = new Date().toISOString().slice(0, 10);
  term = params.get('term') || (terms.find((x) => x.starts_on <= today && today <= x.ends_on) ?? terms[terms.length - 1])?.name || '';
  $('term').replaceChildren(...terms.map((x) => h('option', { value: x.name, selected: x.name === term }, x.name)));
  $('term').addEventListener('change', () => {
    const u = new URL(window.location.href);
    u.searchParams.set('term', $('term').value);
    window.location.assign(u.toString());
  });
  $('print').addEventListener('click', () => window.print());
  await load();
  if (me.kind === 'user' && me.role === 'teacher' && me.teacher_id === teacher) await evidenceForm();
  /** @type {any} */ (window).classrelayRecord = { ready: true, teacher, term, clipLog, player: () => clipPlayer };
} catch (e) {
  showError(e);
}
