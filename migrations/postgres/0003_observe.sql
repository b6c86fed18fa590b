-- Lesson observation (issue 21): rubrics as versioned data, observations of a lesson by an
-- observer (draft → submitted → reviewed), rubric item scores, time-stamped comments, S-T and
-- FIAS codes, and the audited amendments of a submitted observation.

-- Every edit of a rubric is a new row (version + 1 of the same key); scores point at the
-- version they were made under, so editing a rubric never changes an existing score.
CREATE TABLE rubrics (
    id BIGSERIAL PRIMARY KEY,
    rubric_key TEXT NOT NULL,
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (rubric_key, version)
);

CREATE TABLE observations (
    id BIGSERIAL PRIMARY KEY,
    lesson_id BIGINT NOT NULL REFERENCES lessons (id),
    observer_id BIGINT NOT NULL REFERENCES users (id),
    -- Comma-separated, in the order asked: rubric, st, fias.
    methods TEXT NOT NULL,
    rubric_id BIGINT REFERENCES rubrics (id),
    interval_s BIGINT NOT NULL DEFAULT 30,
    state TEXT NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'submitted', 'reviewed')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    submitted_at BIGINT,
    reviewed_at BIGINT
);
CREATE INDEX observations_by_lesson ON observations (lesson_id);
CREATE INDEX observations_by_observer ON observations (observer_id, created_at);

CREATE TABLE observation_scores (
    observation_id BIGINT NOT NULL REFERENCES observations (id) ON DELETE CASCADE,
    item_key TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (observation_id, item_key)
);

-- `at_ms`: the moment on the lesson's timeline (ms from its start) the comment is about.
CREATE TABLE observation_comments (
    id BIGSERIAL PRIMARY KEY,
    observation_id BIGINT NOT NULL REFERENCES observations (id) ON DELETE CASCADE,
    at_ms BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX observation_comments_by_time ON observation_comments (observation_id, at_ms);

-- The codes of one method, in order, one character each (S-T: T or S; FIAS: 1-9, 0 for
-- category 10). Appended to while a draft; the only other change while a draft is cutting
-- the last samples (a correction); after submission only through an amendment.
CREATE TABLE observation_codes (
    observation_id BIGINT NOT NULL REFERENCES observations (id) ON DELETE CASCADE,
    method TEXT NOT NULL CHECK (method IN ('st', 'fias')),
    codes TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (observation_id, method)
);

-- Append-only: each change to a submitted observation with its reason, what it replaced and
-- what it became (JSON), so the original stays readable.
CREATE TABLE observation_amendments (
    id BIGSERIAL PRIMARY KEY,
    observation_id BIGINT NOT NULL REFERENCES observations (id),
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (reason <> ''),
    old_value TEXT NOT NULL,
    new_value TEXT NOT NULL
);
CREATE INDEX observation_amendments_by_observation ON observation_amendments (observation_id);
