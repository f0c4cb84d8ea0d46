// Runs a function in one transaction on a pooled connection: committed when it returns,
// rolled back when it throws. For statements that must stand or fall together (a cron slot and
// its job, a node joining the cluster).

import type pg from 'pg';

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
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw error;
  } finally {
    // A connection that could not roll back is not handed to the next caller.
    client.release(broken);
  }
}
