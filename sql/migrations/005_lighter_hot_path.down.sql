CREATE INDEX IF NOT EXISTS jobs_state_queue ON jobs (state, queue);
