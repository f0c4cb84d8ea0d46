-- jobs_finished (state, scheduled_at) took an entry for every job that reached a final state,
-- and no query reads it any more: the pruner finds old jobs by their finish time, one branch per
-- state (completed_at and discarded_at have their indexes from 003). Cancelled jobs get the
-- finish-time index they lacked; few jobs are cancelled, so it costs the hot path nothing.
-- One index entry fewer per completed job (bench W2 on PostgreSQL 15).
DROP INDEX IF EXISTS jobs_finished;
CREATE INDEX IF NOT EXISTS jobs_cancelled_at ON jobs (cancelled_at) WHERE state = 'cancelled';
