-- The automatic S-T draft as a background job (issue 21): one job per observation, made
-- off the request by observe::stdraft_jobs. `state`: pending → running → done or failed
-- (`error_kind` a problem type, `error` the reason); a job a restart found pending or running
-- runs again. At most one job per recording runs at a time. `progress` is in thousandths.
-- The finished draft itself goes to st_drafts (migration 0008), as before.
CREATE TABLE st_draft_jobs (
    observation_id BIGINT PRIMARY KEY REFERENCES observations (id) ON DELETE CASCADE,
    recording_id BIGINT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'running', 'done', 'failed')),
    progress BIGINT NOT NULL DEFAULT 0,
    error_kind TEXT,
    error TEXT,
    requested_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX st_draft_jobs_state ON st_draft_jobs (state);
CREATE INDEX st_draft_jobs_recording ON st_draft_jobs (recording_id);
