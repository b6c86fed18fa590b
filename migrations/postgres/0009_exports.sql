-- Exports of processed recordings (issue 20 item 4): showcase/premium MP4 and the composite
-- 一屏三画面, made by background jobs (school::exports). `state`: queued → running → done or
-- failed (`error` says why); a job a restart found running is queued again. `progress` is in
-- thousandths. `title` is the title card's fields as JSON; `outcome` the finished export's
-- report as JSON (file names, size, bitrate, speed).
CREATE TABLE export_jobs (
    id BIGSERIAL PRIMARY KEY,
    recording_id BIGINT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    preset TEXT NOT NULL CHECK (preset IN ('showcase', 'premium', 'composite')),
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'done', 'failed')),
    progress BIGINT NOT NULL DEFAULT 0,
    title TEXT NOT NULL DEFAULT '{}',
    outcome TEXT,
    error TEXT,
    requested_by TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX export_jobs_recording ON export_jobs (recording_id);
CREATE INDEX export_jobs_state ON export_jobs (state);
