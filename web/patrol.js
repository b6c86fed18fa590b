//! The 巡课 patrol wall (/patrol) for inspectors and admins: every lesson open or live in the caller's scope as a small muted picture with its lesson, mode, state and each classroom's presence and link grade; a click watches one full size. It must never publish anything or join in a way that shows the watcher in a class's presence list (it uses the watch-only patrol token).
// @ts-check

import { api, header, h, t, tf, hhmm, modeLabel, showError, Link, linkBadge } from '/app.js';

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));

/**
 * One tile per lesson id: its element, caption and media link.
 * @type {Map<number, { el: HTMLElement, caption: HTMLElement, badge: HTMLElement, video: HTMLVideoElement, stream: MediaStream, link: any, lesson: any }>}
 */
const tiles = new Map();
let focused = null;
const handle = {
  /** Lesson ids on the wall, in order. */
  lessons: () => [...tiles.keys()],
  /** A tile's media stats (frames decoded, bytes) for tests. */
  stats: async (/** @type {number} */ id) => (tiles.get(id)?.link ? tiles.get(id).link.stats() : null),
  focused: () => focused,
  /** The classrooms shown beside the full-size view (ids, hub first excluded). */
  focusRooms: () => [...focusLinks.keys()],
  /** One of those classrooms' media stats. */
  focusStats: async (/** @type {number} */ id) => (focusLinks.get(id)?.link ? focusLinks.get(id).link.stats() : null),
  refreshed: 0,
};
/**
 * The full-size view's classroom cameras (issue 22 item 7): one watch-only link per site of
 * the focused lesson, each following that classroom (`c:<id>`), closed with the view.
 * @type {Map<number, { link: any, el: HTMLElement }>}
 */
const focusLinks = new Map();
/** @type {any} */ (window).classrelay = handle;

const describe = (l) => [l.subject, l.grade, l.title].filter(Boolean).join(' · ');

function caption(l) {
  return [
    h('span', { class: 'name' }, describe(l)),
    h('span', {}, `${hhmm(l.starts)}–${hhmm(l.ends)}`),
    h('span', { class: 'badge' }, modeLabel(l.mode)),
    h('span', { class: `badge state-${l.state}` }, t(`state_${l.state}`)),
    l.teacher ? h('span', {}, l.teacher) : null,
    h('ul', { class: 'patrol-rooms' }, l.classrooms.map((c, i) =>
      h('li', { dataset: { classroom: c.classroom_id, present: c.present ? '1' : '0' } },
        `${i === 0 ? `${t('hub')} ` : ''}${c.school} ${c.classroom} `,
        h('span', { class: `badge ${c.present ? 'link-connected' : ''}` }, t(c.present ? 'pt_present' : 'pt_absent')),
        c.grade ? h('span', { class: `badge q-${c.grade}` }, t(`quality_${c.grade}`)) : null))),
  ];
}

function addTile(l) {
  const stream = new MediaStream();
  const video = /** @type {HTMLVideoElement} */ (h('video', { autoplay: true, playsinline: true, muted: true }));
  video.muted = true;
  video.srcObject = stream;
  const badge = h('span', {}, linkBadge('connecting'));
  const cap = h('figcaption', {}, caption(l));
  const el = h('figure', { class: 'tile patrol-tile', dataset: { lesson: l.id }, title: t('pt_click') }, video, badge, cap);
  const tile = { el, caption: cap, badge, video, stream, link: null, lesson: l };
  el.addEventListener('click', () => focus(l.id));
  tile.link = new Link({
    name: `patrol-${l.id}`,
    kind: 'whep',
    session: async () => {
      const j = await api('POST', `/api/lessons/${l.id}/patrol`);
      return { url: `${j.whep}?source=hub`, token: j.token };
    },
    setup: async (pc) => {
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
    },
    onTrack: (ev, link) => {
      const i = link.pc.getTransceivers().indexOf(ev.transceiver);
      // The hub's sound and camera (the courseware is left to the full-size view's camera).
      if (i > 1) return;
      for (const old of stream.getTracks().filter((x) => x.kind === ev.track.kind)) stream.removeTrack(old);
      stream.addTrack(ev.track);
      video.play().catch(() => {});
    },
    onState: (s) => badge.replaceChildren(linkBadge(s)),
  });
  tiles.set(l.id, tile);
  $('wall').append(el);
}

