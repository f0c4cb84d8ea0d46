// The library used on a schema that no node or migrate has created: a clear error saying what to
// do, not PostgreSQL's bare `relation "x.jobs" does not exist`.

import assert from 'node:assert/strict';
import { Quern } from '../../src/client.js';
import { ConfigError } from '../../src/config/validate.js';
import { databaseUrl } from '../helpers/db.js';

describe('a schema with no quern tables', function () {
  const schema = `t_unmigrated_${process.pid % 10000}`;
  let quern: Quern | undefined;
  afterEach(async function () {
    await quern?.close();
  });

  it('insert, getJob and listJobs say to migrate, naming the schema', async function () {
    quern = new Quern({ connectionString: databaseUrl(), schema });
    const says = (error: unknown) =>
      error instanceof ConfigError &&
      new RegExp(`schema "${schema}" holds no quern tables: .*quern\\.migrate\\(\\)`).test(
        error.message,
      );
    await assert.rejects(quern.insert({ worker: 'ok', args: {} }), says);
    await assert.rejects(quern.insertMany([{ worker: 'ok' }, { worker: 'ok' }]), says);
    await assert.rejects(quern.getJob(1), says);
    await assert.rejects(quern.listJobs(), says);
  });
});
