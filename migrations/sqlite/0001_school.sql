-- The school side: regions, schools, classrooms, teachers, people, devices, pairings,
-- the term timetable and the lessons made from it. Times are unix milliseconds (UTC);
-- slot times are local wall-clock "HH:MM" in the configured school time zone.

CREATE TABLE regions (
    id INTEGER PRIMARY KEY,
    province TEXT NOT NULL,
    city TEXT NOT NULL,
    county TEXT NOT NULL,
    UNIQUE (province, city, county)
);

CREATE TABLE schools (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('hub', 'partner')),
    region_id INTEGER REFERENCES regions (id)
);

CREATE TABLE classrooms (
    id INTEGER PRIMARY KEY,
    school_id INTEGER NOT NULL REFERENCES schools (id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('hub', 'interactive', 'receive_only')),
    device TEXT NOT NULL DEFAULT '',
    UNIQUE (school_id, name)
);

CREATE TABLE teachers (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    school_id INTEGER NOT NULL REFERENCES schools (id),
    subjects TEXT NOT NULL DEFAULT ''
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'teacher', 'observer', 'inspector')),
    password_hash TEXT NOT NULL,
    school_id INTEGER REFERENCES schools (id),
    teacher_id INTEGER REFERENCES teachers (id),
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE login_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE device_tokens (
    id INTEGER PRIMARY KEY,
    classroom_id INTEGER NOT NULL REFERENCES classrooms (id),
    label TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE pairings (
    id INTEGER PRIMARY KEY,
    hub_school_id INTEGER NOT NULL REFERENCES schools (id),
    partner_school_id INTEGER NOT NULL REFERENCES schools (id),
    subject TEXT NOT NULL,
    grade TEXT NOT NULL,
    term TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    UNIQUE (hub_school_id, partner_school_id, subject, grade, term)
);

CREATE TABLE terms (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    starts_on TEXT NOT NULL,
    ends_on TEXT NOT NULL
);

CREATE TABLE slots (
    id INTEGER PRIMARY KEY,
    term_id INTEGER NOT NULL REFERENCES terms (id),
    weekday INTEGER NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    period INTEGER NOT NULL,
    starts TEXT NOT NULL,
    ends TEXT NOT NULL,
    subject TEXT NOT NULL,
    grade TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('delivery', 'master', 'sync')),
    hub_teacher_id INTEGER NOT NULL REFERENCES teachers (id),
    hub_classroom_id INTEGER NOT NULL REFERENCES classrooms (id)
);

CREATE TABLE slot_sites (
    slot_id INTEGER NOT NULL REFERENCES slots (id) ON DELETE CASCADE,
    classroom_id INTEGER NOT NULL REFERENCES classrooms (id),
    assisting_teacher_id INTEGER REFERENCES teachers (id),
    PRIMARY KEY (slot_id, classroom_id)
);

CREATE TABLE lessons (
    id INTEGER PRIMARY KEY,
    slot_id INTEGER REFERENCES slots (id) ON DELETE SET NULL,
    lesson_date TEXT,
    mode TEXT NOT NULL CHECK (mode IN ('delivery', 'master', 'sync')),
    title TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL,
    grade TEXT NOT NULL,
    textbook TEXT NOT NULL DEFAULT '',
    chapter TEXT NOT NULL DEFAULT '',
    hub_teacher_id INTEGER NOT NULL REFERENCES teachers (id),
    hub_classroom_id INTEGER NOT NULL REFERENCES classrooms (id),
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'scheduled'
        CHECK (state IN ('scheduled', 'open', 'live', 'ended')),
    ended_at BIGINT,
    UNIQUE (slot_id, lesson_date)
);

CREATE TABLE lesson_sites (
    lesson_id INTEGER NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    classroom_id INTEGER NOT NULL REFERENCES classrooms (id),
    assisting_teacher_id INTEGER REFERENCES teachers (id),
    PRIMARY KEY (lesson_id, classroom_id)
);

CREATE INDEX lessons_by_time ON lessons (starts_at);
CREATE INDEX slots_by_term_day ON slots (term_id, weekday);
