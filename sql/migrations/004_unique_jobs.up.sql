-- Unique jobs: the key of a unique job (a SHA-256 of the compared fields, canonical JSON) and
-- the index the duplicate check reads. Inserts of one key are serialised by a transaction-level
-- advisory lock taken on a hash of the key before the check (see src/db/queries/unique.ts), so
-- the index need not be UNIQUE: a unique index could not express a sliding period or the
-- per-insert set of states that count as duplicates. Partial, so jobs inserted without `unique`
-- cost nothing here.
ALTER TABLE jobs ADD COLUMN unique_key text;
CREATE INDEX jobs_unique ON jobs (unique_key, inserted_at) WHERE unique_key IS NOT NULL;
