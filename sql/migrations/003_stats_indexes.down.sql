DROP INDEX IF EXISTS jobs_discarded_at;
DROP INDEX IF EXISTS jobs_completed_at;
