// `migrate [--down N]`: applies migrations to the schema (the config's, or --prefix), or rolls
// back to version N.

import { migrateDown, migrateUp } from '../db/migrate.js';
import { configFromFlags, connectClient, integerArgument, print, UsageError } from './context.js';
import type { Command } from './main.js';
import { Progress, seconds } from './progress.js';

export const migrate: Command = {
  options: { down: { type: 'string' } },
  async run({ values, positionals }) {
    if (positionals.length > 0)
      throw new UsageError(`migrate takes no arguments, got ${positionals.join(' ')}`);
    const target =
      values.down === undefined ? null : integerArgument(values.down, '--down', { min: 0 });
    const config = configFromFlags(values);
    const { schema } = config;
    const connected = await connectClient(config, { migrate: false });
    const client = await connected.client.pool.connect();
    try {
      // A step that runs long (an index on a big table) shows its time going up on stderr.
      let ticker: Progress | null = null;
      const onStep = (m: { version: number; name: string }): void => {
        ticker?.finish();
        const label = `${target === null ? 'applying' : 'rolling back'} ${String(m.version).padStart(3, '0')}_${m.name}`;
        print(label);
        ticker = new Progress((ms) => (ms < 1000 ? '' : `${label}: ${seconds(ms)}`));
      };
      const result = await (
        target === null
          ? migrateUp(client, schema, { onStep })
          : migrateDown(client, schema, target, { onStep })
      ).finally(() => ticker?.finish());
      print(`schema ${schema}: version ${result.from} -> ${result.to}`);
    } finally {
      client.release();
      await connected.close();
    }
    return 0;
  },
};
