ALTER TABLE jobs DROP COLUMN IF EXISTS cancelled_run_until;
ALTER TABLE nodes DROP COLUMN IF EXISTS stop_within_ms;
