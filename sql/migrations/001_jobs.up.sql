-- The jobs table, its states and the partial index the fetch query uses.
-- The runner sets search_path to the configured schema, so no schema name appears here.

CREATE TYPE job_state AS ENUM (
  'scheduled', 'available', 'executing', 'retryable', 'completed', 'discarded', 'cancelled'
);

CREATE TABLE jobs (
  id            bigserial PRIMARY KEY,
  state         job_state NOT NULL DEFAULT 'available',
  queue         text NOT NULL DEFAULT 'default',
  worker        text NOT NULL,
  args          jsonb NOT NULL DEFAULT '{}'::jsonb,
  meta          jsonb NOT NULL DEFAULT '{}'::jsonb,
  tags          text[] NOT NULL DEFAULT '{}',
  errors        jsonb NOT NULL DEFAULT '[]'::jsonb,
  result        jsonb,
  attempt       integer NOT NULL DEFAULT 0,
  max_attempts  integer NOT NULL DEFAULT 20,
  priority      smallint NOT NULL DEFAULT 0,
  inserted_at   timestamptz NOT NULL DEFAULT now(),
  scheduled_at  timestamptz NOT NULL DEFAULT now(),
  attempted_at  timestamptz,
  attempted_by  text[],
  completed_at  timestamptz,
  cancelled_at  timestamptz,
  discarded_at  timestamptz,
  CONSTRAINT worker_length CHECK (char_length(worker) BETWEEN 1 AND 255),
  CONSTRAINT queue_length CHECK (char_length(queue) BETWEEN 1 AND 255),
  CONSTRAINT attempt_range CHECK (attempt >= 0 AND attempt <= max_attempts + 1),
  CONSTRAINT max_attempts_positive CHECK (max_attempts > 0),
  CONSTRAINT priority_range CHECK (priority BETWEEN 0 AND 3)
);

-- Matches the fetch query exactly: WHERE state = 'available' AND queue = $1
-- ORDER BY priority, scheduled_at, id. Finished rows never enter it, so a long history
-- costs the fetch nothing.
CREATE INDEX jobs_fetch ON jobs (queue, priority, scheduled_at, id) WHERE state = 'available';

-- The stager's scan: jobs waiting for their time.
CREATE INDEX jobs_staging ON jobs (scheduled_at) WHERE state IN ('scheduled', 'retryable');

-- The pruner's and the lifeline's scans, and state counts for status and metrics.
CREATE INDEX jobs_state_queue ON jobs (state, queue);
CREATE INDEX jobs_finished ON jobs (state, scheduled_at) WHERE state IN ('completed', 'cancelled', 'discarded');
CREATE INDEX jobs_executing ON jobs ((attempted_by[1])) WHERE state = 'executing';
