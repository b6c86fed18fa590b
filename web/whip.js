// @ts-check
// classrelay pages: WHIP (publish) and WHEP (watch) client logic, shared by
// publish.html and watch.html. Plain ES module, no build step; the server
// embeds it and serves it as /whip.js (Content-Type: text/javascript).
//
// Both pages expose `window.classrelay` for people debugging in the console
// and for the headless-Chromium tests:
//   state    'idle' | 'media' | 'negotiating' | 'connecting' | 'connected'
//            | 'disconnected' | 'failed' | 'stopped'
//   error    null | { status, title, detail, type }
//   pc       the RTCPeerConnection (null before negotiation starts)
//   resource the session URL from the Location header (null until 201)
//   mids     { audio, camera, screen }: transceiver mids once negotiated
//   log      array of log lines (also shown on the page)
//   stats()  async: plain JSON summary of pc.getStats() (see summarizeStats)
//   stop()   async: DELETE the session and close the PeerConnection
// The publish page adds shareScreen() and stopScreen().

import { pickLang, lookup } from './lib/i18n.js';
import { problemText } from './lib/problems.js';

/** Transceiver order in every offer the pages make: audio, camera, screen. */
const ROLES = ['audio', 'camera', 'screen'];

/** How long to wait for ICE gathering before sending the offer anyway. */
const GATHER_TIMEOUT_MS = 5000;

/** Reads the page's query parameters with their defaults. */
export function pageParams(search = window.location.search) {
  const q = new URLSearchParams(search);
  const num = (name, dflt) => {
    const v = Number.parseInt(q.get(name) ?? '', 10);
    return Number.isFinite(v) && v > 0 ? v : dflt;
  };
  return {
    room: q.get('room') ?? '',
    token: q.get('token') ?? '',
    codec: (q.get('codec') ?? '').toLowerCase(),
    profile: (q.get('profile') ?? '').toLowerCase(),
    simulcast: q.get('simulcast') !== '0',
    screen: q.get('screen') === '1',
    // Test/diagnostic: only relayed (TURN) candidates, to prove the TURN path from this PC.
    relay: q.get('relay') === '1',
    audio: q.get('audio') !== '0',
    autostart: q.get('autostart') !== '0',
    width: num('width', 1280),
    height: num('height', 720),
    fps: num('fps', 30),
  };
}

/** The object tests and the console read; created once per page. */
function createHandle() {
  const handle = {
    state: 'idle',
    error: null,
    pc: null,
    resource: null,
    mids: { audio: null, camera: null, screen: null },
    log: [],
    stats: async () => summarizeStats(handle.pc, handle),
    stop: async () => {},
  };
  window.classrelay = handle;
  return handle;
}

function logger(handle) {
  const pre = document.getElementById('log');
  return (...parts) => {
    const line = `${new Date().toISOString().slice(11, 23)} ${parts.join(' ')}`;
    handle.log.push(line);
    if (pre) pre.textContent += `${line}\n`;
    console.log('[classrelay]', ...parts);
  };
}

// The words of /publish and /watch (Chinese first, `?lang=en` or the switch for English).
// Their own table: app.js imports this module, so this one cannot import app.js.
const WORDS = {
  zh: {
    w_publish: '发布课堂', w_watch: '观看课堂', w_room: '房间', w_state: '状态', w_start: '开始', w_stop: '停止',
    w_share: '共享屏幕', w_stop_share: '停止共享', w_camera: '摄像头', w_screen: '屏幕', w_teacher: '老师',
    w_slides: '课件', w_log: '日志', w_error: '错误',
    w_state_idle: '空闲', w_state_media: '打开摄像头', w_state_negotiating: '协商中', w_state_connecting: '连接中',
    w_state_connected: '已连接', w_state_disconnected: '连接中断', w_state_failed: '失败', w_state_stopped: '已停止',
    w_missing_room: '地址中缺少房间参数（?room=）', w_missing_location: '服务器没有返回会话地址',
  },
  en: {
    w_publish: 'Publish', w_watch: 'Watch', w_room: 'Room', w_state: 'State', w_start: 'Start', w_stop: 'Stop',
    w_share: 'Share screen', w_stop_share: 'Stop sharing', w_camera: 'Camera', w_screen: 'Screen', w_teacher: 'Teacher camera',
    w_slides: 'Courseware', w_log: 'Log', w_error: 'Error',
    w_state_idle: 'Idle', w_state_media: 'Opening camera', w_state_negotiating: 'Negotiating', w_state_connecting: 'Connecting',
    w_state_connected: 'Connected', w_state_disconnected: 'Disconnected', w_state_failed: 'Failed', w_state_stopped: 'Stopped',
    w_missing_room: 'The address has no room (?room=)', w_missing_location: 'The server returned no session address',
  },
};