function focus(id) {
  const tile = tiles.get(id);
  if (!tile) return;
  focused = id;
  $('focusTitle').textContent = `${describe(tile.lesson)} · ${modeLabel(tile.lesson.mode)}`;
  const v = $('focusVideo');
  v.srcObject = tile.stream;
  v.muted = true;
  $('focusSound').textContent = t('pt_sound_on');
  v.play().catch(() => {});
  $('focus').hidden = false;
  $('wall').hidden = true;
  showRooms(tile.lesson);
}

/**
 * The focused lesson's classrooms beside its hub picture, each muted, watch-only (the
 * patrol token: the watcher is nobody in the lesson) and uncounted.
 * @param {any} l
 */
function showRooms(l) {
  closeRooms();
  for (const c of l.classrooms.slice(1)) {
    const video = /** @type {HTMLVideoElement} */ (h('video', { autoplay: true, playsinline: true, muted: true }));
    video.muted = true;
    const stream = new MediaStream();
    video.srcObject = stream;
    const badge = h('span', {}, linkBadge('connecting'));
    const el = h('figure', { class: 'tile', dataset: { focusClassroom: c.classroom_id } }, video, badge,
      h('figcaption', {}, `${c.school} ${c.classroom} `,
        h('span', { class: `badge ${c.present ? 'link-connected' : ''}` }, t(c.present ? 'pt_present' : 'pt_absent'))));
    const link = new Link({
      name: `patrol-${l.id}-c${c.classroom_id}`,
      kind: 'whep',
      session: async () => {
        const j = await api('POST', `/api/lessons/${l.id}/patrol`);
        return { url: `${j.whep}?source=c:${c.classroom_id}`, token: j.token };
      },
      setup: async (pc) => {
        pc.addTransceiver('audio', { direction: 'recvonly' });
        pc.addTransceiver('video', { direction: 'recvonly' });
      },
      onTrack: (ev) => {
        // The picture only: the full-size view's sound is the hub's.
        if (ev.track.kind !== 'video') return;
        for (const old of stream.getVideoTracks()) stream.removeTrack(old);
        stream.addTrack(ev.track);
        video.play().catch(() => {});
      },
      onState: (st) => badge.replaceChildren(linkBadge(st)),
    });
    focusLinks.set(c.classroom_id, { link, el });
    $('focusRooms').append(el);
  }
}

function closeRooms() {
  for (const r of focusLinks.values()) {
    r.link.stop();
    r.el.remove();
  }
  focusLinks.clear();
}

function unfocus() {
  focused = null;
  closeRooms();
  $('focusVideo').srcObject = null;
  $('focus').hidden = true;
  $('wall').hidden = false;
}

async function refresh() {
  const lessons = await api('GET', '/api/patrol');
  const now = new Set(lessons.map((l) => l.id));
  for (const [id, tile] of tiles) {
    if (!now.has(id)) {
      tile.link?.stop();
      tile.el.remove();
      tiles.delete(id);
      if (focused === id) unfocus();
    }
  }
  for (const l of lessons) {
    const tile = tiles.get(l.id);
    if (tile) {
      tile.lesson = l;
      tile.caption.replaceChildren(...caption(l).filter(Boolean));
    } else {
      addTile(l);
    }
  }
  $('count').textContent = tf('pt_count', { n: lessons.length });
  if (!lessons.length) $('wall').replaceChildren(h('p', { class: 'notice' }, t('pt_none')));
  else $('wall').querySelector('p.notice')?.remove();
  handle.refreshed += 1;
  document.body.dataset.ready = 'patrol';
}

async function main() {
  const me = await api('GET', '/api/me');
  await header(me);
  if (me.role !== 'admin' && me.role !== 'inspector') {
    showError({ status: 403, type: 'urn:classrelay:problem:role-forbidden', title: 'Forbidden', detail: null });
    document.body.dataset.ready = 'patrol';
    return;
  }
  $('focusClose').addEventListener('click', unfocus);
  $('focusSound').addEventListener('click', () => {
    const v = $('focusVideo');
    v.muted = !v.muted;
    $('focusSound').textContent = t(v.muted ? 'pt_sound_on' : 'pt_sound_off');
  });
  await refresh();
  setInterval(() => refresh().catch(showError), 10_000);
}

main().catch((e) => {
  showError(e);
  document.body.dataset.ready = 'patrol';
});
