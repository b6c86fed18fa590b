// @ts-check
// The classroom page (/classroom?lesson=N), and its kiosk form (/classroom?device=<token>, or
// no parameters once a device token is remembered): it finds the classroom's current lesson
// in the timetable and joins it with no clicks, then waits for the next one.
//
// Shows the hub full-screen (courseware large with the teacher's camera picture-in-picture,
// or side by side), publishes this class's camera and microphone when the lesson mode allows
// (名师课堂: only while the teacher grants it), shows the class on the big screen (同步课堂)
// and, in 名师课堂, the site that has the floor (seen and heard by every other site), has a
// raise-hand button, and reconnects by itself with the state on screen.
//
// The dark kiosk screen always says what is true, full-screen and readable: a revoked or
// unknown device, a lesson not open yet (with the local time it opens), the lesson ended,
// the next lesson; in a lesson, "waiting for the teacher" until the hub sends (never a black
// picture under "connected"); an "on air" cue while the class is heard; "muted" when the
// teacher muted it. The class's own preview sits in a column beside the courseware.
//
// Test/diagnostic parameters: &width=&height= for the camera, &audio=0, &relay=1 for relayed
// (TURN) ICE only.
//
// window.classrelay: state (the hub link), lessonState, lesson, mode, spotlight, speaker (the
// latest site granted the floor), speakers (every granted site followed, 名师课堂),
// publishing (the publish link's state or null), hand, muted, onAir, waitingForTeacher,
// screen ('lesson' | 'waiting' | 'ended' | 'blocked' | 'cancelled'), blocked ('revoked' | 'not_open' |
// 'error' | null), log, stats() -> { hub, spotlight, speaker, speakers: {id: stats}, publish },
// raiseHand(bool).

import { api, h, t, tf, lang, header, Link, LessonEvents, showError, linkBadge, modeLabel, deviceToken, statsOf, hhmm, reportLinkStats } from '/app.js';
import { problemKind, problemText } from '/lib/problems.js';
import { skew, lessonClock } from '/lib/clock.js';

const q = new URLSearchParams(location.search);
const num = (k, d) => {
  const v = Number.parseInt(q.get(k) ?? '', 10);
  return Number.isFinite(v) && v > 0 ? v : d;
};
const opts = { audio: q.get('audio') !== '0', width: num('width', 960), height: num('height', 540) };
const fixedLesson = Number.parseInt(q.get('lesson') ?? '', 10);
const kiosk = !Number.isFinite(fixedLesson);

const handle = {
  state: 'idle', lessonState: null, lesson: null, mode: null, spotlight: null, speaker: null, speakers: [], publishing: null,
  hand: false, muted: false, onAir: false, waitingForTeacher: false, handSeen: false, screen: 'lesson', blocked: null,
  log: [], error: null,
};
window.classrelay = handle;
const log = (line) => {
  handle.log.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
  const pre = document.getElementById('log');
  if (pre) pre.textContent = handle.log.slice(-200).join('\n');
};
const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));

function setBanner(state) {
  handle.state = state;
  const el = $('conn');
  el.replaceChildren(linkBadge(state));
  document.body.dataset.conn = state;
}

/**
 * One full-screen state at a time, or none (`lesson`: the stage). Out of a lesson, the header
 * keeps only the classroom's name: no old title, state or hand button.
 * @param {'lesson' | 'waiting' | 'ended' | 'blocked' | 'cancelled'} kind
 */
function showScreen(kind) {
  handle.screen = kind;
  document.body.dataset.screen = kind;
  $('waiting').hidden = kind !== 'waiting';
  $('ended').hidden = kind !== 'ended';
  $('cancelled').hidden = kind !== 'cancelled';
  $('blocked').hidden = kind !== 'blocked';
  if (kind !== 'blocked') handle.blocked = null;
  if (kind === 'lesson') {
    $('stage').hidden = false;
    return;
  }
  $('stage').hidden = true;
  for (const id of ['title', 'mode', 'lessonState', 'clock', 'conn']) $(id).textContent = '';
  for (const id of ['hand', 'onAir', 'mutedMark', 'handSeen', 'recMark', 'layout']) $(id).hidden = true;
}

