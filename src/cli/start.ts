// `node cluster.js` / `start`: runs a node until SIGTERM or SIGINT. The first signal stops
// gracefully (exit 0); a second one exits at once.

import { QuernNode } from '../node/node.js';
import { standardPlugins } from '../plugins/standard.js';
import { createLogger } from '../telemetry/logger.js';
import { configFromFlags, UsageError } from './context.js';
import type { Command } from './main.js';

export const start: Command = {
  options: {},
  async run({ values, positionals }) {
    if (positionals.length > 0)
      throw new UsageError(`start takes no arguments, got ${positionals.join(' ')}`);
    const config = configFromFlags(values.config as string | undefined);
    const log = createLogger(config.logLevel);
    const node = new QuernNode(config, { log, plugins: standardPlugins });

    let signals = 0;
    let requestStop: (signal: string) => void = () => undefined;
    const stopRequested = new Promise<string>((resolve) => (requestStop = resolve));
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        log.warn({ signal }, 'second signal: exiting at once');
        process.exit(130);
      }
      log.info({ signal }, 'signal received: stopping gracefully');
      requestStop(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);

    const started = node.start();
    const first = await Promise.race([started.then(() => null), stopRequested]);
    if (first !== null) await started.catch(() => undefined);
    await node.stop(first ?? (await stopRequested));
    log.info('node stopped');
    return 0;
  },
};
