-- A recording stopped by hand stays stopped (issue 20): one row per lesson whose recording a
-- teacher or admin switched off. `school::recording::resume` (a restart) and the bell never
-- record such a lesson again by themselves; a start by hand deletes the row.
CREATE TABLE recording_stops (
    lesson_id INTEGER PRIMARY KEY REFERENCES lessons (id) ON DELETE CASCADE,
    stopped_at BIGINT NOT NULL,
    stopped_by TEXT NOT NULL
);
