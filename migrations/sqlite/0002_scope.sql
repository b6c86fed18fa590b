-- Organisation scope (issue 17): every user acts inside one place of the tree
-- province → city → county → school. `scope` names the level; `region_id` anchors the
-- province, city and county levels (its province/city/county columns name the place);
-- `school_id` anchors the school level. Existing users: those with a school get that school,
-- the others keep what they had (the whole installation).
ALTER TABLE users ADD COLUMN scope TEXT NOT NULL DEFAULT 'school'
    CHECK (scope IN ('global', 'province', 'city', 'county', 'school'));
ALTER TABLE users ADD COLUMN region_id INTEGER REFERENCES regions (id);
-- Media tokens carry the version they were issued under; disabling a user, a new password
-- or a new scope raises it, and WHIP/WHEP refuse tokens of an older version.
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
UPDATE users SET scope = 'global' WHERE school_id IS NULL;

-- How many sites a 名师课堂 of this hub school may reach.
ALTER TABLE schools ADD COLUMN max_master_sites INTEGER NOT NULL DEFAULT 500;

-- Who did what to which object, for the changes that need a trail (pairing overrides,
-- lesson edits and deletions, revocations).
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);

CREATE INDEX lessons_by_end ON lessons (ends_at);
CREATE INDEX lessons_by_teacher ON lessons (hub_teacher_id, starts_at);
CREATE INDEX lesson_sites_by_classroom ON lesson_sites (classroom_id);
