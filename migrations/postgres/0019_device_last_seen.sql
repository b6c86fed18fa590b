-- A classroom device's last sign of life (issue 22 item 1): when its token was last used,
-- epoch ms, written at most once a minute per device by the credential check (one UPDATE
-- guarded by the old value, so concurrent requests write it once). NULL = never used.
ALTER TABLE device_tokens ADD COLUMN last_seen_at BIGINT;
