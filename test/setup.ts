// Mocha root hooks: find a PostgreSQL for the suite. DATABASE_URL when that server answers,
// else the local server on 127.0.0.1:5432 (database test) when it answers, else an embedded
// server in a temporary folder, stopped after the suite.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbedded, type EmbeddedDatabase } from '../src/db/embedded.js';

let embedded: EmbeddedDatabase | null = null;
let embeddedDir: string | null = null;

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export const mochaHooks = {
  async beforeAll(this: Mocha.Context): Promise<void> {
    this.timeout(120000);
    // QUERN_TEST_EMBEDDED=1 runs the suite on an embedded server even where one answers, which
    // is how the path of a machine with no PostgreSQL is checked.
    const candidates =
      process.env.QUERN_TEST_EMBEDDED === '1'
        ? []
        : [process.env.DATABASE_URL, 'postgres://postgres@127.0.0.1:5432/test'].filter(
            (u): u is string => typeof u === 'string' && u.length > 0,
          );
    for (const url of candidates) {
      if (await answers(url)) {
        process.env.TEST_DATABASE_URL = url;
        return;
      }
    }
    embeddedDir = mkdtempSync(path.join(tmpdir(), 'quern-test-pg-'));
    embedded = await startEmbedded(embeddedDir);
    process.env.TEST_DATABASE_URL = embedded.url;
    process.stderr.write(`tests use an embedded PostgreSQL at ${embedded.url}\n`);
  },
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(30000);
    await embedded?.stop();
    if (embeddedDir) rmSync(embeddedDir, { recursive: true, force: true });
  },
};
