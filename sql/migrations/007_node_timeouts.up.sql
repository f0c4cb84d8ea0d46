-- Each node's own heartbeatTimeout, written with its heartbeat. The lifeline judged every node
-- by the leader's timeout: a node configured to heartbeat less often (heartbeatInterval 10 s,
-- heartbeatTimeout 40 s) beside a leader with the defaults (5 s) looked dead between two of its
-- heartbeats, and its running jobs were rescued and started elsewhere while they still ran.
-- A node is now dead only once silent for longer than both its own timeout and the leader's;
-- it fences itself (stops its jobs) within its own. NULL (a node of an older version): the
-- leader's timeout, as before.
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS heartbeat_timeout_ms integer;