/**
 * A refusal as a readable full-screen state: a revoked or unknown device, a lesson not open
 * yet (when it opens, local time), an ended lesson, or the problem's own sentence.
 * @param {any} p
 */
function showProblem(p) {
  const kind = problemKind(p);
  if (kind === 'lesson-ended') {
    showScreen('ended');
    return;
  }
  if (kind === 'lesson-cancelled') {
    // Called off (issue 22 item 4): its own dark state, never "ended" and never joined.
    showCancelled(null, null);
    return;
  }
  let which = 'error';
  let main = t('kiosk_error');
  let sub = problemText(p, lang());
  if (p?.status === 401) {
    which = 'revoked';
    main = t('kiosk_revoked');
    sub = t('kiosk_revoked_fix');
  } else if (kind === 'lesson-not-open') {
    which = 'not_open';
    main = t('kiosk_not_open');
    sub = tf('kiosk_opens_at', { time: hhmm(p.opens_at), start: hhmm(p.starts_at) });
  }
  handle.blocked = which;
  $('blocked').dataset.kind = which;
  $('blockedMain').textContent = main;
  $('blockedSub').textContent = sub;
  showError(null);
  showScreen('blocked');
}

/** Is the video on transceiver `index` of `link` getting new frames? (framesDecoded grew.) */
function frameWatcher(link, index) {
  let last = -1;
  return async () => {
    const pc = link.pc;
    const mid = pc?.getTransceivers()[index]?.mid;
    if (!pc || mid == null) return false;
    let n = 0;
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video' && r.mid === mid) n = r.framesDecoded ?? 0;
    });
    const moving = n > last && last >= 0;
    last = n;
    return moving;
  };
}

/**
 * A WHEP link that follows one source into a figure's video and audio elements (the `spot`
 * figure of the big screen by default, or one tile of the floor).
 */
function spotLink(name, source, freshJoin, video = $('spotVideo'), audio = $('spotAudio')) {
  return new Link({
    name,
    kind: 'whep',
    log,
    session: async () => {
      const j = await freshJoin();
      return { url: `${j.whep}?source=${source}`, token: j.token };
    },
    setup: async (pc) => {
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
    },
    onTrack: (ev) => {
      const el = ev.track.kind === 'video' ? video : audio;
      el.srcObject = new MediaStream([ev.track]);
      el.play().catch(() => {});
    },
  });
}

