// @ts-check
// The observer's workspace (/observe): lesson picker, keyboard S-T and FIAS coders, rubric
// form, comments at the current moment of the lesson, live figures and charts from the
// server, submission. Plain ES module, served as /observe.js. Never computes a figure itself
// and never sends a code out of order (one request at a time, in a queue).

import { api, header, h, t, tf, hhmm, showError, dateTimeText, lang } from '/app.js';
import { mountPlayer, followProcessing } from '/player.js';
import { problemText, PROBLEM_BASE } from '/lib/problems.js';

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const params = new URLSearchParams(window.location.search);
/** @type {any} */
let obs = null; // the observation as the server last returned it
let clockMs = 0; // the lesson timeline: ms since coding started (pausable)
let running = true;
let lastMethod = null; // which coder Backspace corrects
let queue = Promise.resolve(); // codes go out one request at a time, in order
let me = null; // the signed-in user (the draft button is its observer's)
let player = null; // the lesson's recording in the synced player, when it has one
/** @type {number | null} */
let draftPoll = null; // the next look at a pending or running draft job

// FIAS is coded every 3 s of the lesson (Flanders' own interval), whatever `interval_s` says.
const FIAS_EVERY_MS = 3000;

const fmt = (ms) => {
  const s = Math.floor(ms / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
};
const num = (v) => (v == null ? '–' : Number(v).toFixed(3));

function send(fn) {
  queue = queue.then(fn).catch(showError);
  return queue;
}

function drawFigures() {
  const row = (k, v) => h('tr', {}, h('td', {}, t(k)), h('td', {}, v));
  if (obs.st) {
    const s = obs.st;
    $('stCodes').textContent = obs.codes.st ?? '';
    $('stFigures').replaceChildren(
      row('obs_n', s.n), row('obs_n_t', s.n_t), row('obs_runs', s.runs),
      row('obs_rt', num(s.rt)), row('obs_ch', num(s.ch)),
      row('obs_type', s.type ? t(`obs_type_${s.type}`) : '–'));
    $('stFigures').dataset.n = s.n;
    $('stFigures').dataset.type = s.type ?? '';
  }
  if (obs.fias) {
    const f = obs.fias;
    $('fiasCodes').textContent = obs.codes.fias ?? '';
    $('fiasFigures').replaceChildren(
      row('obs_n', f.n), row('obs_teacher_talk', num(f.teacher_talk)),
      row('obs_student_talk', num(f.student_talk)), row('obs_silence', num(f.silence)),
      row('obs_id_ratio', num(f.indirect_direct)), row('obs_rid_ratio', num(f.revised_indirect_direct)),
      row('obs_steady', f.steady_state));
    $('fiasFigures').dataset.n = f.n;
  }
  const bust = `?v=${Date.now()}`;
  const base = `/api/observations/${obs.id}`;
  /** @type {[string, boolean, string][]} */
  const svgs = [['stSvg', !!obs.st, 'st.svg'], ['rtChSvg', !!obs.st, 'rt-ch.svg'], ['fiasSvg', !!obs.fias, 'fias.svg']];
  for (const [img, on, path] of svgs) {
    $(img).hidden = !on;
    if (on) $(img).src = `${base}/${path}${bust}`;
  }
}

function drawRubric() {
  const r = obs.rubric;
  $('rubricCard').hidden = !r;
  if (!r) return;
  $('rubricName').textContent = `${r.name} (v${r.version})`;
  const given = Object.fromEntries((r.scores ?? []).map((s) => [s.item, s]));
  if (!$('rubricItems').children.length) {
    $('rubricItems').replaceChildren(...r.items.map((it) =>
      h('tr', {},
        h('td', {}, h('strong', {}, it.name), h('div', { class: 'muted' }, it.criteria)),
        h('td', {}, h('input', { type: 'number', min: 0, max: it.weight, step: '0.5', name: it.key, dataset: { item: it.key }, value: given[it.key]?.score ?? '' }), ` / ${it.weight}`),
        h('td', {}, h('input', { name: `${it.key}_comment`, dataset: { comment: it.key }, value: given[it.key]?.comment ?? '', placeholder: t('obs_item_comment') })))));
  }
  $('rubricTotal').textContent = r.total;
  $('rubricBand').textContent = r.band_name ?? '';
}

function drawComments() {
  // With a recording, a comment's time is a button that seeks it to that moment.
  $('comments').replaceChildren(...obs.comments.map((c) =>
    h('li', { dataset: { at: c.at_ms } },
      player
        ? h('button', { type: 'button', class: 'link seek', onclick: () => player.seek(c.at_ms) }, h('strong', {}, fmt(c.at_ms)))
        : h('strong', {}, fmt(c.at_ms)),
      ' ', c.body)));
}

/** The newest processed recording of the observed lesson in the player, or null. */
async function recordingOf(lessonId) {
  const page = await api('GET', `/api/recordings?lesson_id=${lessonId}`).catch(() => null);
  const rec = page?.items.find((r) => r.processing === 'ready');
  if (!rec) {
    // Still recording or processing: the player appears once it is ready, without a reload.
    const coming = page?.items.find((r) => r.processing !== 'failed');
    if (coming) {
      followProcessing(coming.id, () => {}, () => {
        recordingOf(lessonId).then((p) => { if (p) { player = p; drawComments(); } }).catch(() => {});
      });
    }
    return null;
  }
  $('recordingCard').hidden = false;
  const p = await mountPlayer($('recordingPlayer'), rec.id);
  await p.ready;
  return p;
}

function draw() {
  $('obsId').textContent = obs.id;
  $('state').textContent = t(`obs_state_${obs.state}`);
  $('state').dataset.state = obs.state;
  $('lessonName').textContent = [obs.lesson.subject, obs.lesson.grade, obs.lesson.title].filter(Boolean).join(' · ');
  // The lesson's page (its facts, recording and other observations), not the API's JSON.
  $('lessonName').href = `/lesson?id=${obs.lesson_id}`;
  $('stCoder').hidden = !obs.methods.includes('st');
  $('fiasCoder').hidden = !obs.methods.includes('fias');
  $('submit').disabled = obs.state !== 'draft';
  drawFigures();
  drawRubric();
  drawComments();
}

async function reload() {
  obs = await api('GET', `/api/observations/${obs.id}`);
  draw();
  if (obs.methods.includes('st')) drawDraft(await api('GET', `/api/observations/${obs.id}/st-draft`));
}

// The automatic S-T draft beside the observer's codes: sample by sample, with the samples
// where they differ marked (the comparison is the server's).
function drawDraft(d) {
  const mine = d.observer_codes ?? '';
  const mayWrite = obs.state === 'draft' && !(me && me.id !== obs.observer_id);
  $('draftMake').hidden = !mayWrite;
  drawDraftJob(d.job);
  // Adopting copies the draft into the observer's own (empty) codes, to correct from there.
  $('draftAdopt').hidden = !(mayWrite && d.made && mine === '' && d.codes !== '');
  $('draftAdopt').dataset.codes = d.codes;
  const table = $('draftTable');
  table.dataset.codes = d.codes;
  table.dataset.differs = d.comparison.disagree.join(',');
  if (!d.made) {
    $('draftStatus').textContent = t('obs_draft_none');
    table.querySelector('tbody').replaceChildren();
    return;
  }
  const c = d.comparison;
  $('draftStatus').textContent = `${t('obs_draft_from')} #${d.recording_id} · ${t('obs_draft_agree')} ${c.agree}/${c.compared}`
    + (c.disagree.length ? ` · ${c.disagree.length} ${t('obs_draft_differs')}` : '');
  const differs = new Set(c.disagree);
  const cell = (i, v) => h('td', differs.has(i) ? { class: 'differs' } : {}, v);
  table.querySelector('tbody').replaceChildren(
    h('tr', {}, h('th', {}, t('obs_draft_at')), ...d.samples.map((s) => h('td', {}, fmt(s.at_ms)))),
    h('tr', {}, h('th', {}, t('obs_draft_row')), ...d.samples.map((s, i) => cell(i, s.code))),
    h('tr', {}, h('th', {}, t('obs_draft_mine')), ...d.samples.map((_, i) => cell(i, mine[i] ?? ''))),
    h('tr', {}, h('th', {}, t('obs_draft_teacher_voice')), ...d.samples.map((s) => h('td', { class: 'muted' }, s.teacher_voiced))));
}

// The draft is made by a background job on the server: its state (waiting, listening with
// progress, done, or failed with the reason in the page's language), looked at again every
// second while it is waiting or running.
function drawDraftJob(job) {
  const el = $('draftJob');
  el.dataset.state = job?.state ?? '';
  el.hidden = !job;
  const busy = job?.state === 'pending' || job?.state === 'running';
  $('draftMake').disabled = busy;
  if (!job) return;
  if (job.state === 'pending') el.textContent = t('obs_draft_pending');
  else if (job.state === 'running') el.textContent = `${t('obs_draft_running')} ${Math.round(job.progress * 100)}%`;
  else if (job.state === 'done') el.textContent = t('obs_draft_done');
  else el.textContent = `${t('obs_draft_failed')}: ${problemText({ type: PROBLEM_BASE + (job.error_kind ?? ''), detail: job.error }, lang())}`;
  if (busy && draftPoll == null) {
    draftPoll = window.setTimeout(() => {
      draftPoll = null;
      send(async () => drawDraft(await api('GET', `/api/observations/${obs.id}/st-draft`)));
    }, 1000);
  }
}

function code(method, c) {
  lastMethod = method;
  // A key answers its own coder's prompt only (S-T at its interval, FIAS every 3 s).
  $(method === 'fias' ? 'fiasTick' : 'tick').classList.remove('due');
  return send(async () => {
    await api('POST', `/api/observations/${obs.id}/codes`, { method, codes: c });
    await reload();
  });
}

function undo() {
  if (!lastMethod) return null;
  const m = lastMethod;
  return send(async () => {
    await api('DELETE', `/api/observations/${obs.id}/codes?method=${m}&last=1`);
    await reload();
  });
}

function onKey(e) {
  if (!obs || obs.state !== 'draft') return;
  const tag = (e.target.tagName || '').toLowerCase();
  if (tag === 'input' || tag === 'textarea' || tag === 'select') return;
  const k = e.key;
  if (obs.methods.includes('st') && (k === 't' || k === 'T' || k === 's' || k === 'S')) {
    e.preventDefault();
    code('st', k.toUpperCase());
  } else if (obs.methods.includes('fias') && /^[0-9]$/.test(k)) {
    e.preventDefault();
    code('fias', k);
  } else if (k === 'Backspace') {
    e.preventDefault();
    undo();
  }
}

async function workspace(id) {
  obs = { id };
  try {
    await reload();
  } catch (/** @type {any} */ e) {
    // Someone else's observation (403) or none at all (404): a page that says so.
    if (e?.status !== 403 && e?.status !== 404) throw e;
    $('notYours').hidden = false;
    $('notYours').dataset.status = String(e.status);
    $('notYoursText').textContent = tf(e.status === 403 ? 'obs_not_yours' : 'obs_not_found', { id });
    return;
  }
  $('work').hidden = false;
  player = await recordingOf(obs.lesson_id);
  if (player) drawComments();
  document.addEventListener('keydown', onKey);
  // The lesson clock, the S-T prompt at each interval and the FIAS prompt every 3 s.
  let last = Date.now();
  setInterval(() => {
    const now = Date.now();
    if (running || player) {
      const before = clockMs;
      // A recorded lesson: the lesson time is the recording's.
      if (player) clockMs = player.time();
      else clockMs += now - last;
      const every = (obs.interval_s || 30) * 1000;
      if (Math.floor(clockMs / every) > Math.floor(before / every)) $('tick').classList.add('due');
      if (obs.methods.includes('fias') && Math.floor(clockMs / FIAS_EVERY_MS) > Math.floor(before / FIAS_EVERY_MS)) {
        $('fiasTick').classList.add('due');
      }
    }
    last = now;
    $('clock').textContent = fmt(clockMs);
  }, 250);
  $('pause').addEventListener('click', () => {
    running = !running;
    $('pause').textContent = t(running ? 'obs_pause' : 'obs_resume');
  });
  $('commentForm').addEventListener('submit', (e) => {
    e.preventDefault();
    const body = $('comment').value.trim();
    if (!body) return;
    const at = Math.floor(clockMs);
    send(async () => {
      await api('POST', `/api/observations/${obs.id}/comments`, { at_ms: at, body });
      $('comment').value = '';
      await reload();
    });
  });
  $('rubricForm').addEventListener('submit', (e) => {
    e.preventDefault();
    const scores = [.../** @type {NodeListOf<HTMLInputElement>} */ (document.querySelectorAll('#rubricItems input[data-item]'))]
      .filter((i) => i.value !== '')
      .map((i) => ({ item: i.dataset.item, score: Number(i.value), comment: /** @type {HTMLInputElement} */ (document.querySelector(`input[data-comment="${i.dataset.item}"]`)).value }));
    send(async () => {
      await api('PUT', `/api/observations/${obs.id}/scores`, { scores });
      await reload();
    });
  });
  $('draftMake').addEventListener('click', () => send(async () => {
    drawDraft(await api('POST', `/api/observations/${obs.id}/st-draft`));
  }));
  $('draftAdopt').addEventListener('click', () => send(async () => {
    lastMethod = 'st';
    await api('POST', `/api/observations/${obs.id}/codes`, { method: 'st', codes: $('draftAdopt').dataset.codes });
    await reload();
  }));
  $('submit').addEventListener('click', () => send(async () => {
    await api('POST', `/api/observations/${obs.id}/submit`);
    await reload();
  }));
  const focus = obs.methods.includes('st') ? $('stCoder') : $('fiasCoder');
  focus.focus();
}

async function picker() {
  $('picker').hidden = false;
  // The form's handler first: a click before the lists below arrive must not fall through
  // to the browser's own form submission (a reload of this page).
  $('open').addEventListener('submit', (e) => {
    e.preventDefault();
    const methods = ['rubric', 'st', 'fias'].filter((m) => $(`m_${m}`).checked);
    send(async () => {
      const o = await api('POST', '/api/observations', {
        lesson_id: Number($('lesson').value), methods, interval_s: Number($('interval').value),
      });
      window.location.assign(`/observe?observation=${o.id}`);
    });
  });
  const lessons = await api('GET', '/api/lessons');
  // A lesson by what people call it (date, subject, grade, title), never by its id.
  const named = (/** @type {any} */ l) => `${dateTimeText(l.starts)} ${[l.subject, l.grade, l.title].filter(Boolean).join(' · ')}`;
  const byId = new Map(lessons.map((l) => [l.id, l]));
  $('lesson').replaceChildren(...lessons.map((l) => h('option', { value: l.id }, named(l))));
  const mine = await api('GET', '/api/observations?mine=true');
  $('mine').querySelector('tbody').replaceChildren(...mine.map((o) =>
    h('tr', {}, h('td', {}, h('a', { href: `/observe?observation=${o.id}` }, `#${o.id}`)),
      h('td', {}, byId.has(o.lesson_id) ? named(byId.get(o.lesson_id)) : `${t('obs_lesson')} ${o.lesson_id}`), h('td', {}, o.methods.map((m) => t(`obs_m_${m}`)).join(' / ')),
      h('td', {}, t(`obs_state_${o.state}`)))));
}

try {
  me = await api('GET', '/api/me');
  await header(me);
  const id = Number(params.get('observation'));
  if (id > 0) await workspace(id);
  else await picker();
  window.classrelayObserve = { ready: true };
} catch (e) {
  showError(e);
}
