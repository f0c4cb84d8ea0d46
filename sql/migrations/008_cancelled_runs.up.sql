-- A job cancelled while it runs is cancelled in its row at once, but its run goes on until the
-- node running it has heard of the cancel (a notification, or its next control poll) and the
-- run has honoured its abort signal or had its thread terminated after that node's
-- cancelGracePeriod. A retry in between made the job available, and it ran again beside its
-- old run: the same job twice at once. The cancel now writes when the old run will have ended
-- at the latest (cancelled_run_until), from what that node writes with its heartbeat
-- (stop_within_ms: its control poll + cancelGracePeriod + a second), and a retry before then
-- schedules the job for that time. The node running the old run makes the job available as soon
-- as that run has ended. NULL (a node of an older version): the defaults, 7 s.
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS stop_within_ms integer;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS cancelled_run_until timestamptz;