/** Runs one lesson on the page until it ends (resolves) or is refused (rejects). */
async function runLesson(lessonId, me) {
  showError(null);
  const lesson = await api('GET', `/api/lessons/${lessonId}`);
  let joined = await api('POST', `/api/lessons/${lessonId}/join`);
  const today = await api('GET', '/api/today').catch(() => null);
  const offset = today ? skew(today.now, Date.now()) : 0;
  const info = joined; // what this page may do; `joined` itself is handed to the first link
  Object.assign(handle, { lesson: lessonId, speaker: null, speakers: [], muted: false, handSeen: false, onAir: false });
  handle.mode = info.mode;
  document.body.dataset.mode = info.mode;
  showScreen('lesson');
  $('layout').hidden = false;
  $('title').textContent = `${lesson.subject} · ${lesson.grade}${lesson.title ? ` · ${lesson.title}` : ''} (${hhmm(lesson.starts)}–${hhmm(lesson.ends)})`;
  $('mode').textContent = modeLabel(info.mode);
  const ownClass = me.kind === 'device' ? me.classroom_id : null;
  const freshJoin = async () => {
    const j = joined ?? (await api('POST', `/api/lessons/${lessonId}/join`));
    joined = null;
    return j;
  };
  const links = [];
  const names = new Map();
  const nameOf = async (id) => {
    if (!names.has(id)) names.set(id, await api('GET', `/api/classrooms/${id}`).then((c) => c.name).catch(() => ''));
    return names.get(id);
  };

  // ---- the lesson clock ----------------------------------------------------------------
  const tick = () => {
    const c = lessonClock(Date.now() + offset, lesson.starts_at, lesson.ends_at);
    const key = c.phase === 'before' ? 'clock_before' : c.phase === 'over' ? 'clock_over' : 'clock_left';
    $('clock').textContent = `${tf('clock_ends', { end: hhmm(lesson.ends) })} · ${tf(key, { left: c.text, over: c.text })}`;
  };
  tick();
  const clockTimer = setInterval(tick, 1000);

  // ---- the hub: audio, camera, courseware -----------------------------------------------
  const hubAudio = $('hubAudio');
  const camera = $('hubCamera');
  const screen = $('hubScreen');
  const hub = new Link({
    name: 'hub',
    kind: 'whep',
    log,
    session: async () => {
      const j = await freshJoin();
      return { url: `${j.whep}?source=hub`, token: j.token };
    },
    setup: async (pc) => {
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
    },
    onTrack: (ev, link) => {
      const i = link.pc.getTransceivers().indexOf(ev.transceiver);
      const el = [hubAudio, camera, screen][i];
      if (!el) return;
      el.srcObject = new MediaStream([ev.track]);
      el.play().catch(() => {});
    },
    onState: (s) => setBanner(s),
  });
  links.push(hub);

  // "Waiting for the teacher" until the hub (its teacher or its classroom) sends.
  const hubParts = new Set([`t:${lesson.hub_teacher_id}`, `c:${info.hub_classroom_id}`]);
  const hubSending = new Set();
  const showWaiting = () => {
    handle.waitingForTeacher = hubSending.size === 0;
    $('waitTeacher').hidden = !handle.waitingForTeacher;
  };
  showWaiting();

  // Courseware large when it moves, the camera large otherwise.
  // (Read from the decoder's stats: a hidden <video> may not render frames at all.)
  const screenMoving = frameWatcher(hub, 2);
  const layoutTimer = setInterval(async () => {
    $('stage').classList.toggle('has-screen', await screenMoving().catch(() => false));
  }, 1000);
  $('layout').onclick = () => {
    $('stage').classList.toggle('side');
    $('layout').textContent = t($('stage').classList.contains('side') ? 'pip' : 'side_by_side');
  };

  // ---- the big screen (同步课堂) ---------------------------------------------------------
  let spot = null;
  if (info.mode === 'sync') {
    spot = spotLink('spotlight', 'spotlight', freshJoin);
    links.push(spot);
  }
  const showSpot = (classroom) => {
    handle.spotlight = classroom;
    // Our own class on the big screen: the others see us; we keep seeing the hub.
    $('spot').hidden = classroom == null || classroom === ownClass;
    if (classroom != null) {
      nameOf(classroom).then((n) => { $('spotName').textContent = `${t('big_screen')} · ${n}`; });
    }
  };
  if (info.mode === 'sync') showSpot(info.spotlight ?? null);

  // ---- the floor (名师课堂): every granted site, seen and heard by every other site ---------
  // One tile (and one WHEP link following `c:<id>`) per granted site but this one, in #floor;
  // `handle.speaker` is the latest granted, `handle.speakers` all of them in grant order.
  /** @type {Map<number, { link: any, fig: HTMLElement }>} */
  const followed = new Map();
  /** @type {any} */
  let speaker = null;
  let floor = [];
  const followFloor = async () => {
    if (info.mode !== 'master') return;
    const others = floor.filter((c) => c !== ownClass);
    for (const [c, f] of [...followed]) {
      if (others.includes(c)) continue;
      followed.delete(c);
      f.fig.remove();
      await f.link.stop();
    }
    for (const c of others) {
      if (followed.has(c)) continue;
      const video = /** @type {HTMLVideoElement} */ (h('video', { autoplay: true, playsinline: true, muted: true }));
      const audio = /** @type {HTMLAudioElement} */ (h('audio', { autoplay: true }));
      const caption = h('figcaption', {}, t('speaker_now'));
      const fig = h('figure', { class: 'spot', dataset: { classroom: c } }, video, audio, caption);
      $('floor').append(fig);
      nameOf(c).then((n) => { caption.textContent = `${t('speaker_now')} · ${n}`; });
      followed.set(c, { link: spotLink(`speaker-${c}`, `c:${c}`, freshJoin, video, audio), fig });
    }
    const latest = others.length ? others[others.length - 1] : null;
    handle.speaker = latest;
    handle.speakers = [...others];
    speaker = latest == null ? null : followed.get(latest)?.link ?? null;
    $('floor').hidden = followed.size === 0;
  };
  const setFloor = (classroom, granted) => {
    floor = floor.filter((c) => c !== classroom);
    if (granted) floor.push(classroom);
    followFloor().catch((e) => log(`speaker: ${e}`));
  };

  // ---- this class's camera and microphone --------------------------------------------------
  /** @type {MediaStream | null} */
  let local = null;
  let pub = null;
  const mayPublish = info.publish;
  const needsGrant = info.needs_speak_grant;
  const updateOnAir = () => {
    handle.onAir = Boolean(pub) && !handle.muted && handle.publishing === 'connected';
    $('onAir').hidden = !handle.onAir;
    $('stage').classList.toggle('on-air', handle.onAir);
  };
  const applyMute = (on) => {
    handle.muted = on;
    if (local) for (const tr of local.getAudioTracks()) tr.enabled = !on;
    $('mutedMark').hidden = !on;
    updateOnAir();
  };
  const startPublish = async () => {
    if (pub || !mayPublish) return;
    if (!local) {
      local = await navigator.mediaDevices.getUserMedia({
        audio: opts.audio,
        video: { width: { ideal: opts.width }, height: { ideal: opts.height }, frameRate: { ideal: 25 } },
      });
      $('self').srcObject = local;
    }
    applyMute(handle.muted);
    $('selfTile').hidden = false;
    pub = new Link({
      name: 'publish',
      kind: 'whip',
      log,
      session: async () => {
        const j = await freshJoin();
        return { url: j.whip, token: j.token };
      },
      setup: async (pc) => {
        const a = local.getAudioTracks()[0];
        if (a) pc.addTransceiver(a, { direction: 'sendonly', streams: [local] });
        else pc.addTransceiver('audio', { direction: 'inactive' });
        // One layer: a rural uplink is the narrow end; ~800 kbit/s is plenty for a class view.
        pc.addTransceiver(local.getVideoTracks()[0], { direction: 'sendonly', streams: [local], sendEncodings: [{ maxBitrate: 800_000 }] });
      },
      onState: (s) => {
        handle.publishing = s;
        $('selfState').replaceChildren(linkBadge(s));
        updateOnAir();
      },
    });
  };
  const stopPublish = async () => {
    if (!pub) return;
    const p = pub;
    pub = null;
    $('selfTile').hidden = true;
    updateOnAir();
    await p.stop();
    if (!pub) handle.publishing = null;
  };
  if (mayPublish && !needsGrant) await startPublish();

  // ---- hands, speak, mute, events ----------------------------------------------------------
  let seenTimer = null;
  const setHand = (raised, byTeacher = false) => {
    handle.hand = raised;
    $('hand').textContent = t(raised ? 'lower_hand' : 'raise_hand');
    $('hand').classList.toggle('raised', raised);
    if (byTeacher) {
      // The teacher lowered (acknowledged) it: say so for a while.
      handle.handSeen = true;
      $('handSeen').hidden = false;
      clearTimeout(seenTimer);
      seenTimer = setTimeout(() => { $('handSeen').hidden = true; }, 8000);
    }
  };
  setHand(false);
  $('hand').hidden = ownClass == null;
  handle.raiseHand = async (raised) => {
    await api('POST', `/api/lessons/${lessonId}/hand`, { raised });
    setHand(raised);
  };
  $('hand').onclick = () => handle.raiseHand(!handle.hand).catch(showError);

  /** @type {(reason?: any) => void} */
  let finish = () => {};
  let cancelled = false;
  /** @type {Promise<any>} */
  const done = new Promise((r) => { finish = r; });
  const setLessonState = (s) => {
    handle.lessonState = s;
    $('lessonState').textContent = t(`state_${s}`);
    $('lessonState').dataset.state = s;
    if (s === 'ended') finish();
  };
  setLessonState(info.state);
  const speakFor = async (speakers) => {
    if (!needsGrant || ownClass == null) return;
    if (speakers.includes(ownClass)) await startPublish();
    else await stopPublish();
  };
  // 录制中: shown while the lesson is recorded (the snapshot's `recording`, `recording` events).
  const showRecording = (on) => {
    handle.recording = Boolean(on);
    $('recMark').hidden = !on;
  };
  const sending = (part, on) => {
    if (!hubParts.has(part)) return;
    if (on) hubSending.add(part);
    else hubSending.delete(part);
    showWaiting();
  };
  const events = new LessonEvents(lessonId, (ev) => {
    const d = ev.data ?? {};
    // 弱网: the server paused this classroom's video for its line (audio goes on), or resumed it.
    if (ev.kind === 'weak_network' && ownClass != null && d.part === `c:${ownClass}`) {
      $('weakNet').hidden = !d.audio_only;
      $('weakNet').title = t('weak_audio_only_hint');
    }
    if (ev.kind === 'recording') {
      showRecording(d.state === 'recording');
    }
    if (ev.kind === 'resync') {
      const live = d.live ?? {};
      showRecording(live.recording);
      if (info.mode === 'sync') showSpot(live.spotlight ?? null);
      setHand((live.hands ?? []).includes(ownClass));
      applyMute((live.muted ?? []).includes(ownClass));
      hubSending.clear();
      for (const p of live.present ?? []) if (p.publishing > 0) sending(p.part, true);
      showWaiting();
      floor = [...(live.speakers ?? [])];
      followFloor().catch((e) => log(`speaker: ${e}`));
      speakFor(live.speakers ?? []).catch((e) => log(`publish: ${e}`));
      if (d.state) setLessonState(d.state);
    } else if (ev.kind === 'spotlight') {
      if (info.mode === 'sync') showSpot(d.classroom ?? null);
    } else if (ev.kind === 'hand' && d.classroom === ownClass) {
      setHand(Boolean(d.raised), !d.raised && d.by === 'teacher');
    } else if (ev.kind === 'speak') {
      setFloor(d.classroom, Boolean(d.granted));
      if (d.classroom === ownClass) speakFor(d.granted ? [ownClass] : []).catch((e) => log(`publish: ${e}`));
    } else if (ev.kind === 'mute' && d.classroom === ownClass) {
      applyMute(Boolean(d.muted));
    } else if (ev.kind === 'published') {
      sending(d.part, true);
    } else if (ev.kind === 'unpublished' || ev.kind === 'left') {
      sending(d.part, false);
    } else if (ev.kind === 'state') {
      // A lesson called off while the room waits ends as cancelled, not as ended.
      if (d.cancelled) cancelled = true;
      setLessonState(d.state);
    } else if (ev.kind === 'events-refused') {
      finish(d);
    }
  }, log);

  handle.links = { hub, spotlight: spot, speaker: () => speaker, publish: () => pub };
  handle.stats = async () => ({
    hub: await statsOf(hub.pc, hub.state),
    spotlight: spot ? await statsOf(spot.pc, spot.state) : null,
    speaker: speaker ? await statsOf(speaker.pc, speaker.state) : null,
    speakers: Object.fromEntries(await Promise.all([...followed].map(async ([c, f]) => [c, await statsOf(f.link.pc, f.link.state)]))),
    publish: pub ? await statsOf(pub.pc, pub.state) : null,
  });

  // Link reports (issue 19 item 6): what this classroom's connections receive, every 10 s.
  const stopLinkStats = reportLinkStats(lessonId, () => [...links.map((l) => l.pc), speaker?.pc], log);

  const reason = await done;
  log(`lesson ${lessonId} ended`);
  stopLinkStats();
  events.close();
  clearInterval(layoutTimer);
  clearInterval(clockTimer);
  await stopPublish();
  for (const f of followed.values()) {
    f.fig.remove();
    await f.link.stop();
  }
  followed.clear();
  $('floor').hidden = true;
  for (const l of links) await l.stop();
  if (local) local.getTracks().forEach((tr) => tr.stop());
  setBanner('stopped');
  // The event stream was refused: the device was revoked (401) or lost the lesson.
  if (reason?.status) throw { status: reason.status, title: 'events refused', detail: null, type: null };
  if (cancelled) showCancelled(null, null);
  else showScreen('ended');
}

