// @ts-check
// The synced recording player (issue 20 item 3): every source of a recorded lesson on one
// lesson timeline — the teacher camera large, courseware and classrooms beside it (click one to
// swap it into the large tile) — with one play button, a seek bar with thumbnails, and keys
// (Space/K play, ←/→ 5 s, J/L 10 s, Home/End, 0–9 a tenth each). Plain ES module, served as
// /player.js and used by /player and the observer's workspace. Never computes where a source
// sits on the timeline itself: `start_ms` and `duration_ms` come from the server's manifest.
// A lesson recorded in parts (a server restart while it was live) plays as one lesson: the
// manifest's `parts` place each part's sources on one timeline; a seek into a gap between
// parts says "not recorded (server restart)" and goes on at the next part.

import { api, h, t } from '/app.js';

/** "mm:ss" (or "h:mm:ss") of `ms`. */
export function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
}

const KIND_ORDER = { teacher_camera: 0, courseware: 1, classroom_camera: 2, audio: 3 };
// Further apart than this, a source is put back in place by a seek; closer, its playback rate
// pulls it in (a seek costs a stutter; a rate change does not).
const HARD_SYNC_S = 0.4;
const SOFT_SYNC_S = 0.008;
// How long the master source may take to start before the timeline runs on a wall clock.
const START_GRACE_MS = 1500;

/**
 * Mounts the player of recording `id` into `root`. Returns a handle:
 * `{ ready, seek(ms), play(), pause(), toggle(), time(), duration, positions(), sources }`.
 * `onTime(ms)` is called as the lesson time moves.
 */
