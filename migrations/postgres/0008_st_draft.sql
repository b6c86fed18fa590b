-- The automatic S-T draft (issue 21 item 3): what the server proposes for an observation's
-- S-T coding from the lesson's recording (voice activity on the hub teacher's track at each
-- sample instant). One per observation, replaced when made again; the observer's own codes
-- stay in observation_codes and are never written from here.
CREATE TABLE st_drafts (
    observation_id BIGINT PRIMARY KEY REFERENCES observations (id) ON DELETE CASCADE,
    recording_id BIGINT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    interval_s BIGINT NOT NULL,
    -- One letter per sample instant, T or S.
    codes TEXT NOT NULL,
    -- JSON: the decision rule and per sample [at_ms, code, teacher ‰ voiced, classroom ‰ voiced].
    samples TEXT NOT NULL,
    -- Whose track was listened to (the hub teacher's name as the recording names it).
    teacher TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
