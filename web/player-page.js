// @ts-check
// The /player page: the recordings list (filtered by date) and one recording in the synced
// player, with its lesson's metadata and download links. Plain ES module, served as
// /player-page.js. Never builds a file URL itself: every link comes from the API.

import { api, header, h, t, showError } from '/app.js';
import { mountPlayer } from '/player.js';

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const params = new URLSearchParams(window.location.search);

function lessonLine(r) {
  const l = r.lesson;
  if (!l) return r.room;
  return [l.subject, l.grade, l.textbook, l.chapter, l.title].filter(Boolean).join(' · ');
}

function stateOf(r) {
  if (r.state === 'recording') return t('recording_on');
  return t(`pl_processing_${r.processing ?? 'none'}`);
}

async function list() {
  $('list').hidden = false;
  const load = async () => {
    const q = new URLSearchParams();
    if ($('from').value) q.set('from', $('from').value);
    if ($('to').value) q.set('to', $('to').value);
    const page = await api('GET', `/api/recordings?${q}`);
    $('recordings').querySelector('tbody').replaceChildren(...page.items.map((r) =>
      h('tr', { dataset: { id: r.id } },
        h('td', {}, h('a', { href: `/player?recording=${r.id}` }, r.started.slice(0, 16).replace('T', ' '))),
        h('td', {}, lessonLine(r)),
        h('td', {}, r.teacher?.name ?? ''),
        h('td', {}, r.school?.name ?? ''),
        h('td', {}, stateOf(r)))));
  };
  $('filter').addEventListener('submit', (e) => { e.preventDefault(); load().catch(showError); });
  await load();
}

async function watch(id) {
  $('watch').hidden = false;
  const rec = await api('GET', `/api/recordings/${id}`);
  $('title').textContent = lessonLine(rec);
  const paired = rec.paired_schools.map((s) => s.name).join('、');
  $('meta').textContent = [
    rec.started.slice(0, 16).replace('T', ' '),
    rec.teacher ? `${t('pl_teacher')}：${rec.teacher.name}` : '',
    rec.school ? `${t('pl_school')}：${rec.school.name}` : '',
    paired ? `${t('pl_paired')}：${paired}` : '',
  ].filter(Boolean).join(' · ');
  if (!rec.sources.length) {
    $('player').append(h('p', { class: 'muted' }, stateOf(rec)));
    /** @type {any} */ (window).classrelayPlayer = { ready: true, player: null };
    return;
  }
  const player = await mountPlayer($('player'), id);
  $('downloads').replaceChildren(h('span', {}, t('pl_download')), ...rec.sources.map((s) =>
    h('a', { href: s.download, download: s.file }, `${t(`pl_kind_${s.kind}`)} · ${s.owner}`)));
  await player.ready;
  player.root.focus();
  /** @type {any} */ (window).classrelayPlayer = { ready: true, player };
}

try {
  const me = await api('GET', '/api/me');
  await header(me);
  const rid = Number(params.get('recording'));
  const lid = Number(params.get('lesson'));
  if (rid > 0) await watch(rid);
  else if (lid > 0) {
    const page = await api('GET', `/api/recordings?lesson_id=${lid}`);
    const ready = page.items.find((r) => r.processing === 'ready');
    if (ready) await watch(ready.id);
    else { await list(); }
  } else await list();
  /** @type {any} */ (window).classrelayPlayer ??= { ready: true, player: null };
} catch (e) {
  showError(e);
}
