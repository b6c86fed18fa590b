//! The page's side of the link reports (issue 19 item 6): folds one RTCPeerConnection's `getStats()` reports into the figures `POST /api/lessons/{id}/link-stats` takes, and words a live link figure for the teacher console. Pure: no DOM, network or clock (the caller passes the reports and the time); must never send a float or a negative number (the server refuses them).
// @ts-check

/**
 * The link-stats body of one connection: its inbound video's frames and freezes, its inbound
 * audio's concealment, and all inbound bytes, cumulative since the connection started.
 * @param {Iterable<any>} reports the values of an RTCStatsReport
 * @param {string} conn the connection's id (1–64 of [A-Za-z0-9_-])
 * @param {number} durationMs how long the connection has been counted
 */
export function pageStats(reports, conn, durationMs) {
  const n = (/** @type {any} */ x) => (Number.isFinite(x) && x > 0 ? Math.round(x) : 0);
  const body = {
    conn,
    duration_ms: n(durationMs),
    frames_decoded: 0,
    freeze_count: 0,
    freeze_ms: 0,
    concealed_samples: 0,
    total_samples: 0,
    bytes_received: 0,
  };
  for (const r of reports) {
    if (!r || r.type !== 'inbound-rtp') continue;
    body.bytes_received += n(r.bytesReceived);
    if (r.kind === 'video') {
      body.frames_decoded += n(r.framesDecoded);
      body.freeze_count += n(r.freezeCount);
      body.freeze_ms += n((r.totalFreezesDuration ?? 0) * 1000);
    } else if (r.kind === 'audio') {
      body.concealed_samples += n(r.concealedSamples);
      body.total_samples += n(r.totalSamplesReceived);
    }
  }
  // The server holds freezes within the time counted and concealment within what came.
  body.freeze_ms = Math.min(body.freeze_ms, body.duration_ms);
  body.concealed_samples = Math.min(body.concealed_samples, body.total_samples);
  return body;
}

/** A fresh connection id (`rand` in [0, 1), e.g. Math.random). */
export function connId(/** @type {() => number} */ rand) {
  return `pc-${Math.floor(rand() * 2 ** 48).toString(36)}`;
}

/**
 * The live figures of one participant's link as the console shows them, from a `links` entry
 * of the lesson's live state: rate sent to it, loss, round trip, and the layer it gets (or
 * audio only). Returns translation keys and values; the page words them.
 * @param {any} l a LinkSummary
 * @returns {{ kbps: number | null, loss: number | null, rtt: number | null, layer: string | null }}
 */
export function liveLink(l) {
  const num = (/** @type {any} */ x) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
  let layer = null;
  if (l?.audio_only) layer = 'link_layer_audio';
  else if (typeof l?.video_layer === 'number') layer = `link_layer_${Math.min(2, Math.max(0, l.video_layer))}`;
  return { kbps: num(l?.kbps_out), loss: num(l?.loss_pct), rtt: num(l?.rtt_ms), layer };
}
