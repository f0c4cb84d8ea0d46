// Statements on cron_slots: one row per crontab entry and slot already inserted, so a slot is
// inserted once across the whole cluster whatever the leaders do (the primary key decides).
// Two kinds of rows besides the slots of periodic entries:
// - entry 'cluster:start': one row per cluster start (a node joined a cluster with no live
//   node), the slot being when; @reboot entries are keyed by it;
// - entries starting with '@reboot ': the @reboot jobs inserted for a cluster start.

import { quoteIdentifier } from '../identifiers.js';
import type { Queryable } from './jobs.js';

export const CLUSTER_START = 'cluster:start';

export class CronQueries {
  private readonly t: string;

  constructor(readonly schema: string) {
    this.t = `${quoteIdentifier(schema)}.cron_slots`;
  }

  /** The database's clock: every node reads the same one, whatever its own clock says. */
  async now(db: Queryable): Promise<Date> {
    const { rows } = await db.query<{ now: Date }>('SELECT clock_timestamp() AS now');
    return rows[0]!.now;
  }

  /** Claims (entry, slot); false when some node already did. Run in the job's transaction. */
  async claim(db: Queryable, entry: string, slot: Date): Promise<boolean> {
    const { rowCount } = await db.query(
      `INSERT INTO ${this.t} (entry, slot) VALUES ($1, $2) ON CONFLICT (entry, slot) DO NOTHING`,
      [entry, slot],
    );
    return rowCount === 1;
  }

  async setJob(db: Queryable, entry: string, slot: Date, jobId: number): Promise<void> {
    await db.query(`UPDATE ${this.t} SET job_id = $3 WHERE entry = $1 AND slot = $2`, [
      entry,
      slot,
      jobId,
    ]);
  }

  async markClusterStart(db: Queryable): Promise<Date> {
    const { rows } = await db.query<{ slot: Date }>(
      `INSERT INTO ${this.t} (entry, slot) VALUES ($1, clock_timestamp()) RETURNING slot`,
      [CLUSTER_START],
    );
    return rows[0]!.slot;
  }

  /** When the running cluster started, and how long ago by the database's clock. */
  async latestClusterStart(db: Queryable): Promise<{ at: Date; ageMs: number } | null> {
    const { rows } = await db.query<{ slot: Date; age_ms: number }>(
      `SELECT slot, (extract(epoch FROM clock_timestamp() - slot) * 1000)::float8 AS age_ms
       FROM ${this.t} WHERE entry = $1 ORDER BY slot DESC LIMIT 1`,
      [CLUSTER_START],
    );
    const row = rows[0];
    return row ? { at: row.slot, ageMs: row.age_ms } : null;
  }

  /**
   * Forgets slots older than `seconds` (they can no longer be inserted: the cron plugin looks
   * one minute back), except the latest cluster start and its @reboot rows.
   */
  async prune(db: Queryable, seconds: number, limit: number): Promise<number> {
    const { rowCount } = await db.query(
      `WITH latest AS (SELECT max(slot) AS at FROM ${this.t} WHERE entry = $3),
       doomed AS (
         SELECT s.entry, s.slot FROM ${this.t} s, latest
         WHERE s.slot < now() - make_interval(secs => $1)
           AND (latest.at IS NULL OR s.slot < latest.at
                OR (s.entry <> $3 AND s.entry NOT LIKE '@reboot %'))
         LIMIT $2
       )
       DELETE FROM ${this.t} s USING doomed WHERE s.entry = doomed.entry AND s.slot = doomed.slot`,
      [seconds, limit, CLUSTER_START],
    );
    return rowCount ?? 0;
  }
}
