-- The school side: regions, schools, classrooms, teachers, people, devices, pairings,
-- the term timetable and the lessons made from it. Times are unix milliseconds (UTC);
-- slot times are local wall-clock "HH:MM" in the configured school time zone.

CREATE TABLE regions (
    id BIGSERIAL PRIMARY KEY,
    province TEXT NOT NULL,
    city TEXT NOT NULL,
    county TEXT NOT NULL,
    UNIQUE (province, city, county)
);

CREATE TABLE schools (
    id BIGSERIAL PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('hub', 'partner')),
    region_id BIGINT REFERENCES regions (id)
);

CREATE TABLE classrooms (
    id BIGSERIAL PRIMARY KEY,
    school_id BIGINT NOT NULL REFERENCES schools (id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('hub', 'interactive', 'receive_only')),
    device TEXT NOT NULL DEFAULT '',
    UNIQUE (school_id, name)
);

CREATE TABLE teachers (
    id BIGSERIAL PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    school_id BIGINT NOT NULL REFERENCES schools (id),
    subjects TEXT NOT NULL DEFAULT ''
);

CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'teacher', 'observer', 'inspector')),
    password_hash TEXT NOT NULL,
    school_id BIGINT REFERENCES schools (id),
    teacher_id BIGINT REFERENCES teachers (id),
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE login_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE device_tokens (
    id BIGSERIAL PRIMARY KEY,
    classroom_id BIGINT NOT NULL REFERENCES classrooms (id),
    label TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE pairings (
    id BIGSERIAL PRIMARY KEY,
    hub_school_id BIGINT NOT NULL REFERENCES schools (id),
    partner_school_id BIGINT NOT NULL REFERENCES schools (id),
    subject TEXT NOT NULL,
    grade TEXT NOT NULL,
    term TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    UNIQUE (hub_school_id, partner_school_id, subject, grade, term)
);

CREATE TABLE terms (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    starts_on TEXT NOT NULL,
    ends_on TEXT NOT NULL
);

CREATE TABLE slots (
    id BIGSERIAL PRIMARY KEY,
    term_id BIGINT NOT NULL REFERENCES terms (id),
    weekday BIGINT NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    period BIGINT NOT NULL,
    starts TEXT NOT NULL,
    ends TEXT NOT NULL,
    subject TEXT NOT NULL,
    grade TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('delivery', 'master', 'sync')),
    hub_teacher_id BIGINT NOT NULL REFERENCES teachers (id),
    hub_classroom_id BIGINT NOT NULL REFERENCES classrooms (id)
);

CREATE TABLE slot_sites (
    slot_id BIGINT NOT NULL REFERENCES slots (id) ON DELETE CASCADE,
    classroom_id BIGINT NOT NULL REFERENCES classrooms (id),
    assisting_teacher_id BIGINT REFERENCES teachers (id),
    PRIMARY KEY (slot_id, classroom_id)
);

CREATE TABLE lessons (
    id BIGSERIAL PRIMARY KEY,
    slot_id BIGINT REFERENCES slots (id) ON DELETE SET NULL,
    lesson_date TEXT,
    mode TEXT NOT NULL CHECK (mode IN ('delivery', 'master', 'sync')),
    title TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL,
    grade TEXT NOT NULL,
    textbook TEXT NOT NULL DEFAULT '',
    chapter TEXT NOT NULL DEFAULT '',
    hub_teacher_id BIGINT NOT NULL REFERENCES teachers (id),
    hub_classroom_id BIGINT NOT NULL REFERENCES classrooms (id),
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'scheduled'
        CHECK (state IN ('scheduled', 'open', 'live', 'ended')),
    ended_at BIGINT,
    UNIQUE (slot_id, lesson_date)
);

CREATE TABLE lesson_sites (
    lesson_id BIGINT NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    classroom_id BIGINT NOT NULL REFERENCES classrooms (id),
    assisting_teacher_id BIGINT REFERENCES teachers (id),
    PRIMARY KEY (lesson_id, classroom_id)
);

CREATE INDEX lessons_by_time ON lessons (starts_at);
CREATE INDEX slots_by_term_day ON slots (term_id, weekday);
