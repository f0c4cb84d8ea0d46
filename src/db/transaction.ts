// Runs a function in one transaction on a pooled connection: committed when it returns,
// rolled back when it throws. For statements that must stand or fall together (a cron slot and
// its job, a node joining the cluster).

import type pg from 'pg';
import { isConnectionError } from './breaker.js';

export async function withTransaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    // A connection that failed, or a statement given up on it (its pool's query_timeout): the
    // ROLLBACK would wait behind that statement, on a connection that hangs for as long again,
    // before giving up too. Closed instead, which rolls the transaction back on the server.
    if (isConnectionError(error)) broken = true;
    else
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
    throw error;
  } finally {
    // A connection that could not roll back is not handed to the next caller.
    client.release(broken);
  }
}
