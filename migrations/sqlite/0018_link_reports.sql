-- Link reports per classroom per lesson (issue 19 item 6): one row per participant ("c:12",
-- "t:3") of a lesson, merged from both sources and written off the media path in batches:
-- the media side's tally of what it sent the participant's viewer sessions (connected time,
-- time at each simulcast layer rank and audio only, bytes, loss / RTT / jitter weighted by
-- time: `figure × ms` sums over the ms the figure was known), and the page's own `getStats`
-- (frames decoded, freezes, audio concealment, bytes received) over the time its reports
-- cover. Every column is a running total; the means are computed when read.
CREATE TABLE link_reports (
    id INTEGER PRIMARY KEY,
    lesson_id INTEGER NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    part TEXT NOT NULL,
    media_ms BIGINT NOT NULL DEFAULT 0,
    bytes_out BIGINT NOT NULL DEFAULT 0,
    layer_high_ms BIGINT NOT NULL DEFAULT 0,
    layer_mid_ms BIGINT NOT NULL DEFAULT 0,
    layer_low_ms BIGINT NOT NULL DEFAULT 0,
    audio_only_ms BIGINT NOT NULL DEFAULT 0,
    loss_bp_ms BIGINT NOT NULL DEFAULT 0,
    loss_known_ms BIGINT NOT NULL DEFAULT 0,
    rtt_ms_ms BIGINT NOT NULL DEFAULT 0,
    rtt_known_ms BIGINT NOT NULL DEFAULT 0,
    jitter_us_ms BIGINT NOT NULL DEFAULT 0,
    jitter_known_ms BIGINT NOT NULL DEFAULT 0,
    page_ms BIGINT NOT NULL DEFAULT 0,
    frames_decoded BIGINT NOT NULL DEFAULT 0,
    freeze_count BIGINT NOT NULL DEFAULT 0,
    freeze_ms BIGINT NOT NULL DEFAULT 0,
    concealed_samples BIGINT NOT NULL DEFAULT 0,
    total_samples BIGINT NOT NULL DEFAULT 0,
    bytes_received BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    UNIQUE (lesson_id, part)
);