/**
 * The next lesson as the waiting screens say it: when the classroom may join (the room's
 * open time, issue 22 item 6), what it is, and its bell.
 * @param {any} next
 */
function nextText(next) {
  return next ? tf('kiosk_next_opens', { time: hhmm(next.opens), subject: next.subject, grade: next.grade, start: hhmm(next.starts) }) : '';
}

/**
 * The full-screen "cancelled" state: which lesson was called off (when known) and the next
 * one to wait for.
 * @param {any} lesson
 * @param {any} next
 */
function showCancelled(lesson, next) {
  $('cancelledSub').textContent = lesson
    ? tf('kiosk_cancelled_sub', { time: `${hhmm(lesson.starts)}–${hhmm(lesson.ends)}`, subject: lesson.subject, grade: lesson.grade })
    : '';
  $('cancelledNext').textContent = nextText(next);
  showScreen('cancelled');
}

/** Kiosk: the classroom's current lesson from the timetable, or the next one to wait for. */
async function kioskLoop(me) {
  for (;;) {
    let today = null;
    try {
      today = await api('GET', '/api/today');
    } catch (e) {
      if (e.status === 401) {
        // Revoked or unknown device token: an admin must act; the screen says so.
        showProblem(e);
        return;
      }
      showError(e);
    }
    const cur = today?.current;
    if (cur && cur.state !== 'ended') {
      try {
        await runLesson(cur.id, me);
      } catch (e) {
        log(`lesson ${cur.id}: ${e?.title ?? e} ${e?.detail ?? ''}`);
        showProblem(e);
        if (e?.status === 401) return;
      }
    } else if (today) {
      const next = today.next;
      // A lesson called off whose time is now (from its open time to its end): said so on
      // the whole screen, and not joined.
      const off = today.lessons.find((/** @type {any} */ l) => l.cancelled
        && Date.parse(l.opens) <= today.now && today.now < Date.parse(l.ends));
      if (off) {
        showCancelled(off, next);
      } else {
        $('waitingMain').textContent = t(next ? 'kiosk_waiting' : 'kiosk_no_more');
        $('nextLesson').textContent = nextText(next);
        // Just after a lesson, its end stays on screen until the next poll.
        if (handle.screen !== 'ended' || handle.lesson == null) showScreen('waiting');
      }
      handle.lesson = null;
    }
    await new Promise((r) => setTimeout(r, 5000));
  }
}

async function main() {
  deviceToken(); // takes ?device= into storage before any call
  let me;
  try {
    me = await api('GET', '/api/me');
  } catch (e) {
    await header(null);
    handle.error = e;
    showProblem(e);
    return;
  }
  await header(me);
  if (me.kind === 'device') {
    $('classname').textContent = me.label;
    api('GET', `/api/classrooms/${me.classroom_id}`).then((c) => { $('classname').textContent = c.name; }).catch(() => {});
  }
  if (kiosk) {
    document.body.classList.add('kiosk');
    await kioskLoop(me);
  } else {
    try {
      await runLesson(fixedLesson, me);
    } catch (e) {
      handle.error = e;
      log(`lesson ${fixedLesson}: ${e?.title ?? e} ${e?.detail ?? ''}`);
      showProblem(e);
    }
  }
}

main().catch((e) => {
  handle.error = e;
  setBanner('failed');
  log(`failed: ${e?.title ?? e} ${e?.detail ?? ''}`);
  showError(e?.title ? e : { title: String(e), detail: null });
});
