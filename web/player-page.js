// @ts-check
// The /player page: the recordings list (filtered by date) and one recording in the synced
// player, with its lesson's metadata and download links. Plain ES module, served as
// /player-page.js. Never builds a file URL itself: every link comes from the API.

import { api, header, h, t, showError } from '/app.js';
import { mountPlayer, followProcessing, clock } from '/player.js';

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const params = new URLSearchParams(window.location.search);

function lessonLine(r) {
  const l = r.lesson;
  if (!l) return r.room;
  return [l.subject, l.grade, l.textbook, l.chapter, l.title].filter(Boolean).join(' · ');
}

function stateOf(r) {
  if (r.deleted_at) return t('pl_processing_deleted');
  if (r.state === 'recording') return t('recording_on');
  return t(`pl_processing_${r.processing ?? 'none'}`);
}

/** A state from `/api/recordings/{id}/events` in words. */
function processingText(p) {
  if (p === 'recording') return t('recording_on');
  if (p === 'waiting') return t('pl_processing_none');
  return t(`pl_processing_${p}`);
}

/** A lesson recorded in parts (a restart while it was live): each part, and the gaps. */
function drawParts(rec) {
  if (!rec.parts || rec.parts.length < 2) return;
  const items = [h('span', {}, t('pl_parts'))];
  rec.parts.forEach((p, i) => {
    if (p.gap_before_ms != null) {
      items.push(h('span', { class: 'muted', dataset: { gap: p.gap_before_ms } }, `${t('pl_gap_between')} ${clock(p.gap_before_ms)}`));
    }
    const name = `${t('pl_part')} ${i + 1}`;
    items.push(p.id === rec.id
      ? h('strong', { dataset: { part: p.id } }, name)
      : h('a', { href: `/player?recording=${p.id}`, dataset: { part: p.id } }, name));
  });
  $('parts').replaceChildren(...items);
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

/** One export job: preset, state, progress while it runs, the downloads once done, the
 *  reason if it failed. */
function exportJob(j) {
  const o = j.outcome;
  const file = (f) => `/api/recordings/${j.recording}/files/${encodeURIComponent(f)}?download=1`;
  return h('li', { dataset: { job: j.id, state: j.state, preset: j.preset } },
    h('strong', {}, t(`ex_${j.preset}`)), ' · ', h('span', { class: 'ex-state' }, t(`ex_state_${j.state}`)),
    (j.state === 'queued' || j.state === 'running')
      ? h('progress', { max: 1, value: j.progress, 'aria-label': t('ex_progress') }) : null,
    (j.state === 'running') ? ` ${Math.round(j.progress * 100)}%` : null,
    (j.state === 'done' && o) ? [' ',
      h('a', { href: file(o.file), download: o.file, class: 'ex-mp4' }, `${t('ex_mp4')} (${o.width}×${o.height})`), ' ',
      h('a', { href: file(o.thumbnail), download: o.thumbnail, class: 'ex-thumb' }, t('ex_thumb'))] : null,
    (j.state === 'failed') ? h('span', { class: 'bad ex-error' }, ` ${j.error ?? ''}`) : null);
}

/** Exports of this recording (its lesson's hub teacher or an admin over its school: others
 *  are refused the list, and see nothing): start one, follow its progress, download it. */
async function exportsBox(rec) {
  if (!rec.lesson) return;
  const url = `/api/lessons/${rec.lesson.id}/exports`;
  let list;
  try {
    list = await api('GET', url);
  } catch {
    return;
  }
  $('exports').hidden = false;
  // Job changes are pushed on the recording's event stream (`export` events), never polled;
  // the list is read once more each time the stream (re)connects, for what it missed.
  /** @type {Map<number, any>} */
  const jobs = new Map();
  const draw = () => {
    $('exportJobs').replaceChildren(...[...jobs.values()]
      .filter((j) => j.recording === rec.id).sort((a, b) => b.id - a.id).map(exportJob));
  };
  const take = (l) => { for (const j of l.jobs) jobs.set(j.id, j); draw(); };
  const open = () => [...jobs.values()].some((j) => j.recording === rec.id && (j.state === 'queued' || j.state === 'running'));
  /** @type {EventSource | null} */
  let es = null;
  let connected = false;
  const follow = () => {
    if (es) return;
    es = new EventSource(`/api/recordings/${rec.id}/events`);
    /** @type {any} */ (window).exportStreams = (/** @type {any} */ (window).exportStreams ?? 0) + 1;
    es.addEventListener('open', () => {
      // A reconnect (not the first connection): one fallback read of the list.
      if (connected) api('GET', url).then(take).catch(() => {});
      connected = true;
    });
    es.addEventListener('export', (e) => {
      const j = JSON.parse(/** @type {MessageEvent} */ (e).data);
      jobs.set(j.id, j);
      draw();
      // Nothing left to follow: the server ends the stream; do not let it reconnect.
      if (!open()) { es?.close(); es = null; connected = false; }
    });
  };
  const ask = ['showcase', 'premium', 'composite'].map((p) => h('button', {
    type: 'button',
    dataset: { preset: p },
    disabled: !list.available,
    onclick: async () => {
      try {
        const j = await api('POST', url, { preset: p, recording: rec.id });
        jobs.set(j.id, j);
        draw();
        follow();
      } catch (e) {
        showError(e);
      }
    },
  }, t(`ex_${p}`)));
  $('exportAsk').replaceChildren(...ask, list.available ? null : h('span', { class: 'muted' }, t('ex_unavailable')));
  take(list);
  if (open()) follow();
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
  drawParts(rec);
  if (!rec.sources.length) {
    const note = h('p', { class: 'muted', id: 'processing' }, stateOf(rec));
    $('player').replaceChildren(note);
    const state = { ready: true, player: null, processing: rec.processing ?? rec.state };
    /** @type {any} */ (window).classrelayPlayer = state;
    // Not playable yet: follow its processing and show it once ready, without a reload.
    if (!rec.deleted_at && rec.processing !== 'ready' && rec.processing !== 'failed') {
      followProcessing(id, (ev) => {
        note.textContent = processingText(ev.processing);
        state.processing = ev.processing;
      }, () => { watch(id).catch(showError); });
    }
    return;
  }
  const player = await mountPlayer($('player'), id);
  $('downloads').replaceChildren(h('span', {}, t('pl_download')), ...rec.sources.map((s) =>
    h('a', { href: s.download, download: s.file }, `${t(`pl_kind_${s.kind}`)} · ${s.owner}`)),
  // Every file plus the manifest in one zip (issue 20, recfin).
  h('a', { href: `/api/recordings/${rec.id}/download.zip`, download: `recording-${rec.id}.zip`, class: 'pl-zip' }, t('pl_zip')));
  await exportsBox(rec);
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
