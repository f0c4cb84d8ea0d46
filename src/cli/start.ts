// `node cluster.js` / `start`: runs a node until SIGTERM or SIGINT. The first signal stops
// gracefully (exit 0); a second one exits at once.

import { QuernNode } from '../node/node.js';
import { createLogger } from '../telemetry/logger.js';
import { configFromFlags } from './context.js';
import type { Command } from './main.js';
import { standardPlugins } from '../plugins/standard.js';

export const start: Command = {
  options: {},
  async run({ values }) {
    const config = configFromFlags(values.config as string | undefined);
    const log = createLogger(config.logLevel);
    const node = new QuernNode(config, { log, plugins: standardPlugins });

    let signals = 0;
    let stopped: Promise<void> | null = null;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        log.warn({ signal }, 'second signal: exiting at once');
        log.flush?.();
        process.exit(130);
      }
      log.info({ signal }, 'signal received: stopping gracefully');
      stopped = node.stop(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);

    await node.start();
    if (!stopped) {
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (stopped) {
            clearInterval(check);
            resolve();
          }
        }, 50);
      });
    }
    await stopped;
    log.info('node stopped');
    return 0;
  },
};