/** @returns {'zh' | 'en'} */
function pageLang() {
  const q = new URLSearchParams(window.location.search).get('lang');
  if (q === 'en' || q === 'zh') localStorage.setItem('classrelay.lang', q);
  return pickLang(q, localStorage.getItem('classrelay.lang'));
}

/** @param {string} key */
function w(key) {
  return lookup(WORDS, pageLang(), key);
}

/** Fills the page's [data-w] elements and the language switch (#lang). */
function translateStatic() {
  document.documentElement.lang = pageLang() === 'en' ? 'en' : 'zh-CN';
  document.querySelectorAll('[data-w]').forEach((el) => {
    el.textContent = w(/** @type {HTMLElement} */ (el).dataset.w ?? '');
  });
  const sw = document.getElementById('lang');
  if (sw) {
    sw.textContent = pageLang() === 'en' ? '中文' : 'English';
    sw.addEventListener('click', () => {
      localStorage.setItem('classrelay.lang', pageLang() === 'en' ? 'zh' : 'en');
      const u = new URL(window.location.href);
      u.searchParams.delete('lang');
      window.location.replace(u.toString());
    });
  }
}

function setState(handle, state) {
  handle.state = state;
  const el = document.getElementById('state');
  if (el) {
    el.textContent = lookup(WORDS, pageLang(), `w_state_${state}`, state);
    el.dataset.state = state;
  }
}

function showError(handle, err) {
  handle.error = err;
  const el = document.getElementById('error');
  if (el) {
    // A refusal of this page's own (`key`) or a server problem, worded in the page's language.
    el.textContent = `${w('w_error')}: ${err.key ? w(err.key) : problemText(err, pageLang())}`;
    if (err.status) el.title = `HTTP ${err.status}${err.type ? ` ${err.type}` : ''}`;
    el.hidden = false;
  }
}

/** Turns a thrown value into the { status, title, detail, type } shape. */
function asProblem(e) {
  if (e && typeof e === 'object' && 'title' in e) return e;
  return { status: null, title: e?.name ?? 'Error', detail: String(e?.message ?? e), type: null };
}

/** Waits until ICE gathering completes (non-trickle WHIP), or a timeout. */
export function waitForIceGathering(pc, timeoutMs = GATHER_TIMEOUT_MS) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', onChange);
      resolve();
    };
    const onChange = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener('icegatheringstatechange', onChange);
  });
}

/**
 * Puts Opus with RED (RFC 2198) first on an audio transceiver, where the browser has it:
 * libwebrtc sends RED only when `audio/red` comes before Opus. The server forwards RED to
 * viewers that negotiated it and the plain Opus inside it to the others.
 */
export function preferRed(transceiver) {
  if (typeof transceiver.setCodecPreferences !== 'function') return;
  const codecs = RTCRtpReceiver.getCapabilities('audio')?.codecs ?? [];
  const isRed = (c) => c.mimeType.toLowerCase() === 'audio/red';
  if (!codecs.some(isRed)) return;
  transceiver.setCodecPreferences([...codecs.filter(isRed), ...codecs.filter((c) => !isRed(c))]);
}

