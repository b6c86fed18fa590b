// @ts-check
// The classroom page (/classroom?lesson=N), and its kiosk form (/classroom?device=<token>, or
// no parameters once a device token is remembered): it finds the classroom's current lesson
// in the timetable and joins it with no clicks, then waits for the next one.
//
// Shows the hub full-screen (courseware large with the teacher's camera picture-in-picture,
// or side by side), publishes this class's camera and microphone when the lesson mode allows
// (名师课堂: only while the teacher grants it), shows the class on the big screen (同步课堂),
// has a raise-hand button, and reconnects by itself with the state on screen.
//
// Test/diagnostic parameters: &width=&height= for the camera, &audio=0, &relay=1 for relayed
// (TURN) ICE only.
//
// window.classrelay: state (the hub link), lessonState, lesson, mode, spotlight, publishing
// (the publish link's state or null), hand, log, stats() -> { hub, spotlight, publish },
// raiseHand(bool).

import { api, h, t, header, Link, LessonEvents, showError, linkBadge, modeLabel, deviceToken, statsOf, hhmm } from '/app.js';

const q = new URLSearchParams(location.search);
const num = (k, d) => {
  const v = Number.parseInt(q.get(k) ?? '', 10);
  return Number.isFinite(v) && v > 0 ? v : d;
};
const opts = { audio: q.get('audio') !== '0', width: num('width', 960), height: num('height', 540) };
const fixedLesson = Number.parseInt(q.get('lesson') ?? '', 10);
const kiosk = !Number.isFinite(fixedLesson);

const handle = { state: 'idle', lessonState: null, lesson: null, mode: null, spotlight: null, publishing: null, hand: false, log: [], error: null };
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

