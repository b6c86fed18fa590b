-- Recordings API and retention (issue 20 item 3). How many days a school keeps its lessons'
-- recordings after they end: NULL follows `[recording] retention_days` (0 there keeps them).
ALTER TABLE schools ADD COLUMN retention_days INTEGER;

-- When the retention sweep deleted a recording's files (the row stays, so what refers to it
-- keeps its meaning, and the audit log says who and why). Lists leave deleted ones out.
ALTER TABLE recordings ADD COLUMN deleted_at BIGINT;
CREATE INDEX recordings_started ON recordings (started_at);