export async function mountPlayer(root, id, { onTime = (/** @type {number} */ _ms) => {} } = {}) {
  const rec = await api('GET', `/api/recordings/${id}`);
  const manifest = rec.sources.length ? await api('GET', `/api/recordings/${id}/manifest`).catch(() => null) : null;
  /** @type {{ recording: number, start_ms: number, duration_ms: number, gap_before_ms: number | null }[]} */
  const parts = manifest?.parts ?? [];
  const offset = parts.find((p) => p.recording === id)?.start_ms ?? 0;
  const own = rec.sources.map((s) => ({ ...s, start_ms: s.start_ms + offset, part: id }));
  const all = [...own];
  // The other parts' sources, each on the lesson timeline (a part not processed has none).
  for (const p of parts) {
    if (p.recording === id) continue;
    const r = await api('GET', `/api/recordings/${p.recording}`).catch(() => null);
    for (const s of r?.sources ?? []) all.push({ ...s, start_ms: s.start_ms + p.start_ms, part: p.recording });
  }
  const multi = parts.length > 1;
  const order = (s) => (KIND_ORDER[s.kind] ?? 9) * 1e6 + (multi ? parts.findIndex((p) => p.recording === s.part) : 0);
  const sources = [...all].sort((a, b) => order(a) - order(b));
  const duration = multi
    ? Math.max(...parts.map((p) => p.start_ms + p.duration_ms), ...sources.map((s) => s.start_ms + s.duration_ms))
    : rec.duration_ms ?? Math.max(0, ...sources.map((s) => s.start_ms + s.duration_ms));
  // Between parts nothing was recorded (the server restarted).
  const restarts = parts.filter((p) => p.gap_before_ms).map((p) => ({ from: p.start_ms - (p.gap_before_ms ?? 0), to: p.start_ms }));
  const restartAt = (ms) => restarts.find((g) => ms >= g.from && ms < g.to);
  const partAt = (ms) => parts.find((p) => ms >= p.start_ms && ms < p.start_ms + p.duration_ms)?.recording;
  const main = h('div', { class: 'pl-main' });
  const side = h('div', { class: 'pl-side' });
  const playBtn = h('button', { type: 'button', class: 'pl-play', 'aria-label': t('pl_play') }, t('pl_play'));
  const timeEl = h('span', { class: 'pl-time' }, `${clock(0)} / ${clock(duration)}`);
  const bar = h('input', { type: 'range', class: 'pl-bar', min: 0, max: duration, step: 100, value: 0, 'aria-label': t('pl_seek') });
  const thumbs = h('div', { class: 'pl-thumbs' });
  // Losses from the manifest, marked where they sit on the timeline (issue 20 item 5).
  const gapsEl = h('div', { class: 'pl-gaps' });
  // The gaps between parts, marked on the timeline; and what a seek into one says.
  const restartsEl = h('div', { class: 'pl-gaps pl-restarts' }, ...restarts.map((g) => {
    const mark = h('button', { type: 'button', class: 'pl-restart', title: t('pl_restart_gap'), 'aria-label': t('pl_restart_gap'), dataset: { from: g.from, to: g.to } });
    mark.style.left = `${Math.min(100, (100 * g.from) / Math.max(1, duration))}%`;
    mark.style.width = `${Math.max(0.4, (100 * (g.to - g.from)) / Math.max(1, duration))}%`;
    return mark;
  }));
  const note = h('div', { class: 'pl-note', hidden: true, role: 'status' });
  const hint = h('div', { class: 'muted pl-keys' }, t('pl_keys'));
  const box = h('div', { class: 'player', tabindex: 0 },
    h('div', { class: 'pl-stage' }, main, side),
    note,
    h('div', { class: 'pl-controls' }, playBtn, h('div', { class: 'pl-track' }, thumbs, gapsEl, restartsEl, bar), timeEl),
    hint);
  for (const m of restartsEl.children) m.addEventListener('click', () => seek(Number(/** @type {any} */ (m).dataset.from)));
  root.replaceChildren(box);
  if (!sources.length) {
    main.append(h('p', { class: 'muted' }, t('pl_no_sources')));
    return { ready: Promise.resolve(), seek() {}, play() {}, pause() {}, toggle() {}, time: () => 0, duration, positions: () => [], sources };
  }

  const tiles = sources.map((s, i) => {
    // Another part's files load their metadata now, their pictures when the time gets there.
    const v = h('video', { preload: s.part === id ? 'auto' : 'metadata', playsinline: true, src: s.url, dataset: { kind: s.kind, file: s.file, part: s.part } });
    v.muted = i !== 0; // the teacher's sound; the others' at a click on their label
    const label = h('button', { type: 'button', class: 'pl-label link' }, `${t(`pl_kind_${s.kind}`)} · ${s.owner}`);
    const tile = h('figure', { class: 'pl-tile', dataset: { file: s.file } }, v, label);
    return { s, v, tile, label, running: false, stalledAt: 0, moved: 0, lastCt: -1 };
  });
  for (const x of tiles) {
    x.running = false;
    x.stalledAt = 0;
    x.moved = 0;
    x.lastCt = -1;
    x.v.addEventListener('playing', () => { x.running = true; });
    for (const ev of ['waiting', 'pause', 'seeking', 'emptied']) {
      x.v.addEventListener(ev, () => { x.running = false; x.moved = 0; x.stalledAt = performance.now(); });
    }
  }
  let big = tiles.find((x) => x.s.part === id) ?? tiles[0];
  // The part shown (a lesson in parts shows one part's pictures at a time).
  let shown = id;
  const layout = () => {
    const here = tiles.filter((x) => !multi || x.s.part === shown);
    main.replaceChildren(big.tile);
    side.replaceChildren(...here.filter((x) => x !== big).map((x) => x.tile));
    for (const x of tiles) x.tile.classList.toggle('pl-big', x === big);
    box.dataset.part = String(shown);
  };
  // The time moved into another part: its pictures, the same kind large.
  const showPart = (ms) => {
    const p = multi ? partAt(ms) : undefined;
    if (p === undefined || p === shown) return;
    shown = p;
    big = tiles.find((x) => x.s.part === p && x.s.kind === big.s.kind) ?? tiles.find((x) => x.s.part === p) ?? big;
    layout();
  };
  for (const x of tiles) {
    x.tile.addEventListener('click', (e) => {
      if (e.target === x.label) return;
      if (x !== big) { big = x; layout(); }
    });
    x.label.addEventListener('click', () => {
      x.v.muted = !x.v.muted;
      x.label.classList.toggle('pl-sound', !x.v.muted);
    });
    x.label.classList.toggle('pl-sound', !x.v.muted);
  }
  layout();

  const ready = Promise.all(tiles.filter((x) => x.s.part === id).map((x) => new Promise((resolve) => {
    if (x.v.readyState >= 1) resolve();
    else {
      x.v.addEventListener('loadedmetadata', resolve, { once: true });
      x.v.addEventListener('error', resolve, { once: true });
    }
  })));

  let playing = false;
  // The lesson time while paused (or before any source plays).
  let pausedAt = 0;
  // While no source covers the time, a wall clock carries the timeline.
  let wall = null;
  // When playback (re)started: the master starts first, the others follow it once it runs.
  let startAt = 0;

  const inside = (x, ms) => ms >= x.s.start_ms && ms < x.s.start_ms + x.s.duration_ms;
  const active = (ms) => tiles.filter((x) => inside(x, ms));
  const localS = (x, ms) => Math.max(0, (ms - x.s.start_ms) / 1000);
  // The master: the first active source in the tile order (teacher camera first).
  // Running: its `playing` event came after the last play, seek or stall (a video whose play()
  // was called but whose audio output has not started yet is not running).
  // and its clock has moved on three frames running (an audio clock starts in steps).
  const master = () => tiles.find((x) => x.running && x.moved >= 3 && !x.v.paused && !x.v.seeking && inside(x, x.v.currentTime * 1000 + x.s.start_ms));
  const starting = () => performance.now() - startAt < START_GRACE_MS && wall && active(wall.at).length > 0;
  const time = () => {
    if (!playing) return pausedAt;
    const m = master();
    if (m) return m.s.start_ms + m.v.currentTime * 1000;
    if (wall && starting()) return wall.at;
    if (wall) return Math.min(duration, wall.at + (performance.now() - wall.t0));
    return pausedAt;
  };

  function place(ms) {
    for (const x of tiles) {
      const on = inside(x, ms);
      x.tile.classList.toggle('pl-off', !on);
      const want = on ? localS(x, ms) : (ms < x.s.start_ms ? 0 : x.s.duration_ms / 1000);
      if (Math.abs(x.v.currentTime - want) > 0.001) x.v.currentTime = want;
      x.v.playbackRate = 1;
      x.v.pause();
    }
    // The master (the first source the time is inside) starts alone; `follow` starts the
    // others on its time once it runs, so a slow start (audio output) does not put it behind.
    const first = tiles.find((x) => inside(x, ms));
    startAt = performance.now();
    wall = { at: ms, t0: startAt };
    for (const x of tiles) x.stalledAt = startAt;
    if (playing && first) first.v.play().catch(() => {});
  }

  async function seek(ms) {
    ms = Math.max(0, Math.min(duration, Math.round(ms)));
    // Into a gap between parts: say so and go on at the next part.
    const gap = restartAt(ms);
    note.hidden = !gap;
    note.textContent = gap ? t('pl_not_recorded') : '';
    if (gap) ms = gap.to;
    showPart(ms);
    pausedAt = ms;
    wall = playing ? { at: ms, t0: performance.now() } : null;
    startAt = performance.now();
    const wasPlaying = playing;
    // Everything pauses, lands on the frame, then starts together.
    for (const x of tiles) x.v.pause();
    const landed = tiles.map((x) => new Promise((resolve) => {
      const want = inside(x, ms) ? localS(x, ms) : (ms < x.s.start_ms ? 0 : x.s.duration_ms / 1000);
      if (Math.abs(x.v.currentTime - want) <= 0.001 && !x.v.seeking) { resolve(); return; }
      x.v.addEventListener('seeked', resolve, { once: true });
      x.v.currentTime = want;
    }));
    await Promise.race([Promise.all(landed), new Promise((r) => setTimeout(r, 5000))]);
    if (wasPlaying && playing) place(ms);
    else for (const x of tiles) x.tile.classList.toggle('pl-off', !inside(x, ms));
    show(ms);
  }

  function play() {
    if (playing) return;
    if (pausedAt >= duration) pausedAt = 0;
    playing = true;
    place(pausedAt);
    playBtn.textContent = t('pl_pause');
  }

  function pause() {
    if (!playing) return;
    pausedAt = time();
    playing = false;
    wall = null;
    for (const x of tiles) x.v.pause();
    playBtn.textContent = t('pl_play');
    show(pausedAt);
  }

  const toggle = () => (playing ? pause() : play());

  function show(ms) {
    timeEl.textContent = `${clock(ms)} / ${clock(duration)}`;
    if (document.activeElement !== bar) bar.value = String(ms);
    box.dataset.time = String(Math.round(ms));
    onTime(ms);
  }

  let jumping = false;
  // Each frame: the others follow the master; sources start and stop as the time passes them.
  function follow() {
    for (const x of tiles) {
      const ct = x.v.currentTime;
      if (x.running && !x.v.paused && ct > x.lastCt) x.moved += 1;
      x.lastCt = ct;
    }
    if (playing && !jumping && restartAt(time())) {
      // Playing into a gap between parts: on at the next part.
      jumping = true;
      seek(time()).finally(() => { jumping = false; });
    }
    if (playing && !jumping) {
      const ms = time();
      showPart(ms);
      const m = master();
      if (m) wall = { at: ms, t0: performance.now() };
      // The lead (the first source the time is inside) starting or stalled: the others wait
      // for it (at most a few seconds; a broken lead does not stop the rest).
      const lead = tiles.find((x) => inside(x, ms));
      const waiting = !m && lead && !lead.v.error && performance.now() - lead.stalledAt < 3000;
      for (const x of tiles) {
        const on = inside(x, ms);
        x.tile.classList.toggle('pl-off', !on);
        if (!on) {
          if (!x.v.paused) x.v.pause();
          continue;
        }
        if (x === m || x.v.seeking) continue;
        if (waiting && x === lead) {
          if (x.v.paused) x.v.play().catch(() => {});
          continue;
        }
        if (waiting) {
          if (!x.v.paused) x.v.pause();
          continue;
        }
        const want = localS(x, ms);
        const diff = x.v.currentTime - want;
        if (x.v.paused || Math.abs(diff) > HARD_SYNC_S) {
          x.v.currentTime = want;
          x.v.playbackRate = 1;
          x.v.play().catch(() => {});
        } else if (Math.abs(diff) > SOFT_SYNC_S) {
          // Pulled in within about a quarter of a second, never audibly fast or slow.
          x.v.playbackRate = Math.min(1.25, Math.max(0.75, 1 - diff * 4));
        } else if (x.v.playbackRate !== 1) {
          x.v.playbackRate = 1;
        }
      }
      if (ms >= duration) pause();
      else show(ms);
    }
    requestAnimationFrame(follow);
  }
  requestAnimationFrame(follow);

  playBtn.addEventListener('click', toggle);
  bar.addEventListener('input', () => seek(Number(bar.value)));
  box.addEventListener('keydown', (e) => {
    const tag = (e.target.tagName || '').toLowerCase();
    if (tag === 'input' && e.target !== bar) return;
    const k = e.key;
    const step = { ArrowLeft: -5000, ArrowRight: 5000, j: -10000, J: -10000, l: 10000, L: 10000 }[k];
    if (k === ' ' || k === 'k' || k === 'K') toggle();
    else if (step) seek(time() + step);
    else if (k === 'Home') seek(0);
    else if (k === 'End') seek(duration);
    else if (/^[0-9]$/.test(k)) seek((duration * Number(k)) / 10);
    else return;
    // Handled here: the page's own keys (the observer's coders) do not see it.
    e.preventDefault();
    e.stopPropagation();
  });

  // Thumbnails: frames grabbed from the teacher camera's file in a hidden element, once loaded.
  ready.then(() => thumbnails(tiles[0].s, thumbs, duration)).catch(() => {});
  /** @type {{ at_ms: number, dur_ms: number, file: string }[]} */
  let gapList = [];
  const gapsLoaded = api('GET', `/api/recordings/${id}/manifest`)
    .then((m) => { gapList = drawGaps(m, gapsEl, duration, seek, offset); })
    .catch(() => {});

  const positions = () => tiles.map((x) => ({
    file: x.s.file, kind: x.s.kind, start_ms: x.s.start_ms, current: x.v.currentTime,
    timeline_ms: x.s.start_ms + x.v.currentTime * 1000, paused: x.v.paused, active: inside(x, time()),
    ready: x.v.readyState,
  }));
  // How far apart the sources playing now are on the timeline, ms (0 with one or none).
  const spread = () => {
    const at = positions().filter((p) => p.active).map((p) => p.timeline_ms);
    return at.length ? Math.max(...at) - Math.min(...at) : 0;
  };
  const gaps = () => gapList;
  const handle = { ready, seek, play, pause, toggle, time, duration, positions, spread, sources: own, allSources: sources, parts, restarts, gaps, gapsLoaded, root: box };
  box.player = handle;
  return handle;
}

