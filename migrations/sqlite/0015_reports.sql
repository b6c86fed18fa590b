-- Reports a county sends upward and the lesson patrol (issue 22 items 6 and 7).
--
-- lesson_cancellations: a lesson called off before it opened (停课/调课). The lesson row
-- stays, so 开课率 counts it as scheduled and not held; joining it is refused.
-- lesson_sessions: each media session of a lesson as it opened and closed (part "t:3",
-- "c:12", "u:7"; publish 1 for WHIP, 0 for WHEP), written off the media path by the
-- school's session listener; held lessons, minutes taught and sites present are read from it.
-- lesson_link_grades: each participant's link grade whenever the quality pass reported a
-- change (good/fair/poor), for the link-quality report per school.
CREATE TABLE lesson_cancellations (
    lesson_id INTEGER PRIMARY KEY REFERENCES lessons (id) ON DELETE CASCADE,
    cancelled_at BIGINT NOT NULL,
    cancelled_by TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);

CREATE TABLE lesson_sessions (
    id INTEGER PRIMARY KEY,
    lesson_id INTEGER NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    part TEXT NOT NULL,
    publish BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX lesson_sessions_lesson ON lesson_sessions (lesson_id, part);

CREATE TABLE lesson_link_grades (
    id INTEGER PRIMARY KEY,
    lesson_id INTEGER NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    part TEXT NOT NULL,
    grade TEXT NOT NULL CHECK (grade IN ('good', 'fair', 'poor')),
    at BIGINT NOT NULL
);
CREATE INDEX lesson_link_grades_lesson ON lesson_link_grades (lesson_id);