/**
 * Restricts the transceiver's codecs to `codec` ('h264' | 'vp8' | 'vp9' | 'av1'),
 * keeping RTX/RED/FEC. For H.264 the packetization-mode=1 variant of `profile`
 * ('cb' constrained baseline, the default; 'main'; 'high') goes first. Returns false (and changes nothing) if the browser has no
 * such codec.
 */
export function preferCodec(transceiver, codec, profile) {
  if (!codec || typeof transceiver.setCodecPreferences !== 'function') return false;
  const caps = RTCRtpReceiver.getCapabilities('video');
  if (!caps) return false;
  const wanted = `video/${codec}`.toLowerCase();
  const helpers = new Set(['video/rtx', 'video/red', 'video/ulpfec', 'video/flexfec-03']);
  const rank = (c) => {
    const f = c.sdpFmtpLine ?? '';
    let r = 0;
    if (f.includes('packetization-mode=1')) r -= 2;
    // H.264 profile: cb = constrained baseline (42e0..), main (4d..), high (64..).
    const prefix = { cb: '42e0', main: '4d', high: '64' }[profile || 'cb'] ?? '42e0';
    if (f.includes(`profile-level-id=${prefix}`)) r -= 4;
    return r;
  };
  const primary = caps.codecs
    .filter((c) => c.mimeType.toLowerCase() === wanted)
    .sort((a, b) => rank(a) - rank(b));
  if (primary.length === 0) return false;
  const rest = caps.codecs.filter((c) => helpers.has(c.mimeType.toLowerCase()));
  transceiver.setCodecPreferences([...primary, ...rest]);
  return true;
}

/**
 * POSTs the offer to a WHIP/WHEP endpoint. Resolves to { location, answer };
 * rejects with a problem object { status, title, detail, type } on any
 * non-201 response (problem+json bodies are parsed).
 */
