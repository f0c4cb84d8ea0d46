ALTER TABLE nodes DROP COLUMN IF EXISTS heartbeat_timeout_ms;
