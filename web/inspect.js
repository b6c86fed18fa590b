// @ts-check
// The sampling-inspection dashboard (/inspect, 抽检): round list and creation, a round's
// dashboard (seed, progress, disputes, pass rate per unit, samples), the draw, and a
// reviewer pool of an open round edited here (add or remove reviewers, the expert flag; the
// server refuses anyone who may not review blind), and a
// reviewer's blinded reviews with grading (a score for an observation; 优秀/合格/不合格 for
// an ability point, whose renamed files and clips are listed). Plain ES module, served as /inspect.js. Never
// decides a rule (the server draws, recuses, re-checks disputes) and never computes a figure
// the server did not send.

import { api, header, h, t, showError } from '/app.js';

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const params = new URLSearchParams(window.location.search);
const pct = (v) => (v == null ? '–' : `${(v * 100).toFixed(1)}%`);
const stratum = (s) => [t(`ins_stage_${s.stage}`), s.subject, t(`ins_kind_${s.school_kind}`), t(`ins_area_${s.area}`)].join(' · ');

async function roundList() {
  $('rounds').hidden = false;
  const regions = await api('GET', '/api/regions').catch(() => []);
  $('rRegion').replaceChildren(...regions.map((r) =>
    h('option', { value: r.id }, `${r.province} ${r.city} ${r.county}`)));
  const terms = await api('GET', '/api/terms').catch(() => []);
  $('rTerm').replaceChildren(...terms.map((x) => h('option', { value: x.name }, x.name)));
  const termShown = () => { $('rTerm').closest('label').hidden = $('rSource').value !== 'ability_point'; };
  $('rSource').addEventListener('change', termShown);
  termShown();
  const rounds = await api('GET', '/api/inspections/rounds');
  $('roundList').querySelector('tbody').replaceChildren(...rounds.map((r) =>
    h('tr', { dataset: { id: r.id } },
      h('td', {}, h('a', { href: `/inspect?round=${r.id}` }, r.name)),
      h('td', {}, t(`ins_level_${r.level}`)), h('td', {}, pct(r.ratio)),
      h('td', {}, String(r.seed)), h('td', {}, t(`ins_state_${r.state}`)))));
  $('newRound').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const body = { name: $('rName').value, level: $('rLevel').value, region_id: Number($('rRegion').value) };
      if ($('rSource').value === 'ability_point') {
        body.source = 'ability_point';
        body.term = $('rTerm').value;
      }
      if ($('rSeed').value !== '') body.seed = Number($('rSeed').value);
      const d = await api('POST', '/api/inspections/rounds', body);
      window.location.assign(`/inspect?round=${d.round.id}`);
    } catch (err) {
      showError(err);
    }
  });
}

/** The reviewer pool being edited: [{ user_id, display_name, expert }]. */
let pool = [];
let poolOpen = false;

function drawPool() {
  $('pool').querySelector('tbody').replaceChildren(...pool.map((m, i) =>
    h('tr', { dataset: { user: m.user_id } },
      h('td', {}, `${m.display_name} (#${m.user_id})`),
      h('td', {}, h('input', {
        type: 'checkbox', class: 'expert', checked: m.expert, disabled: !poolOpen,
        onchange: (e) => { pool[i].expert = e.target.checked; $('poolState').textContent = t('ins_pool_unsaved'); },
      })),
      h('td', {}, poolOpen ? h('button', {
        type: 'button', class: 'remove',
        onclick: () => { pool.splice(i, 1); $('poolState').textContent = t('ins_pool_unsaved'); drawPool(); },
      }, t('ins_remove')) : ''))));
  $('poolAdd').hidden = !poolOpen;
}

function drawRound(d) {
  const r = d.round;
  $('round').hidden = false;
  $('roundName').textContent = r.name;
  $('roundState').textContent = t(`ins_state_${r.state}`);
  $('roundState').dataset.state = r.state;
  $('roundLevel').textContent = t(`ins_level_${r.level}`);
  $('roundRatio').textContent = pct(r.ratio);
  $('roundSeed').textContent = String(r.seed);
  $('roundPopulation').textContent = r.population ?? '–';
  $('draw').hidden = r.state !== 'open';
  poolOpen = r.state === 'open';
  pool = d.reviewers.map((m) => ({ user_id: m.user_id, display_name: m.display_name, expert: m.expert }));
  drawPool();
  const p = d.progress;
  const row = (k, v) => h('tr', { dataset: { key: k } }, h('td', {}, t(`ins_p_${k}`)), h('td', {}, String(v)));
  $('progress').replaceChildren(...['samples', 'reviews', 'graded', 'unassigned', 'disputes', 'appeals', 'passed', 'failed', 'pending']
    .map((k) => row(k, p[k])));
  $('units').querySelector('tbody').replaceChildren(...d.units.map((u) =>
    h('tr', {}, h('td', {}, u.unit), h('td', {}, String(u.samples)), h('td', {}, String(u.decided)),
      h('td', {}, String(u.passed)), h('td', { class: 'rate' }, pct(u.pass_rate)))));
  $('samples').querySelector('tbody').replaceChildren(...d.samples.map((x) =>
    h('tr', { dataset: { outcome: x.outcome, disputed: x.disputed } },
      h('td', {}, x.pseudonym), h('td', {}, x.unit), h('td', {}, stratum(x.stratum)),
      h('td', {}, x.reviews.map((v) =>
        `${v.ordinal}. ${v.reviewer ?? t('ins_nobody')} (${t(`ins_reason_${v.reason}`)}) ${v.score ?? (v.grade ? t(`rec_grade_${v.grade}`) : '–')}`).join('；')),
      h('td', {}, t(`ins_outcome_${x.outcome}`) + (x.disputed ? ` · ${t('ins_disputed')}` : '')))));
}

