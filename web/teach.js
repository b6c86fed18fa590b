// @ts-check
// The teacher console (/teach?lesson=N): publishes camera (simulcast) + microphone + the
// courseware screen over WHIP, shows each remote class (one WHEP session per class,
// `?source=c:<classroom>`) with its name, connection and link quality, and drives the lesson:
// raised hands, speak grants (名师课堂), the big screen (同步课堂), ending the lesson.
//
// Test/diagnostic parameters: &screen=1 shares a drawn canvas instead of a real screen,
// &simulcast=0, &audio=0, &width=&height= for the camera, &relay=1 for relayed (TURN) ICE only.
//
// Who is present in every mode (a class that only watches is present; one that sends is
// "sending"), per-class mute and mute-all (the classes' pages silence their microphones),
// lowering (acknowledging) a raised hand in every mode, the lesson clock against the slot's
// end, larger tiles with a focus view, and the attendance figure (sites present / expected).
// A signed-in user who is not this lesson's hub teacher is refused before the camera and
// microphone start.
//
// window.classrelay (for tests and the console):
//   state          the publish link's state; lessonState; mode; log; cameraStarted; refused
//   classes()      { [classroomId]: { name, state, presence, hand, speaking, muted, quality } }
//   attendance     the last GET /api/lessons/{id}/attendance answer
//   stats()        async { publish: <summarizeStats>, classes: { [id]: <summarizeStats> } }
//   grant(id, on), spotlight(id|null), mute(id|null, on), lowerHand(id), focus(id|null),
//   end(), shareScreen(), stopScreen()

import { api, h, t, tf, header, hhmm, Link, LessonEvents, showError, linkBadge, modeLabel, statsOf, lessonStateOf, reportLinkStats, liveLinkText } from '/app.js';
import { skew, lessonClock } from '/lib/clock.js';

const q = new URLSearchParams(location.search);
const lessonId = Number.parseInt(q.get('lesson') ?? '', 10);
const num = (k, d) => {
  const v = Number.parseInt(q.get(k) ?? '', 10);
  return Number.isFinite(v) && v > 0 ? v : d;
};
const opts = {
  simulcast: q.get('simulcast') !== '0',
  audio: q.get('audio') !== '0',
  screen: q.get('screen') === '1',
  width: num('width', 1280),
  height: num('height', 720),
};

const handle = {
  state: 'idle',
  lessonState: null,
  mode: null,
  log: [],
  error: null,
  cameraStarted: false,
  refused: false,
  attendance: null,
};
window.classrelay = handle;
const log = (line) => {
  handle.log.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
  const pre = document.getElementById('log');
  if (pre) pre.textContent = handle.log.slice(-200).join('\n');
};
const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));

/** A drawn stand-in for the courseware screen (tests; no screen picker in headless). */
function canvasScreen() {
  const c = h('canvas', { width: 960, height: 540 });
  const ctx = c.getContext('2d');
  let n = 0;
  const timer = setInterval(() => {
    n += 1;
    ctx.fillStyle = '#f4f1e8';
    ctx.fillRect(0, 0, 960, 540);
    ctx.fillStyle = '#1d5c3a';
    ctx.fillRect((n * 7) % 960, 180, 120, 180);
    ctx.fillStyle = '#222';
    ctx.font = '44px sans-serif';
    ctx.fillText(`课件 ${n}`, 48, 90);
  }, 66);
  const track = c.captureStream(15).getVideoTracks()[0];
  track.contentHint = 'detail';
  return { track, stop: () => { clearInterval(timer); track.stop(); } };
}

