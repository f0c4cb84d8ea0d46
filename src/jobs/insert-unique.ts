// The protocol of a batch holding unique jobs. Inserts of one key are serialised by a
// transaction-level advisory lock on a hash of the key, taken in its own statement before the
// duplicate check; under READ COMMITTED the check (the next statement) then sees every job
// committed by whoever held the lock before us, and a job of a transaction that rolled back is
// simply not there. The lock lasts until the transaction ends: inside the caller's transaction,
// a second insert of the same key waits for that transaction to commit or roll back.

import type pg from 'pg';
import type { Queryable } from '../db/queries/jobs.js';
import type { UniqueInsertRow, UniqueQueries } from '../db/queries/unique.js';
import type { JobRecord } from './types.js';
import { InsertError, type NormalizedInsert } from './insert.js';
import { uniqueLockKey } from './unique.js';

export interface UniqueBatchResult extends JobRecord {
  conflict: boolean;
}

function isPool(db: Queryable): db is pg.Pool {
  return 'totalCount' in db && typeof (db as { connect?: unknown }).connect === 'function';
}

/** Runs `body` in a transaction: the caller's (inside a savepoint) or one of our own. */
async function inTransaction<T>(
  pool: pg.Pool,
  given: Queryable | undefined,
  body: (db: Queryable) => Promise<T>,
): Promise<T> {
  let own: pg.PoolClient | null = null;
  let db: Queryable;
  let mode: 'savepoint' | 'begin';
  if (given && !isPool(given)) {
    db = given;
    try {
      await db.query('SAVEPOINT quern_unique');
      mode = 'savepoint';
    } catch (error) {
      // 25P01 no_active_sql_transaction: the client is in autocommit; the locks must outlive
      // the check statement, so we open (and commit) a transaction of our own on it.
      if ((error as { code?: string }).code !== '25P01') throw error;
      await db.query('BEGIN');
      mode = 'begin';
    }
  } else {
    own = await (given && isPool(given) ? given : pool).connect();
    db = own;
    await db.query('BEGIN');
    mode = 'begin';
  }
  try {
    const result = await body(db);
    await db.query(mode === 'savepoint' ? 'RELEASE SAVEPOINT quern_unique' : 'COMMIT');
    return result;
  } catch (error) {
    if (mode === 'savepoint') {
      // Leaves the caller's transaction as it was before the insert, still usable.
      await db
        .query('ROLLBACK TO SAVEPOINT quern_unique; RELEASE SAVEPOINT quern_unique')
        .catch(() => undefined);
    } else {
      await db.query('ROLLBACK').catch(() => undefined);
    }
    throw error;
  } finally {
    own?.release();
  }
}

export async function insertUniqueBatch(
  pool: pg.Pool,
  given: Queryable | undefined,
  queries: UniqueQueries,
  normalized: NormalizedInsert[],
): Promise<UniqueBatchResult[]> {
  // A key that appears twice in one batch is inserted once; the later copies get that job back
  // as a conflict (one statement cannot see its own inserts, so this is decided here).
  const firstByKey = new Map<string, number>();
  const sentIndex: number[] = []; // original index -> index in `rows`
  const rows: UniqueInsertRow[] = [];
  normalized.forEach((n, index) => {
    const key = n.unique?.key ?? null;
    if (key !== null) {
      const first = firstByKey.get(key);
      if (first !== undefined) {
        sentIndex.push(-1 - first);
        return;
      }
      firstByKey.set(key, index);
    }
    sentIndex.push(rows.length);
    rows.push({
      ...n.row,
      unique_key: key,
      unique_states: n.unique?.states ?? null,
      unique_period: n.unique?.period ?? null,
      replace: n.unique?.replace ?? [],
    });
  });
  const lockKeys = [...firstByKey.keys()].map((key) => uniqueLockKey(queries.schema, key));
  lockKeys.sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));

  const results = await inTransaction(pool, given, async (db) => {
    const isolation = await queries.lock(db, lockKeys);
    if (isolation === 'repeatable read') {
      throw new InsertError(
        'unique: unique jobs cannot be inserted in a REPEATABLE READ transaction (its snapshot hides jobs committed by concurrent inserts); use READ COMMITTED (the default) or SERIALIZABLE',
        'unique',
      );
    }
    return queries.insert(db, rows);
  });

  const bySent: (UniqueBatchResult | undefined)[] = new Array<UniqueBatchResult | undefined>(
    rows.length,
  );
  const sentByKey = new Map<string, number>();
  rows.forEach((row, i) => {
    if (row.unique_key !== null) sentByKey.set(row.unique_key, i);
  });
  const plain = rows.flatMap((row, i) => (row.unique_key === null ? [i] : []));
  let nextPlain = 0;
  for (const result of results) {
    const conflict = result.kind !== 'inserted';
    let i: number | undefined;
    if (result.ord !== null) i = result.ord;
    else if (result.uniqueKey !== null) i = sentByKey.get(result.uniqueKey);
    else i = plain[nextPlain++]; // plain rows are inserted, and returned, in input order
    if (i !== undefined) bySent[i] = { ...result.job, conflict };
  }
  return sentIndex.map((s, index) => {
    const found = s >= 0 ? bySent[s] : bySent[sentIndex[-1 - s]!];
    if (!found) throw new Error(`unique insert returned no row for job ${index}`);
    return s >= 0 ? found : { ...found, conflict: true };
  });
}