export async function postOffer(endpoint, token, offerSdp) {
  const headers = { 'Content-Type': 'application/sdp' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let resp;
  try {
    resp = await fetch(endpoint, { method: 'POST', headers, body: offerSdp });
  } catch (e) {
    throw { status: null, title: 'network error', detail: String(e?.message ?? e), type: null };
  }
  const body = await resp.text();
  if (resp.status !== 201) {
    let problem = null;
    try {
      problem = JSON.parse(body);
    } catch {
      problem = null;
    }
    throw {
      status: resp.status,
      title: problem?.title ?? (resp.statusText || `HTTP ${resp.status}`),
      detail: problem?.detail ?? (problem ? null : body.slice(0, 300) || null),
      type: problem?.type ?? null,
    };
  }
  const loc = resp.headers.get('Location');
  if (!loc) {
    throw { status: 201, title: 'missing Location header', detail: null, type: null, key: 'w_missing_location' };
  }
  return { location: new URL(loc, resp.url || endpoint).toString(), answer: body };
}

/**
 * The RTCPeerConnection configuration for a session at `endpoint` (a WHIP/WHEP URL, query
 * ignored): the ICE servers from `GET <endpoint>/ice-servers`, which the server answers only
 * for the same token the POST will carry (with a TURN credential minted for it), and
 * `iceTransportPolicy: 'relay'` when `relay` is set (`&relay=1`). If that request fails, the
 * configuration has no ICE servers: direct UDP still works where the network allows it, and
 * the POST reports a bad token.
 */
export async function iceConfig(endpoint, token, { relay = false, log = (/** @type {string} */ _m) => {} } = {}) {
  /** @type {RTCConfiguration} */
  const config = { bundlePolicy: 'max-bundle', iceServers: [] };
  if (relay) config.iceTransportPolicy = 'relay';
  const url = new URL(endpoint, window.location.href);
  url.pathname = `${url.pathname.replace(/\/$/, '')}/ice-servers`;
  url.search = '';
  try {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const resp = await fetch(url, { headers, cache: 'no-store', credentials: 'same-origin' });
    if (!resp.ok) {
      log(`GET ${url.pathname} -> ${resp.status}`);
      return config;
    }
    const body = await resp.json();
    config.iceServers = (body.ice_servers ?? [])
      .filter((s) => Array.isArray(s.urls) && s.urls.length > 0)
      .map((s) => {
        const server = { urls: s.urls };
        if (s.username != null) server.username = s.username;
        if (s.credential != null) server.credential = s.credential;
        return server;
      });
    // URLs only: a credential never goes into the page's log.
    const urls = config.iceServers.flatMap((s) => s.urls);
    log(`ICE servers${relay ? ' (relay only)' : ''}: ${urls.join(' ') || 'none'}`);
  } catch (e) {
    log(`GET ${url.pathname} failed: ${e}`);
  }
  return config;
}

/** DELETEs a WHIP/WHEP session resource; errors are logged, not thrown. */
export async function deleteResource(resource, token, log = (/** @type {string} */ _m) => {}) {
  if (!resource) return;
  try {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const resp = await fetch(resource, { method: 'DELETE', headers });
    log(`DELETE ${resource} -> ${resp.status}`);
  } catch (e) {
    log(`DELETE ${resource} failed: ${e}`);
  }
}

/** Creates the offer, gathers ICE, POSTs it and applies the answer. */
async function negotiate(handle, endpoint, token, log) {
  const pc = handle.pc;
  setState(handle, 'negotiating');
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIceGathering(pc);
  log(`POST ${endpoint} (ICE gathering: ${pc.iceGatheringState})`);
  const { location, answer } = await postOffer(endpoint, token, pc.localDescription.sdp);
  handle.resource = location;
  log(`201 Created, Location: ${location}`);
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  const ts = pc.getTransceivers();
  ROLES.forEach((role, i) => {
    handle.mids[role] = ts[i]?.mid ?? null;
  });
  if (handle.state === 'negotiating') {
    setState(handle, pc.connectionState === 'connected' ? 'connected' : 'connecting');
  }
}

function trackConnectionState(handle, log) {
  const pc = handle.pc;
  pc.addEventListener('connectionstatechange', () => {
    log(`connectionState: ${pc.connectionState}`);
    if (handle.state === 'stopped' || handle.state === 'negotiating') return;
    const s = pc.connectionState;
    if (s === 'connected' || s === 'connecting' || s === 'disconnected' || s === 'failed') {
      setState(handle, s);
    }
  });
}

function endpointFor(kind, room) {
  return new URL(`/${kind}/${encodeURIComponent(room)}`, window.location.href).toString();
}

/** A canvas animation used instead of a real screen share when `screen=1` (tests). */
function canvasScreenTrack(width, height, fps) {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d');
  let n = 0;
  const draw = () => {
    n += 1;
    ctx.fillStyle = '#f4f1e8';
    ctx.fillRect(0, 0, width, height);
    ctx.fillStyle = '#1d5c3a';
    ctx.fillRect((n * 7) % width, height / 3, width / 8, height / 3);
    ctx.fillStyle = '#222';
    ctx.font = `${Math.round(height / 12)}px sans-serif`;
    ctx.fillText(`${w('w_slides')} ${n}`, width / 20, height / 6);
  };
  draw();
  const timer = setInterval(draw, Math.round(1000 / fps));
  const track = canvas.captureStream(fps).getVideoTracks()[0];
  track.addEventListener('ended', () => clearInterval(timer));
  track.contentHint = 'detail';
  return { track, stop: () => clearInterval(timer) };
}

/** Wires up publish.html. */
export function runPublishPage() {
  translateStatic();
  const handle = createHandle();
  const log = logger(handle);
  const params = pageParams();
  const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
  let camStream = null;
  let screen = null; // { track, stop }
  let screenSender = null;

  const attachScreen = async (s) => {
    if (screen) screen.stop();
    screen = s;
    if (screenSender) await screenSender.replaceTrack(s ? s.track : null);
    $('screenPreview').srcObject = s ? new MediaStream([s.track]) : null;
    $('screen').hidden = Boolean(s);
    $('stopScreen').hidden = !s;
  };

  handle.shareScreen = async () => {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
    const track = stream.getVideoTracks()[0];
    track.contentHint = 'detail';
    const s = { track, stop: () => track.stop() };
    track.addEventListener('ended', () => {
      if (screen === s) attachScreen(null);
    });
    await attachScreen(s);
    log('screen share started');
  };
  handle.stopScreen = async () => {
    await attachScreen(null);
    log('screen share stopped');
  };

  handle.stop = async () => {
    setState(handle, 'stopped');
    await deleteResource(handle.resource, params.token, log);
    handle.resource = null;
    if (handle.pc) handle.pc.close();
    if (camStream) camStream.getTracks().forEach((t) => t.stop());
    if (screen) screen.stop();
    $('start').disabled = false;
    $('stop').disabled = true;
  };

  const start = async () => {
    $('start').disabled = true;
    $('error').hidden = true;
    handle.error = null;
    try {
      if (!params.room) throw { status: null, title: 'missing room parameter', detail: null, key: 'w_missing_room' };
      setState(handle, 'media');
      camStream = await navigator.mediaDevices.getUserMedia({
        audio: params.audio,
        video: {
          width: { ideal: params.width },
          height: { ideal: params.height },
          frameRate: { ideal: params.fps },
        },
      });
      $('preview').srcObject = camStream;
      const config = await iceConfig(endpointFor('whip', params.room), params.token, { relay: params.relay, log });
      const pc = new RTCPeerConnection(config);
      handle.pc = pc;
      trackConnectionState(handle, log);

      const audioTrack = camStream.getAudioTracks()[0];
      if (audioTrack) preferRed(pc.addTransceiver(audioTrack, { direction: 'sendonly', streams: [camStream] }));
      else pc.addTransceiver('audio', { direction: 'inactive' });

      const camTrack = camStream.getVideoTracks()[0];
      const sendEncodings = params.simulcast
        ? [
            { rid: 'h', scaleResolutionDownBy: 1, maxBitrate: 2_500_000 },
            { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 600_000 },
            { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
          ]
        : [{ maxBitrate: 2_500_000 }];
      const cam = pc.addTransceiver(camTrack, { direction: 'sendonly', streams: [camStream], sendEncodings });

      // The screen transceiver always exists (its sender may have no track),
      // so starting or stopping a share is a replaceTrack, not a renegotiation.
      const scr = pc.addTransceiver('video', { direction: 'sendonly' });
      screenSender = scr.sender;
      if (params.screen) {
        await attachScreen(canvasScreenTrack(960, 540, 15));
      }

      if (params.codec) {
        const ok = preferCodec(cam, params.codec, params.profile) && preferCodec(scr, params.codec, params.profile);
        log(ok ? `codec preference: ${params.codec}` : `codec ${params.codec} not available, using default`);
      }

      $('stop').disabled = false;
      await negotiate(handle, endpointFor('whip', params.room), params.token, log);
    } catch (e) {
      const problem = asProblem(e);
      log(`failed: ${problem.title} ${problem.detail ?? ''}`);
      showError(handle, problem);
      setState(handle, 'failed');
      $('start').disabled = false;
    }
  };

  $('start').addEventListener('click', start);
  $('stop').addEventListener('click', () => handle.stop());
  $('screen').addEventListener('click', () =>
    handle.shareScreen().catch((e) => {
      log(`screen share failed: ${e}`);
      showError(handle, asProblem(e));
    }),
  );
  $('stopScreen').addEventListener('click', () => handle.stopScreen());
  $('room').textContent = params.room || '—';
  if (params.autostart) start();
}

/** Wires up watch.html. */
export function runWatchPage() {
  translateStatic();
  const handle = createHandle();
  const log = logger(handle);
  const params = pageParams();
  const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
  const elements = { audio: $('audio'), camera: $('camera'), screen: $('screen') };

  handle.stop = async () => {
    setState(handle, 'stopped');
    await deleteResource(handle.resource, params.token, log);
    handle.resource = null;
    if (handle.pc) handle.pc.close();
    $('start').disabled = false;
    $('stop').disabled = true;
  };

  const start = async () => {
    $('start').disabled = true;
    $('error').hidden = true;
    handle.error = null;
    try {
      if (!params.room) throw { status: null, title: 'missing room parameter', detail: null, key: 'w_missing_room' };
      const config = await iceConfig(endpointFor('whep', params.room), params.token, { relay: params.relay, log });
      const pc = new RTCPeerConnection(config);
      handle.pc = pc;
      trackConnectionState(handle, log);
      const transceivers = [
        pc.addTransceiver('audio', { direction: 'recvonly' }),
        pc.addTransceiver('video', { direction: 'recvonly' }),
        pc.addTransceiver('video', { direction: 'recvonly' }),
      ];
      if (params.codec) transceivers.slice(1).forEach((t) => preferCodec(t, params.codec, params.profile));
      pc.addEventListener('track', (ev) => {
        const role = ROLES[transceivers.indexOf(ev.transceiver)];
        const el = role && elements[role];
        log(`track ${ev.track.kind} mid=${ev.transceiver.mid} -> ${role ?? '?'}`);
        if (!el) return;
        el.srcObject = new MediaStream([ev.track]);
        el.play().catch((e) => log(`play() ${role}: ${e}`));
      });
      $('stop').disabled = false;
      await negotiate(handle, endpointFor('whep', params.room), params.token, log);
    } catch (e) {
      const problem = asProblem(e);
      log(`failed: ${problem.title} ${problem.detail ?? ''}`);
      showError(handle, problem);
      setState(handle, 'failed');
      $('start').disabled = false;
    }
  };

  $('start').addEventListener('click', start);
  $('stop').addEventListener('click', () => handle.stop());
  $('room').textContent = params.room || '—';
  if (params.autostart) start();
}

/**
 * A plain-JSON summary of pc.getStats(), easy to read over WebDriver:
 * {
 *   state, connectionState, iceConnectionState, mids,
 *   inboundVideo:  [{ mid, role, ssrc, codec, framesDecoded, framesReceived, keyFramesDecoded,
 *                     frameWidth, frameHeight, framesPerSecond, packetsReceived, packetsLost,
 *                     bytesReceived, nackCount, pliCount, freezeCount,
 *                     totalFreezesDuration }],
 *   inboundAudio:  [{ mid, role, ssrc, codec, packetsReceived, packetsLost, bytesReceived,
 *                     totalSamplesReceived, audioLevel, concealedSamples }],
 *   outboundVideo: [{ mid, role, rid, ssrc, codec, bytesSent, packetsSent, framesEncoded,
 *                     frameWidth, frameHeight, framesPerSecond, active,
 *                     qualityLimitationReason }],
 *   outboundAudio: [{ mid, role, ssrc, codec, bytesSent, packetsSent }],
 *   candidatePair: null | { state, local, remote, localType, localRelayProtocol,
 *                           currentRoundTripTime, availableOutgoingBitrate }
 *     (localType "host" | "srflx" | "prflx" | "relay"; localRelayProtocol, for a relay
 *     candidate, how the browser reaches the TURN server: "udp" | "tcp" | "tls")
 * }
 * Numbers absent from the browser's stats are 0; codec is a mimeType such as
 * "video/VP8" (null until known). Arrays are sorted by mid, then rid.
 */
export async function summarizeStats(pc, handle = null) {
  const out = {
    state: handle?.state ?? null,
    connectionState: pc?.connectionState ?? null,
    iceConnectionState: pc?.iceConnectionState ?? null,
    mids: handle?.mids ?? null,
    inboundVideo: [],
    inboundAudio: [],
    outboundVideo: [],
    outboundAudio: [],
    candidatePair: null,
  };
  if (!pc) return out;
  const report = await pc.getStats();
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  const codecOf = (s) => (s.codecId && byId.get(s.codecId)?.mimeType) || null;
  const n = (v) => (typeof v === 'number' ? v : 0);
  const roleOf = (mid) => {
    if (mid == null || !handle) return null;
    return ROLES.find((r) => handle.mids[r] === mid) ?? null;
  };
  report.forEach((s) => {
    const mid = s.mid ?? null;
    const base = { mid, role: roleOf(mid), ssrc: s.ssrc, codec: codecOf(s) };
    if (s.type === 'inbound-rtp' && s.kind === 'video') {
      out.inboundVideo.push({
        ...base,
        framesDecoded: n(s.framesDecoded),
        framesReceived: n(s.framesReceived),
        keyFramesDecoded: n(s.keyFramesDecoded),
        frameWidth: n(s.frameWidth),
        frameHeight: n(s.frameHeight),
        framesPerSecond: n(s.framesPerSecond),
        packetsReceived: n(s.packetsReceived),
        packetsLost: n(s.packetsLost),
        bytesReceived: n(s.bytesReceived),
        nackCount: n(s.nackCount),
        pliCount: n(s.pliCount),
        freezeCount: n(s.freezeCount),
        // Seconds spent frozen (the rural-link tests' freeze share).
        totalFreezesDuration: n(s.totalFreezesDuration),
      });
    } else if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      out.inboundAudio.push({
        ...base,
        packetsReceived: n(s.packetsReceived),
        packetsLost: n(s.packetsLost),
        bytesReceived: n(s.bytesReceived),
        totalSamplesReceived: n(s.totalSamplesReceived),
        audioLevel: n(s.audioLevel),
        // Grows with what is heard (a muted class: not at all).
        totalAudioEnergy: n(s.totalAudioEnergy),
        concealedSamples: n(s.concealedSamples),
      });
    } else if (s.type === 'outbound-rtp' && s.kind === 'video') {
      out.outboundVideo.push({
        ...base,
        rid: s.rid ?? null,
        bytesSent: n(s.bytesSent),
        packetsSent: n(s.packetsSent),
        framesEncoded: n(s.framesEncoded),
        frameWidth: n(s.frameWidth),
        frameHeight: n(s.frameHeight),
        framesPerSecond: n(s.framesPerSecond),
        active: s.active ?? null,
        qualityLimitationReason: s.qualityLimitationReason ?? null,
      });
    } else if (s.type === 'outbound-rtp' && s.kind === 'audio') {
      out.outboundAudio.push({ ...base, bytesSent: n(s.bytesSent), packetsSent: n(s.packetsSent) });
    }
  });
  const transport = [...byId.values()].find((s) => s.type === 'transport' && s.selectedCandidatePairId);
  const pair = transport && byId.get(transport.selectedCandidatePairId);
  if (pair) {
    const cand = (id) => {
      const c = byId.get(id);
      return c ? `${c.address ?? '?'}:${c.port} ${c.protocol} ${c.candidateType}` : null;
    };
    out.candidatePair = {
      state: pair.state,
      local: cand(pair.localCandidateId),
      remote: cand(pair.remoteCandidateId),
      localType: byId.get(pair.localCandidateId)?.candidateType ?? null,
      localRelayProtocol: byId.get(pair.localCandidateId)?.relayProtocol ?? null,
      currentRoundTripTime: n(pair.currentRoundTripTime),
      availableOutgoingBitrate: n(pair.availableOutgoingBitrate),
    };
  }
  const key = (a) => `${String(a.mid ?? '').padStart(4, '0')}/${a.rid ?? ''}`;
  for (const list of [out.inboundVideo, out.inboundAudio, out.outboundVideo, out.outboundAudio]) {
    list.sort((a, b) => key(a).localeCompare(key(b)));
  }
  return out;
}
