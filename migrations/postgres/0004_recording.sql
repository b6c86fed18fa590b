-- Lesson recording (issue 20). Whether a school's timetable lessons are recorded when
-- `[recording] rooms = "lessons"` (the default); on unless the school turns it off.
ALTER TABLE schools ADD COLUMN record_lessons BIGINT NOT NULL DEFAULT 1;

-- One row per recording: a lesson's (lesson_id set) or a plain room's. `state`: recording
-- while the capture is written, stopped once it is closed, failed when a write error (a full
-- disk) stopped it early (`error` says why). `capture_path` is where the capture file lives
-- (record::storage); the processor's files go beside it.
CREATE TABLE recordings (
    id BIGSERIAL PRIMARY KEY,
    room TEXT NOT NULL,
    lesson_id BIGINT REFERENCES lessons (id) ON DELETE SET NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    state TEXT NOT NULL DEFAULT 'recording'
        CHECK (state IN ('recording', 'stopped', 'failed')),
    capture_path TEXT NOT NULL DEFAULT '',
    error TEXT
);
CREATE INDEX recordings_lesson ON recordings (lesson_id);

-- Processing (record::recover): NULL until it starts; processing, ready (manifest_path set)
-- or failed (processing_error says why). Recovery at start-up picks up every stopped or failed
-- recording not yet ready or failed, and every one a crash left in `recording`.
ALTER TABLE recordings ADD COLUMN processing TEXT
    CHECK (processing IN ('processing', 'ready', 'failed'));
ALTER TABLE recordings ADD COLUMN processing_error TEXT;
ALTER TABLE recordings ADD COLUMN manifest_path TEXT;
