-- Sampling inspection (抽检, issue 21 item 6): rounds at a level of the organisation tree, the
-- reviewer pool, the seeded stratified draw (samples under pseudonyms), the blinded reviews
-- and the append-only audit log of every grade and change.

-- Urban or rural (城区/乡村): one of the strata a draw covers.
ALTER TABLE schools ADD COLUMN area TEXT NOT NULL DEFAULT 'unknown'
    CHECK (area IN ('urban', 'rural', 'unknown'));

-- A round at a level (county, city, province) anchored at a county row of that place; its
-- seed is stored when it is made and shown, so the draw can be repeated.
CREATE TABLE inspection_rounds (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL CHECK (name <> ''),
    level TEXT NOT NULL CHECK (level IN ('county', 'city', 'province')),
    region_id BIGINT NOT NULL REFERENCES regions (id),
    -- What is drawn: submitted observations, or (once teacher records store them)
    -- ability-point submissions.
    source TEXT NOT NULL DEFAULT 'observation' CHECK (source IN ('observation', 'ability_point')),
    ratio DOUBLE PRECISION NOT NULL CHECK (ratio > 0 AND ratio <= 1),
    seed BIGINT NOT NULL,
    reviews_per_sample BIGINT NOT NULL DEFAULT 2 CHECK (reviews_per_sample BETWEEN 1 AND 5),
    pass_mark DOUBLE PRECISION NOT NULL DEFAULT 60,
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'drawn')),
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    drawn_at BIGINT,
    population BIGINT
);

CREATE TABLE inspection_reviewers (
    round_id BIGINT NOT NULL REFERENCES inspection_rounds (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    expert BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (round_id, user_id)
);

-- One drawn item. `unit_key`/`unit_name`: the unit one level below the round it belongs to
-- (a school, a county, a city), for the pass rate per unit; never shown to a reviewer.
CREATE TABLE inspection_samples (
    id BIGSERIAL PRIMARY KEY,
    round_id BIGINT NOT NULL REFERENCES inspection_rounds (id),
    source_id BIGINT NOT NULL,
    pseudonym TEXT NOT NULL,
    stage TEXT NOT NULL,
    subject TEXT NOT NULL,
    school_kind TEXT NOT NULL,
    area TEXT NOT NULL,
    unit_key TEXT NOT NULL,
    unit_name TEXT NOT NULL,
    school_id BIGINT NOT NULL REFERENCES schools (id),
    appealed BIGINT NOT NULL DEFAULT 0,
    UNIQUE (round_id, source_id),
    UNIQUE (round_id, pseudonym)
);

-- A review of a sample by one reviewer: the first ones at the draw, a third on a dispute or
-- an appeal. `reviewer_id` is empty when no reviewer in the pool may take it.
CREATE TABLE inspection_reviews (
    id BIGSERIAL PRIMARY KEY,
    sample_id BIGINT NOT NULL REFERENCES inspection_samples (id),
    reviewer_id BIGINT REFERENCES users (id),
    ordinal BIGINT NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('draw', 'dispute', 'appeal')),
    score DOUBLE PRECISION,
    comment TEXT NOT NULL DEFAULT '',
    graded_at BIGINT,
    created_at BIGINT NOT NULL,
    UNIQUE (sample_id, ordinal)
);
CREATE INDEX inspection_reviews_by_reviewer ON inspection_reviews (reviewer_id);

-- Every grade and change, append-only: the triggers refuse UPDATE and DELETE, and no code
-- path issues either.
CREATE TABLE inspection_audit (
    id BIGSERIAL PRIMARY KEY,
    round_id BIGINT NOT NULL REFERENCES inspection_rounds (id),
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX inspection_audit_by_round ON inspection_audit (round_id, id);
CREATE FUNCTION inspection_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'inspection_audit is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER inspection_audit_no_update BEFORE UPDATE OR DELETE ON inspection_audit
    FOR EACH ROW EXECUTE FUNCTION inspection_audit_append_only();
CREATE TRIGGER inspection_audit_no_truncate BEFORE TRUNCATE ON inspection_audit
    FOR EACH STATEMENT EXECUTE FUNCTION inspection_audit_append_only();