async function thumbnails(src, strip, duration) {
  const n = Math.max(1, Math.min(12, Math.floor(duration / 10000) || 1));
  const v = document.createElement('video');
  v.muted = true;
  v.preload = 'auto';
  v.src = src.url;
  await new Promise((r) => { v.addEventListener('loadeddata', r, { once: true }); v.addEventListener('error', r, { once: true }); });
  const c = document.createElement('canvas');
  c.width = 96;
  c.height = 54;
  const ctx = c.getContext('2d');
  const imgs = [];
  for (let i = 0; i < n; i++) {
    const at = ((i + 0.5) * duration) / n;
    const local = Math.max(0, Math.min(src.duration_ms, at - src.start_ms)) / 1000;
    await new Promise((r) => { v.addEventListener('seeked', r, { once: true }); v.currentTime = local; });
    ctx.drawImage(v, 0, 0, c.width, c.height);
    imgs.push(h('img', { src: c.toDataURL('image/jpeg', 0.6), alt: clock(at), title: clock(at) }));
  }
  strip.replaceChildren(...imgs);
  v.removeAttribute('src');
  v.load();
}

/**
 * Marks every loss the manifest lists (each source's `gaps`, on the lesson timeline: `offset`
 * is where this part starts on it) on the strip under the thumbnails; a click on one seeks to
 * it. Returns what it drew.
 */