async function round(id) {
  drawRound(await api('GET', `/api/inspections/rounds/${id}`));
  // Inspectors to pick from: an admin can list users; an inspector managing the round names
  // a reviewer by user id instead.
  const users = await api('GET', '/api/users', undefined, { noRedirect: true }).catch(() => null);
  if (Array.isArray(users)) {
    $('poolPick').hidden = false;
    $('poolId').hidden = true;
    $('poolPick').replaceChildren(...users.filter((u) => u.role === 'inspector' && !u.disabled)
      .map((u) => h('option', { value: u.id }, `${u.display_name} (${u.username})`)));
  }
  $('poolAdd').addEventListener('submit', (e) => {
    e.preventDefault();
    const picked = !$('poolPick').hidden;
    const idv = Number(picked ? $('poolPick').value : $('poolId').value);
    if (!(idv > 0) || pool.some((m) => m.user_id === idv)) return;
    const name = picked ? $('poolPick').selectedOptions[0]?.textContent ?? `#${idv}` : `#${idv}`;
    pool.push({ user_id: idv, display_name: name, expert: $('poolExpert').checked });
    $('poolId').value = '';
    $('poolState').textContent = t('ins_pool_unsaved');
    drawPool();
  });
  $('poolSave').addEventListener('click', async () => {
    try {
      await api('PUT', `/api/inspections/rounds/${id}/reviewers`,
        { reviewers: pool.map((m) => ({ user_id: m.user_id, expert: m.expert })) });
      drawRound(await api('GET', `/api/inspections/rounds/${id}`));
      $('poolState').textContent = t('ins_pool_saved');
    } catch (err) {
      showError(err);
    }
  });
  $('draw').addEventListener('click', async () => {
    try {
      drawRound(await api('POST', `/api/inspections/rounds/${id}/draw`));
    } catch (err) {
      showError(err);
    }
  });
}

async function reviews() {
  $('reviews').hidden = false;
  const list = await api('GET', '/api/inspections/reviews');
  const rows = [];
  for (const v of list) {
    const one = await api('GET', `/api/inspections/reviews/${v.id}`);
    const e = one.evidence;
    const facts = [];
    if (e?.st) facts.push(`S-T: Rt ${e.st.rt ?? '–'} Ch ${e.st.ch ?? '–'} ${e.st.type ? t(`obs_type_${e.st.type}`) : ''}`);
    if (e?.fias) facts.push(`FIAS: ${t('obs_teacher_talk')} ${e.fias.teacher_talk ?? '–'}`);
    if (e?.rubric) facts.push(`${t('obs_total')} ${e.rubric.total}`);
    // An ability point: its code and name, each item's clip points and renamed files.
    const pt = one.point;
    const files = [];
    if (pt) {
      facts.push(`${pt.code} ${pt.name}`);
      for (const it of pt.items) {
        if (it.clip) facts.push(`${t('ins_item')}${it.item}: ${Math.round(it.clip.in_ms / 1000)}s–${Math.round(it.clip.out_ms / 1000)}s`);
        for (const f of it.files) files.push(h('a', { href: f.url, class: 'file', target: '_blank' }, `${f.name} `));
      }
    }
    // The lesson's recording, blinded (by index, its Title blanked; no title card, so it
    // starts with the lesson); none when the lesson was not recorded.
    const media = await api('GET', `/api/inspections/reviews/${v.id}/media`).catch(() => []);
    const players = media.map((m) => h(m.kind === 'audio' ? 'audio' : 'video',
      { controls: true, preload: 'metadata', src: m.url, dataset: { kind: m.kind } }));
    const points = one.marks === 'grade';
    const input = points
      ? h('select', {}, h('option', { value: '' }, '–'),
        ...['excellent', 'pass', 'fail'].map((g) => h('option', { value: g, selected: v.grade === g }, t(`rec_grade_${g}`))))
      : h('input', { type: 'number', min: 0, max: 100, step: 0.5, value: v.score ?? '', size: 5 });
    const save = h('button', { type: 'button' }, t('ins_grade'));
    save.addEventListener('click', async () => {
      try {
        const body = points ? { grade: input.value } : { score: Number(input.value) };
        const r = await api('PUT', `/api/inspections/reviews/${v.id}`, body);
        save.textContent = `${t('ins_saved')} ${points ? t(`rec_grade_${r.grade}`) : r.score}`;
      } catch (err) {
        showError(err);
      }
    });
    rows.push(h('tr', { dataset: { review: v.id } }, h('td', {}, v.pseudonym), h('td', {}, stratum(v.stratum)),
      h('td', {}, t(`ins_reason_${v.reason}`)), h('td', {}, facts.join('；'), ...players, ...files), h('td', {}, input), h('td', {}, save)));
  }
  $('reviewList').querySelector('tbody').replaceChildren(...rows);
}

try {
  const me = await api('GET', '/api/me');
  await header(me);
  const id = Number(params.get('round'));
  if (id > 0) await round(id);
  else if (me.role === 'admin' || params.get('manage') === '1') await roundList();
  // An inspector's own reviews come first, alone on the page: the round list's names
  // (regions) stay off a reviewer's screen; managing is one link away.
  else if (me.role === 'inspector') await reviews();
  /** @type {any} */ (window).classrelayInspect = { ready: true };
} catch (e) {
  showError(e);
}
