-- Attendance that counts classrooms (issue 22 item 8): when each classroom of a lesson was
-- connected to its media room. One row per stay: `joined_at` when the classroom's first
-- session (WHIP or WHEP) started, `left_at` when its last one ended (NULL while connected).
-- People (teachers, observers, inspectors) are never written here. A server restart closes
-- the rows it finds open at `joined_at` (how long they stayed is unknown).
CREATE TABLE lesson_presence (
    id INTEGER PRIMARY KEY,
    lesson_id INTEGER NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    classroom_id INTEGER NOT NULL REFERENCES classrooms (id),
    joined_at BIGINT NOT NULL,
    left_at BIGINT,
    CHECK (left_at IS NULL OR left_at >= joined_at)
);
CREATE INDEX lesson_presence_lesson ON lesson_presence (lesson_id, classroom_id);
