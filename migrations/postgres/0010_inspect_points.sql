-- Sampling inspection of ability-point submissions (issue 21 item 6): a round that draws
-- micro-ability points (微能力点) names its term; a submission (a teacher's point in a term
-- with its evidence items) gets a stable id the draw and its samples refer to; a review of
-- one is graded 优秀/合格/不合格 instead of a score.

-- The term an ability-point round draws from (empty for observation rounds).
ALTER TABLE inspection_rounds ADD COLUMN term TEXT;

-- The point grade of a review of an ability-point submission.
ALTER TABLE inspection_reviews ADD COLUMN grade TEXT
    CHECK (grade IN ('excellent', 'pass', 'fail'));

-- One teacher's point in one term: the unit a round draws (its evidence items are the rows
-- of ability_evidence with the same teacher, term and point). Made at a draw, kept after.
CREATE TABLE ability_submissions (
    id BIGSERIAL PRIMARY KEY,
    teacher_id BIGINT NOT NULL REFERENCES teachers (id),
    term TEXT NOT NULL,
    point TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (teacher_id, term, point)
);
