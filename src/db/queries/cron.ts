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

  /**
   * The database's clock (every node reads the same one, whatever its own says) and when the
   * running cluster started, in one round trip.
   */
  async clock(db: Queryable): Promise<{ now: Date; clusterStart: Date | null }> {
    const { rows } = await db.query<{ now: Date; started: Date | null }>(
      `SELECT clock_timestamp() AS now,
              (SELECT max(slot) FROM ${this.t} WHERE entry = $1) AS started`,
      [CLUSTER_START],
    );
    return { now: rows[0]!.now, clusterStart: rows[0]!.started };
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
