-- Node heartbeats (what the lifeline trusts), durable queue settings changed at runtime, and
-- the cron slots already inserted (so a slot is inserted once across the whole cluster).

CREATE TABLE nodes (
  name        text PRIMARY KEY,
  queues      jsonb NOT NULL DEFAULT '{}'::jsonb,
  leader      boolean NOT NULL DEFAULT false,
  started_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A queue setting applied with `queue pause|resume|scale|start|stop`, for one node or all
-- (node = '*'). Nodes read it at start, so a paused queue stays paused after a restart.
CREATE TABLE queue_settings (
  node        text NOT NULL,
  queue       text NOT NULL,
  paused      boolean,
  lim         integer,
  running     boolean,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (node, queue)
);

CREATE TABLE cron_slots (
  entry        text NOT NULL,
  slot         timestamptz NOT NULL,
  job_id       bigint,
  inserted_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (entry, slot)
);