function drawGaps(manifest, strip, duration, seek, offset = 0) {
  const list = [];
  for (const s of manifest.sources ?? []) {
    for (const g of s.gaps ?? []) list.push({ at_ms: g.at_ms + offset, dur_ms: g.dur_ms, file: s.file });
  }
  list.sort((a, b) => a.at_ms - b.at_ms);
  const span = Math.max(1, duration);
  strip.replaceChildren(...list.map((g) => {
    const title = `${t('pl_gap')} ${clock(g.at_ms)}–${clock(g.at_ms + g.dur_ms)}`;
    const mark = h('button', { type: 'button', class: 'pl-gap', title, 'aria-label': title, dataset: { at: g.at_ms, dur: g.dur_ms } });
    mark.style.left = `${Math.min(100, (100 * g.at_ms) / span)}%`;
    mark.style.width = `${Math.max(0.4, (100 * g.dur_ms) / span)}%`;
    mark.addEventListener('click', () => seek(g.at_ms));
    return mark;
  }));
  return list;
}

/**
 * Follows recording `id`'s processing on `/api/recordings/{id}/events` (issue 20: a recording
 * becomes playable without a reload): `onState(ev)` for every state (`recording`, `waiting`,
 * `processing`, `ready`, `failed`, `deleted`), `onReady()` once it is playable. Returns a
 * function that stops following.
 */
export function followProcessing(id, onState, onReady = () => {}) {
  const es = new EventSource(`/api/recordings/${id}/events`);
  es.addEventListener('processing', (e) => {
    const ev = JSON.parse(/** @type {MessageEvent} */ (e).data);
    onState(ev);
    if (['ready', 'failed', 'deleted'].includes(ev.processing)) {
      es.close();
      if (ev.processing === 'ready') onReady();
    }
  });
  return () => es.close();
}