/** Runs one lesson on the page until it ends (resolves) or is refused (rejects). */
async function runLesson(lessonId, me) {
  showError(null);
  const lesson = await api('GET', `/api/lessons/${lessonId}`);
  let joined = await api('POST', `/api/lessons/${lessonId}/join`);
  const info = joined; // what this page may do; `joined` itself is handed to the first link
  handle.lesson = lessonId;
  handle.mode = info.mode;
  document.body.dataset.mode = info.mode;
  $('title').textContent = `${lesson.subject} · ${lesson.grade}${lesson.title ? ` · ${lesson.title}` : ''} (${hhmm(lesson.starts)}–${hhmm(lesson.ends)})`;
  $('mode').textContent = modeLabel(info.mode);
  $('waiting').hidden = true;
  $('stage').hidden = false;
  const ownClass = me.kind === 'device' ? me.classroom_id : null;
  const freshJoin = async () => {
    const j = joined ?? (await api('POST', `/api/lessons/${lessonId}/join`));
    joined = null;
    return j;
  };
  const links = [];

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
    spot = new Link({
      name: 'spotlight',
      kind: 'whep',
      log,
      session: async () => {
        const j = await freshJoin();
        return { url: `${j.whep}?source=spotlight`, token: j.token };
      },
      setup: async (pc) => {
        pc.addTransceiver('audio', { direction: 'recvonly' });
        pc.addTransceiver('video', { direction: 'recvonly' });
      },
      onTrack: (ev) => {
        const el = ev.track.kind === 'video' ? $('spotVideo') : $('spotAudio');
        el.srcObject = new MediaStream([ev.track]);
        el.play().catch(() => {});
      },
    });
    links.push(spot);
  }
  const showSpot = (classroom) => {
    handle.spotlight = classroom;
    // Our own class on the big screen: the others see us; we keep seeing the hub.
    $('spot').hidden = classroom == null || classroom === ownClass;
    if (classroom != null) {
      api('GET', `/api/classrooms/${classroom}`).then((c) => { $('spotName').textContent = `${t('big_screen')} · ${c.name}`; }).catch(() => {});
    }
  };
  showSpot(info.spotlight ?? null);

  // ---- this class's camera and microphone --------------------------------------------------
  /** @type {MediaStream | null} */
  let local = null;
  let pub = null;
  const mayPublish = info.publish;
  const needsGrant = info.needs_speak_grant;
  const startPublish = async () => {
    if (pub || !mayPublish) return;
    if (!local) {
      local = await navigator.mediaDevices.getUserMedia({
        audio: opts.audio,
        video: { width: { ideal: opts.width }, height: { ideal: opts.height }, frameRate: { ideal: 25 } },
      });
      $('self').srcObject = local;
    }
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
      },
    });
  };
  const stopPublish = async () => {
    if (!pub) return;
    const p = pub;
    pub = null;
    $('selfTile').hidden = true;
    await p.stop();
    if (!pub) handle.publishing = null;
  };
  if (mayPublish && !needsGrant) await startPublish();

  // ---- hands, speak, events --------------------------------------------------------------
  const setHand = (raised) => {
    handle.hand = raised;
    $('hand').textContent = t(raised ? 'lower_hand' : 'raise_hand');
    $('hand').classList.toggle('raised', raised);
  };
  setHand(false);
  $('hand').hidden = ownClass == null;
  handle.raiseHand = async (raised) => {
    await api('POST', `/api/lessons/${lessonId}/hand`, { raised });
    setHand(raised);
  };
  $('hand').onclick = () => handle.raiseHand(!handle.hand).catch(showError);

  let finish;
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
      showSpot(live.spotlight ?? null);
      setHand((live.hands ?? []).includes(ownClass));
      speakFor(live.speakers ?? []).catch((e) => log(`publish: ${e}`));
      if (d.state) setLessonState(d.state);
    } else if (ev.kind === 'spotlight') {
      showSpot(d.classroom ?? null);
    } else if (ev.kind === 'hand' && d.classroom === ownClass) {
      setHand(Boolean(d.raised));
    } else if (ev.kind === 'speak' && d.classroom === ownClass) {
      speakFor(d.granted ? [ownClass] : []).catch((e) => log(`publish: ${e}`));
    } else if (ev.kind === 'state') {
      setLessonState(d.state);
    } else if (ev.kind === 'events-refused') {
      finish();
    }
  }, log);

  handle.links = { hub, spotlight: spot, publish: () => pub };
  handle.stats = async () => ({
    hub: await statsOf(hub.pc, hub.state),
    spotlight: spot ? await statsOf(spot.pc, spot.state) : null,
    publish: pub ? await statsOf(pub.pc, pub.state) : null,
  });

  await done;
  log(`lesson ${lessonId} ended`);
  events.close();
  clearInterval(layoutTimer);
  await stopPublish();
  for (const l of links) await l.stop();
  if (local) local.getTracks().forEach((tr) => tr.stop());
  $('stage').hidden = true;
  $('ended').hidden = false;
  setBanner('stopped');
}

/** Kiosk: the classroom's current lesson from the timetable, or the next one to wait for. */
async function kioskLoop(me) {
  for (;;) {
    let today = null;
    try {
      today = await api('GET', '/api/today');
    } catch (e) {
      showError(e);
      if (e.status === 401) return; // revoked or unknown device token: an admin must act
    }
    const cur = today?.current;
    if (cur && cur.state !== 'ended') {
      $('ended').hidden = true;
      try {
        await runLesson(cur.id, me);
      } catch (e) {
        log(`lesson ${cur.id}: ${e?.title ?? e} ${e?.detail ?? ''}`);
        showError(e);
      }
    } else {
      $('waiting').hidden = false;
      const next = today?.next;
      $('nextLesson').textContent = next ? `${t('next')}: ${hhmm(next.starts)} ${next.subject} · ${next.grade}` : t('none');
    }
    await new Promise((r) => setTimeout(r, 5000));
  }
}

async function main() {
  deviceToken(); // takes ?device= into storage before any call
  const me = await api('GET', '/api/me');
  await header(me);
  if (me.kind === 'device') {
    $('classname').textContent = me.label;
    api('GET', `/api/classrooms/${me.classroom_id}`).then((c) => { $('classname').textContent = c.name; }).catch(() => {});
  }
  if (kiosk) {
    document.body.classList.add('kiosk');
    await kioskLoop(me);
  } else {
    await runLesson(fixedLesson, me);
  }
}

main().catch((e) => {
  handle.error = e;
  setBanner('failed');
  log(`failed: ${e?.title ?? e} ${e?.detail ?? ''}`);
  showError(e?.title ? e : { title: String(e), detail: null });
});
