DROP INDEX IF EXISTS jobs_cancelled_at;
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (state, scheduled_at) WHERE state IN ('completed', 'cancelled', 'discarded');
