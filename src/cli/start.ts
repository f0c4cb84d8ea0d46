// `node cluster.js` / `start`: runs a node until SIGTERM or SIGINT. The first signal stops
// gracefully (exit 0), also while the node is still starting (waiting for its database, say);
// a second one exits at once (130). A shutdown that takes longer than shutdownGracePeriod +
// cancelGracePeriod + SHUTDOWN_MARGIN_MS waits on a database that does not answer: it logs what
// it was still waiting for and exits 1. A node that stops on its own (another process took its
// name while it was frozen or cut off) exits 1 once it has stopped.

import { QuernNode, SHUTDOWN_MARGIN_MS } from '../node/node.js';
import { standardPlugins } from '../plugins/standard.js';
import { createLogger } from '../telemetry/logger.js';
import { configFromFlags, UsageError } from './context.js';
import type { Command } from './main.js';

export const start: Command = {
  options: {},
  async run({ values, positionals }) {
    if (positionals.length > 0)
      throw new UsageError(`start takes no arguments, got ${positionals.join(' ')}`);
    const config = configFromFlags(values);
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

    // A start that fails on its own (configuration, database refused) rejects here: exit 1.
    // A signal during start does not wait for it: stop() below makes it give up.
    const started = node.start();
    // null: the node stopped on its own (another process took its name); it exits 1.
    const signal =
      (await Promise.race([started.then(() => null), stopRequested])) ??
      (await Promise.race([stopRequested, node.stoppedOnItsOwn.then(() => null)]));

    // Held to what a Node timer can wait: past it the timer would fire after 1 ms.
    const boundMs = Math.min(
      config.shutdownGracePeriod + config.cancelGracePeriod + SHUTDOWN_MARGIN_MS,
      2 ** 31 - 1,
    );
    const hardStop = setTimeout(() => {
      log.error(
        { boundMs, pending: node.shutdownPending() },
        `shutdown did not finish within ${boundMs} ms (shutdownGracePeriod + cancelGracePeriod + ${SHUTDOWN_MARGIN_MS} ms): the database is not answering; exiting 1 without waiting further`,
      );
      process.exit(1);
    }, boundMs);
    try {
      await node.stop(signal ?? undefined);
    } finally {
      clearTimeout(hardStop);
    }
    log.info('node stopped');
    return signal === null ? 1 : 0;
  },
};
