//! The /lesson page: one lesson read-only — title, time, mode, state, hub teacher and
//! classroom, paired classrooms (by name), its newest processed recording in the synced
//! player, links to its recordings and to the observations the caller may read, and its link
//! report per classroom (issue 19 item 6) with the CSV. Must never
//! change anything, never show an id where a name exists, and never show what the API refused
//! (a name it may not read is left out, not guessed).
// @ts-check

import { api, header, h, t, hhmm, modeLabel, showError, dateTimeText, lessonStateOf } from '/app.js';
import { mountPlayer } from '/player.js';

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const params = new URLSearchParams(window.location.search);

/** The name of `path`'s object, or '' when this caller may not read it. */
async function nameOf(/** @type {string} */ path) {
  const v = await api('GET', path).catch(() => null);
  return v?.name ?? '';
}

/** A classroom as "school · classroom" (whatever of it the caller may read). */
async function classroomName(/** @type {number} */ id) {
  const c = await api('GET', `/api/classrooms/${id}`).catch(() => null);
  if (!c) return '';
  const school = c.school_id ? await nameOf(`/api/schools/${c.school_id}`) : '';
  return [school, c.name].filter(Boolean).join(' · ');
}

/** The lesson's link report: one row per classroom (names, never part ids where a name exists). */
function showLinks(/** @type {number} */ id, /** @type {any[]} */ rows) {
  $('linkCsv').href = `/api/lessons/${id}/link-report.csv`;
  const v = (/** @type {any} */ x, /** @type {string} */ unit = '') => (x == null ? '—' : `${x}${unit}`);
  const pct = (/** @type {number} */ x) => `${Math.round(x * 100)}%`;
  const cols = ['link_col_name', 'link_col_school', 'link_col_minutes', 'link_col_kbps', 'link_col_loss', 'link_col_rtt',
    'link_col_jitter', 'link_col_layers', 'link_col_fps', 'link_col_freezes', 'link_col_conceal', 'link_col_grade'];
  const body = rows.map((r) => h('tr', { dataset: { part: r.part } },
    ...[r.name, r.school, v(r.minutes), v(r.kbps), v(r.loss_pct, '%'), v(r.rtt_ms, ' ms'), v(r.jitter_ms, ' ms'),
      [r.layers.high, r.layers.mid, r.layers.low, r.layers.audio_only].map(pct).join(' / '),
      v(r.fps), r.freezes == null ? '—' : `${r.freezes}（${v(r.freeze_pct, '%')}）`, v(r.concealment_pct, '%'),
      t(`quality_${r.grade}`)].map((c) => h('td', {}, c))));
  $('linkTable').replaceChildren(
    h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', {}, t(c))))),
    h('tbody', {}, ...(body.length ? body : [h('tr', {}, h('td', { class: 'muted', colspan: cols.length }, t('link_report_none')))])));
}

async function show(/** @type {number} */ id) {
  const l = await api('GET', `/api/lessons/${id}`);
  $('lesson').hidden = false;
  $('lesson').dataset.lesson = String(l.id);
  $('title').textContent = [l.subject, l.grade, l.title].filter(Boolean).join(' · ');
  $('time').textContent = `${dateTimeText(l.starts)}–${hhmm(l.ends)}`;
  $('mode').textContent = modeLabel(l.mode);
  $('state').textContent = t(`state_${lessonStateOf(l)}`);
  $('state').dataset.state = lessonStateOf(l);
  $('teacher').textContent = (await nameOf(`/api/teachers/${l.hub_teacher_id}`)) || t('ls_unknown');
  $('hub').textContent = (await classroomName(l.hub_classroom_id)) || t('ls_unknown');
  const sites = [];
  for (const s of l.sites ?? []) {
    const room = (await classroomName(s.classroom_id)) || t('ls_unknown');
    const helper = s.assisting_teacher_id ? await nameOf(`/api/teachers/${s.assisting_teacher_id}`) : '';
    sites.push(h('div', { dataset: { classroom: s.classroom_id } }, helper ? `${room}（${t('ls_assistant')}：${helper}）` : room));
  }
  $('sites').replaceChildren(...(sites.length ? sites : [t('rec_none')]));

  // Recordings: the newest processed one plays here; each opens in the player page.
  // A list the caller may not read (an inspector outside a round, a classroom device) is
  // left out rather than shown empty.
  const recPage = await api('GET', `/api/recordings?lesson_id=${l.id}`).catch(() => null);
  const recs = recPage?.items ?? [];
  $('recordingList').hidden = !recPage;
  $('recordings').replaceChildren(...(recs.length
    ? recs.map((/** @type {any} */ r) => h('li', {}, h('a', { href: `/player?recording=${r.id}`, dataset: { recording: r.id } },
      `${dateTimeText(r.started)} · ${r.state === 'recording' ? t('recording_on') : t(`pl_processing_${r.processing ?? 'none'}`)}`)))
    : [h('li', { class: 'muted' }, t('ls_no_recording'))]));
  const ready = recs.filter((/** @type {any} */ r) => r.processing === 'ready').pop();
  if (ready) {
    $('recordingCard').hidden = false;
    const p = await mountPlayer($('player'), ready.id);
    await p.ready;
  }

  // Its link report per classroom (issue 19 item 6), for the people who may read it.
  const links = await api('GET', `/api/lessons/${l.id}/link-report`).catch(() => null);
  $('linkReport').hidden = !links;
  if (links) showLinks(l.id, links.rows ?? []);

  // Observations of it this caller may read (the list is filtered by the server).
  const obsList = await api('GET', `/api/observations?lesson_id=${l.id}`).catch(() => null);
  const obs = obsList ?? [];
  $('observationList').hidden = !obsList;
  $('observations').replaceChildren(...(obs.length
    ? obs.map((/** @type {any} */ o) => h('li', {}, h('a', { href: `/observe?observation=${o.id}`, dataset: { obs: o.id } },
      `${t('obs_title')} #${o.id} · ${o.methods.map((/** @type {string} */ m) => t(`obs_m_${m}`)).join(' / ')} · ${t(`obs_state_${o.state}`)}`)))
    : [h('li', { class: 'muted' }, t('ls_no_observation'))]));
}

try {
  const me = await api('GET', '/api/me');
  await header(me);
  const id = Number(params.get('id'));
  if (id > 0) await show(id);
  else $('none').hidden = false;
  /** @type {any} */ (window).classrelayLesson = { ready: true };
} catch (e) {
  showError(e);
  /** @type {any} */ (window).classrelayLesson = { ready: true, failed: true };
}
