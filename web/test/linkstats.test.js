//! node --test: the page's link figures (web/lib/linkstats.js): getStats reports folded into the link-stats body (integers only, never negative, freezes within the time, concealment within the samples) and the console's live link wording.
// @ts-check
import test from 'node:test';
import assert from 'node:assert/strict';
import { pageStats, connId, liveLink } from '../lib/linkstats.js';

test('inbound audio and video fold into one body', () => {
  const reports = [
    { type: 'inbound-rtp', kind: 'video', framesDecoded: 290, freezeCount: 1, totalFreezesDuration: 0.3004, bytesReceived: 1_000_000 },
    { type: 'inbound-rtp', kind: 'video', framesDecoded: 10, freezeCount: 0, totalFreezesDuration: 0, bytesReceived: 5_000 },
    { type: 'inbound-rtp', kind: 'audio', concealedSamples: 480, totalSamplesReceived: 480_000, bytesReceived: 80_000 },
    { type: 'outbound-rtp', kind: 'video', bytesSent: 9 },
    { type: 'candidate-pair', bytesReceived: 7 },
  ];
  assert.deepEqual(pageStats(reports, 'pc-1', 10_000.4), {
    conn: 'pc-1', duration_ms: 10_000, frames_decoded: 300, freeze_count: 1, freeze_ms: 300,
    concealed_samples: 480, total_samples: 480_000, bytes_received: 1_085_000,
  });
});

test('missing, negative or odd figures become 0, and the bounds hold', () => {
  const b = pageStats([{ type: 'inbound-rtp', kind: 'video', framesDecoded: -3, totalFreezesDuration: 99 },
    { type: 'inbound-rtp', kind: 'audio', concealedSamples: 10, totalSamplesReceived: Number.NaN }, null], 'x', -1);
  assert.equal(b.frames_decoded, 0);
  assert.equal(b.duration_ms, 0);
  assert.equal(b.freeze_ms, 0, 'never more than the time counted');
  assert.equal(b.concealed_samples, 0, 'never more than the samples received');
  for (const v of Object.values(b)) if (typeof v === 'number') assert.ok(Number.isInteger(v) && v >= 0);
});

test('a connection id the server accepts', () => {
  for (const r of [0, 0.5, 0.999999]) assert.match(connId(() => r), /^[A-Za-z0-9_-]{1,64}$/);
});

test('the console words the layer or audio only', () => {
  assert.deepEqual(liveLink({ kbps_out: 1155.6, loss_pct: 0, rtt_ms: 42.2, video_layer: 0, audio_only: false }),
    { kbps: 1155.6, loss: 0, rtt: 42.2, layer: 'link_layer_0' });
  assert.equal(liveLink({ video_layer: 2, audio_only: true }).layer, 'link_layer_audio');
  assert.deepEqual(liveLink(null), { kbps: null, loss: null, rtt: null, layer: null });
});