async function main() {
  if (!Number.isFinite(lessonId)) throw { status: null, title: 'missing ?lesson=', detail: null };
  const me = await api('GET', '/api/me');
  await header(me);
  const lesson = await api('GET', `/api/lessons/${lessonId}`);
  handle.mode = lesson.mode;
  $('title').textContent = `${lesson.subject} · ${lesson.grade}${lesson.title ? ` · ${lesson.title}` : ''}`;
  $('mode').textContent = modeLabel(lesson.mode);
  document.body.dataset.mode = lesson.mode;

  $('lessonState').textContent = t(`state_${lessonStateOf(lesson)}`);
  $('lessonState').dataset.state = lessonStateOf(lesson);
  if (lesson.cancelled) {
    // Called off (issue 22 item 4): said as cancelled, never as ended; nothing starts.
    handle.lessonState = 'cancelled';
    $('ended').textContent = t('state_cancelled');
    $('ended').dataset.cancelled = '1';
    $('ended').hidden = false;
  }

  // The server's clock (the lesson clock counts by it, not by this machine's).
  const today = await api('GET', '/api/today').catch(() => null);
  const offset = today ? skew(today.now, Date.now()) : 0;

  let joined = await api('POST', `/api/lessons/${lessonId}/join`);
  if (!joined.publish) {
    // Not this lesson's hub teacher: refuse before the camera and microphone start.
    handle.refused = true;
    handle.state = 'refused';
    document.body.dataset.refused = '1';
    for (const id of ['shareScreen', 'mute', 'muteAll', 'end', 'recToggle']) $(id).disabled = true;
    // Worded here: the refusal is the page's own, not a server problem.
    $('error').textContent = `${t('error')}: ${t('console_not_yours')}`;
    $('error').hidden = false;
    return;
  }
  const freshJoin = async () => {
    // Reuse the first answer once; every reconnect asks again (fresh token, window check).
    const j = joined ?? (await api('POST', `/api/lessons/${lessonId}/join`));
    joined = null;
    return j;
  };

  // ---- classes ---------------------------------------------------------------------------
  const classes = new Map(); // classroom id -> tile state
  const names = await Promise.all(
    lesson.sites.map((s) => api('GET', `/api/classrooms/${s.classroom_id}`).then((c) => c.name).catch(() => `#${s.classroom_id}`)),
  );
  lesson.sites.forEach((s, i) => {
    const id = s.classroom_id;
    const video = h('video', { autoplay: true, playsinline: true, muted: true });
    const audio = h('audio', { autoplay: true });
    const badge = h('span', { class: 'badges' });
    const buttons = h('div', { class: 'tile-actions' });
    const el = h('figure', { class: 'tile', dataset: { classroom: id, presence: 'absent' } }, video, audio,
      h('figcaption', {}, h('span', { class: 'name' }, names[i]), badge, buttons));
    // A click on the picture enlarges the class (the focus view); again: back to the grid.
    video.addEventListener('click', () => handle.focus(focused === id ? null : id));
    $('classes').append(el);
    classes.set(id, { id, name: names[i], el, video, audio, badge, buttons, link: null, hand: false, speaking: false, muted: false, quality: null, present: false, presence: 'absent', weak: false });
  });

  const snapshot = { hands: [], speakers: [], spotlight: null, muted: [] };
  /** @type {number | null} */
  let focused = null;
  let attendance = null;
  const render = () => {
    for (const c of classes.values()) {
      c.hand = snapshot.hands.includes(c.id);
      c.speaking = snapshot.speakers.includes(c.id);
      c.muted = snapshot.muted.includes(c.id);
      const state = c.link ? c.link.state : 'idle';
      const site = attendance?.sites?.find((x) => x.classroom_id === c.id);
      const bits = [h('span', { class: `badge presence presence-${c.presence}`, dataset: { presence: c.presence } }, t(`presence_${c.presence}`))];
      if (c.link) bits.push(linkBadge(state));
      if (c.quality) bits.push(h('span', { class: `badge q-${c.quality.grade}`, title: `RTT ${c.quality.rtt_ms ?? '?'} ms, loss ${c.quality.loss_pct ?? '?'}%` }, t(`quality_${c.quality.grade}`)));
      // Its live link (issue 19 item 6): rate sent to it, loss, round trip, layer or audio only.
      if (c.quality && c.quality.kbps_out > 0) bits.push(h('span', { class: 'badge linkfig', dataset: { linkfig: '1' } }, liveLinkText(c.quality)));
      if (c.hand) bits.push(h('span', { class: 'badge hand' }, t('hands')));
      if (c.speaking) bits.push(h('span', { class: 'badge speaking' }, t('speaking')));
      if (c.muted) bits.push(h('span', { class: 'badge muted' }, t('muted_badge')));
      if (c.weak) bits.push(h('span', { class: 'badge weak', title: t('weak_audio_only_hint') }, t('weak_audio_only')));
      if (snapshot.spotlight === c.id) bits.push(h('span', { class: 'badge spot' }, t('big_screen')));
      if (site && site.present_ms > 0) bits.push(h('span', { class: 'badge' }, `${Math.round(site.present_ms / 60000)}′`));
      c.badge.replaceChildren(...bits);
      const acts = [];
      if (c.hand) acts.push(h('button', { class: 'secondary', onclick: () => handle.lowerHand(c.id) }, t('ack_hand')));
      if (lesson.mode === 'master') {
        acts.push(h('button', { class: 'secondary', onclick: () => handle.grant(c.id, !c.speaking) }, t(c.speaking ? 'revoke' : 'grant')));
      }
      if (lesson.mode === 'sync') {
        const on = snapshot.spotlight === c.id;
        acts.push(h('button', { class: 'secondary', onclick: () => handle.spotlight(on ? null : c.id) }, t(on ? 'spotlight_off' : 'spotlight')));
      }
      acts.push(h('button', { class: 'secondary', dataset: { act: 'mute' }, onclick: () => handle.mute(c.id, !c.muted) }, t(c.muted ? 'unmute_class' : 'mute_class')));
      acts.push(h('button', { class: 'link', onclick: () => handle.focus(focused === c.id ? null : c.id) }, t(focused === c.id ? 'unfocus_tile' : 'focus_tile')));
      c.buttons.replaceChildren(...acts);
      c.el.dataset.state = state;
      c.el.dataset.presence = c.presence;
      c.el.classList.toggle('waiting', c.presence === 'absent');
      c.el.classList.toggle('focus', focused === c.id);
    }
    $('classes').classList.toggle('has-focus', focused != null);
    const allMuted = classes.size > 0 && [...classes.keys()].every((id) => snapshot.muted.includes(id));
    $('muteAll').textContent = t(allMuted ? 'unmute_all' : 'mute_all');
    $('muteAll').dataset.all = allMuted ? '1' : '0';
    if (attendance) $('attendance').textContent = tf('attendance_count', { present: attendance.present, expected: attendance.expected });
    const queue = snapshot.hands.map((id) => {
      const c = classes.get(id);
      return h('li', {}, c ? c.name : `#${id}`,
        lesson.mode === 'master' ? h('button', { onclick: () => handle.grant(id, true) }, t('grant')) : null,
        lesson.mode === 'sync' ? h('button', { onclick: () => handle.spotlight(id) }, t('spotlight')) : null,
        h('button', { class: 'secondary', onclick: () => handle.lowerHand(id) }, t('ack_hand')));
    });
    $('hands').replaceChildren(...(queue.length ? queue : [h('li', { class: 'muted' }, t('no_hands'))]));
  };

  // Attendance (sites present / expected), asked again when a classroom comes or goes.
  let attendanceTimer = null;
  const refreshAttendance = () => {
    clearTimeout(attendanceTimer);
    attendanceTimer = setTimeout(async () => {
      try {
        attendance = await api('GET', `/api/lessons/${lessonId}/attendance`);
        handle.attendance = attendance;
        render();
      } catch (e) {
        log(`attendance: ${e?.title ?? e}`);
      }
    }, 300);
  };

  // Link reports (issue 19 item 6): each class's live link, read every 5 s (the `quality`
  // events come only when a grade changes), and this page's own getStats for the report.
  const linksTimer = setInterval(async () => {
    try {
      const live = await api('GET', `/api/lessons/${lessonId}/live`);
      for (const l of live.links ?? []) {
        const c = classOf(l.part);
        if (c) c.quality = l;
      }
      render();
    } catch (e) {
      log(`links: ${e?.title ?? e}`);
    }
  }, 5000);
  const stopLinkStats = reportLinkStats(lessonId, () => [...classes.values()].map((c) => c.link?.pc), log);

  // Watch a class while it publishes; stop when it leaves.
  const watchClass = (c, on) => {
    c.present = on;
    if (on && !c.link) {
      c.link = new Link({
        name: `class ${c.id}`,
        kind: 'whep',
        log,
        session: async () => {
          const j = await freshJoin();
          return { url: `${j.whep}?source=c:${c.id}`, token: j.token };
        },
        setup: async (pc) => {
          pc.addTransceiver('audio', { direction: 'recvonly' });
          pc.addTransceiver('video', { direction: 'recvonly' });
        },
        onTrack: (ev) => {
          const el = ev.track.kind === 'video' ? c.video : c.audio;
          el.srcObject = new MediaStream([ev.track]);
          el.play().catch(() => {});
        },
        onState: () => render(),
      });
    } else if (!on && c.link) {
      c.link.stop();
      c.link = null;
      c.video.srcObject = null;
    }
    render();
  };
  const classOf = (part) => {
    const m = /^c:(\d+)$/.exec(part ?? '');
    return m ? classes.get(Number(m[1])) : undefined;
  };

  // 录制中: the lesson's recording state, and the button that switches it.
  const showRecording = (on, failed) => {
    handle.recording = Boolean(on);
    $('recMark').hidden = !on;
    $('recToggle').textContent = t(on ? 'record_stop' : 'record_start');
    if (failed) showError(new Error(t('recording_failed')));
  };
  const apply = (ev) => {
    const d = ev.data ?? {};
    if (ev.kind === 'recording') showRecording(d.state === 'recording', d.state === 'failed');
    if (ev.kind === 'resync') showRecording((d.live ?? {}).recording, false);
    switch (ev.kind) {
      case 'resync': {
        // { live: <snapshot>, state }: the full picture after a (re)connect.
        const live = d.live ?? {};
        Object.assign(snapshot, { hands: live.hands ?? [], speakers: live.speakers ?? [], spotlight: live.spotlight ?? null, muted: live.muted ?? [] });
        for (const c of classes.values()) {
          const p = (live.present ?? []).find((x) => x.part === `c:${c.id}`);
          c.presence = !p ? 'absent' : p.publishing > 0 ? 'publishing' : 'watching';
          watchClass(c, Boolean(p && p.publishing > 0));
        }
        refreshAttendance();
        if (d.state) setLessonState(d.state);
        for (const l of live.links ?? []) {
          const c = classOf(l.part);
          if (c) c.quality = l;
        }
        break;
      }
      case 'joined': {
        const c = classOf(d.part);
        if (c) {
          if (c.presence === 'absent') c.presence = 'watching';
          refreshAttendance();
        }
        break;
      }
      case 'published':
      case 'unpublished': {
        const c = classOf(d.part);
        if (c) {
          c.presence = ev.kind === 'published' ? 'publishing' : 'watching';
          watchClass(c, ev.kind === 'published');
        }
        break;
      }
      case 'left': {
        const c = classOf(d.part);
        if (c) {
          c.presence = 'absent';
          watchClass(c, false);
          refreshAttendance();
        }
        break;
      }
      case 'mute':
        snapshot.muted = snapshot.muted.filter((x) => x !== d.classroom);
        if (d.muted) snapshot.muted.push(d.classroom);
        break;
      case 'hand':
        snapshot.hands = snapshot.hands.filter((x) => x !== d.classroom);
        if (d.raised) snapshot.hands.push(d.classroom);
        break;
      case 'speak':
        snapshot.speakers = snapshot.speakers.filter((x) => x !== d.classroom);
        if (d.granted) snapshot.speakers.push(d.classroom);
        break;
      case 'spotlight':
        snapshot.spotlight = d.classroom ?? null;
        break;
      case 'quality':
        for (const l of d.links ?? []) {
          const c = classOf(l.part);
          if (c) c.quality = l;
        }
        break;
      case 'state':
        setLessonState(d.state, Boolean(d.cancelled));
        break;
      case 'weak_network': {
        // A classroom's line carries audio only for now (the server paused its video).
        const c = classOf(d.part);
        if (c) c.weak = Boolean(d.audio_only);
        break;
      }
      default:
        break;
    }
    render();
  };

  // ---- publishing --------------------------------------------------------------------------
  handle.cameraStarted = true;
  const cam = await navigator.mediaDevices.getUserMedia({
    audio: opts.audio,
    video: { width: { ideal: opts.width }, height: { ideal: opts.height }, frameRate: { ideal: 30 } },
  });
  $('preview').srcObject = cam;
  let screen = null;
  let screenSender = null;
  const setScreen = async (s) => {
    if (screen) screen.stop();
    screen = s;
    if (screenSender) await screenSender.replaceTrack(s ? s.track : null).catch(() => {});
    $('screenPreview').srcObject = s ? new MediaStream([s.track]) : null;
    $('shareScreen').hidden = Boolean(s);
    $('stopScreen').hidden = !s;
  };
  handle.shareScreen = async () => {
    if (opts.screen) return setScreen(canvasScreen());
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
    const track = stream.getVideoTracks()[0];
    track.contentHint = 'detail';
    const s = { track, stop: () => track.stop() };
    track.addEventListener('ended', () => { if (screen === s) setScreen(null); });
    return setScreen(s);
  };
  handle.stopScreen = () => setScreen(null);
  $('shareScreen').addEventListener('click', () => handle.shareScreen().catch((e) => log(`screen: ${e}`)));
  $('stopScreen').addEventListener('click', () => handle.stopScreen());
  const mic = cam.getAudioTracks()[0];
  $('mute').addEventListener('click', () => {
    if (!mic) return;
    mic.enabled = !mic.enabled;
    $('mute').textContent = t(mic.enabled ? 'mute' : 'unmute');
  });

  const publish = new Link({
    name: 'publish',
    kind: 'whip',
    log,
    session: async () => {
      const j = await freshJoin();
      return { url: j.whip, token: j.token };
    },
    setup: async (pc) => {
      if (mic) pc.addTransceiver(mic, { direction: 'sendonly', streams: [cam] });
      else pc.addTransceiver('audio', { direction: 'inactive' });
      const sendEncodings = opts.simulcast
        ? [
            { rid: 'h', scaleResolutionDownBy: 1, maxBitrate: 2_000_000 },
            { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
            { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
          ]
        : [{ maxBitrate: 2_000_000 }];
      pc.addTransceiver(cam.getVideoTracks()[0], { direction: 'sendonly', streams: [cam], sendEncodings });
      const scr = pc.addTransceiver(screen ? screen.track : 'video', { direction: 'sendonly' });
      screenSender = scr.sender;
    },
    onState: (s) => {
      handle.state = s;
      $('pubState').replaceChildren(linkBadge(s));
      if (s === 'failed') showError(publish.problem);
    },
  });
  if (opts.screen) await handle.shareScreen();

  // ---- lesson controls -------------------------------------------------------------------------
  const act = async (path, body) => {
    try {
      showError(null);
      const snap = await api('POST', `/api/lessons/${lessonId}/${path}`, body);
      if (snap && 'hands' in snap) Object.assign(snapshot, { hands: snap.hands, speakers: snap.speakers, spotlight: snap.spotlight, muted: snap.muted ?? [] });
      render();
      return snap;
    } catch (e) {
      showError(e);
      throw e;
    }
  };
  handle.grant = (id, granted) => act('speak', { classroom_id: id, granted });
  handle.spotlight = (id) => act('spotlight', { classroom_id: id });
  handle.end = () => act('end');
  handle.mute = (id, muted) => act('mute', { classroom_id: id, muted });
  handle.lowerHand = (id) => act('lower-hand', { classroom_id: id });
  handle.focus = (id) => {
    focused = id;
    render();
  };
  $('muteAll').addEventListener('click', () => handle.mute(null, $('muteAll').dataset.all !== '1').catch(() => {}));

  // The lesson clock: the slot's end and the time left (by the server's clock).
  $('clockEnd').textContent = tf('clock_ends', { end: hhmm(lesson.ends) });
  const tick = () => {
    const c = lessonClock(Date.now() + offset, lesson.starts_at, lesson.ends_at);
    const key = c.phase === 'before' ? 'clock_before' : c.phase === 'over' ? 'clock_over' : 'clock_left';
    $('clockLeft').textContent = tf(key, { left: c.text, over: c.text });
    $('clock').dataset.phase = c.phase;
  };
  tick();
  const clockTimer = setInterval(tick, 1000);
  handle.record = async (on) => {
    const r = await act('recording', { on });
    showRecording(r.recording, false);
    return r;
  };
  $('recToggle').addEventListener('click', () => handle.record(!handle.recording).catch(() => {}));
  $('end').addEventListener('click', () => {
    if (window.confirm(t('end_confirm'))) handle.end().catch(() => {});
  });

  const events = new LessonEvents(lessonId, apply, log);
  const setLessonState = (s, cancelled = false) => {
    const shown = cancelled ? 'cancelled' : s;
    handle.lessonState = shown;
    $('lessonState').textContent = t(`state_${shown}`);
    $('lessonState').dataset.state = shown;
    if (cancelled) $('ended').textContent = t('state_cancelled');
    if (s === 'ended') {
      publish.stop();
      for (const c of classes.values()) watchClass(c, false);
      events.close();
      cam.getTracks().forEach((tr) => tr.stop());
      if (screen) screen.stop();
      $('ended').hidden = false;
      clearInterval(clockTimer);
      clearInterval(linksTimer);
      stopLinkStats();
      for (const id of ['shareScreen', 'stopScreen', 'mute', 'muteAll', 'end', 'recToggle']) $(id).disabled = true;
    }
  };
  setLessonState(lesson.state);

  handle.classes = () =>
    Object.fromEntries([...classes.values()].map((c) => [c.id, {
      name: c.name, state: c.link ? c.link.state : 'idle', presence: c.presence, hand: c.hand, speaking: c.speaking, muted: c.muted, quality: c.quality,
    }]));
  handle.stats = async () => {
    const out = { publish: await statsOf(publish.pc, publish.state), classes: {} };
    for (const c of classes.values()) if (c.link) out.classes[c.id] = await statsOf(c.link.pc, c.link.state);
    return out;
  };
  render();
}

main().catch((e) => {
  handle.error = e;
  handle.state = 'failed';
  // A lesson not open, ended, or out of reach: its controls do nothing, so none is offered.
  for (const id of ['shareScreen', 'mute', 'muteAll', 'end', 'recToggle']) {
    const el = /** @type {HTMLButtonElement | null} */ (document.getElementById(id));
    if (el) el.disabled = true;
  }
  log(`failed: ${e?.title ?? e} ${e?.detail ?? ''}`);
  showError(e?.title ? e : { title: String(e), detail: null });
});
