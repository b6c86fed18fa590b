-- Teacher records (issue 21 item 5): micro-ability (微能力点) evidence. A teacher picks
-- points of the configured list (config/ability_points.toml) for a term and gives evidence
-- for each: a clip of a recording (in/out ms) and/or uploaded files. Each evidence item is
-- graded 优秀/合格/不合格 (excellent/pass/fail); the point's grade is computed, never stored.
CREATE TABLE ability_evidence (
    id BIGSERIAL PRIMARY KEY,
    teacher_id BIGINT NOT NULL REFERENCES teachers (id),
    term TEXT NOT NULL,
    point TEXT NOT NULL,
    recording_id BIGINT REFERENCES recordings (id) ON DELETE SET NULL,
    in_ms BIGINT,
    out_ms BIGINT,
    note TEXT NOT NULL DEFAULT '',
    grade TEXT CHECK (grade IN ('excellent', 'pass', 'fail')),
    graded_by TEXT,
    graded_at BIGINT,
    created_at BIGINT NOT NULL,
    -- A clip's points stay when its recording is removed (retention): the record then shows
    -- the clip as gone instead of losing the evidence.
    CHECK ((in_ms IS NULL AND out_ms IS NULL) OR (in_ms >= 0 AND out_ms > in_ms))
);
CREATE INDEX ability_evidence_by_teacher ON ability_evidence (teacher_id, term);

-- Files of an evidence item, stored under `<data dir>/evidence/<evidence id>/<id>`; `kind`
-- is what the bytes are (checked by content, not by the name given).
CREATE TABLE ability_files (
    id BIGSERIAL PRIMARY KEY,
    evidence_id BIGINT NOT NULL REFERENCES ability_evidence (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    mime TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX ability_files_by_evidence ON ability_files (evidence_id);
