// The default structured logger: pino, attached to the telemetry catalogue in one call
// (`attachLogger(telemetry, createLogger('info'))`). Job args are never logged unless `logArgs`
// is set: listeners get them in the payload, log lines do not.

import pino, { type Logger } from 'pino';
import type { Telemetry } from './events.js';

export function createLogger(level: string, name = 'quern'): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}

export interface LoggerOptions {
  /** Include job args in job log lines (default false: args often hold personal data). */
  logArgs?: boolean;
}

/** Logs one line per job outcome and every cluster event. Returns a function that detaches it. */
export function attachLogger(
  telemetry: Telemetry,
  log: Logger,
  options: LoggerOptions = {},
): () => void {
  const detach: (() => void)[] = [];
  const args = (e: { args?: Record<string, unknown> }): { args?: Record<string, unknown> } =>
    options.logArgs && e.args !== undefined ? { args: e.args } : {};
  const on: Telemetry['on'] = (event, listener) => {
    telemetry.on(event, listener);
    detach.push(() => telemetry.off(event, listener));
    return telemetry;
  };
  // Per-job lines are checked against the level first: building their fields for a level that
  // is off cost a few microseconds per job on the main thread (bench W2).
  on('job:start', (e) => {
    if (!log.isLevelEnabled('debug')) return;
    const { args: _args, ...fields } = e;
    log.debug({ ...fields, ...args(e) }, `job ${e.id} ${e.worker} started`);
  });
  on('job:cancel', (e) =>
    log.info(e, `job ${e.id} cancel requested${e.running ? '; stopping it' : ''}`),
  );
  on('job:stop', (e) => {
    if (!log.isLevelEnabled('info')) return;
    const { result: _result, args: _args, ...fields } = e;
    log.info({ ...fields, ...args(e) }, `job ${e.id} ${e.worker} ${e.state} in ${e.durationMs} ms`);
  });
  on('job:exception', (e) => {
    log.warn(
      {
        id: e.id,
        worker: e.worker,
        queue: e.queue,
        attempt: e.attempt,
        state: e.state,
        error: e.error,
        ...args(e),
      },
      `job ${e.id} ${e.worker} failed (attempt ${e.attempt})${e.willRetry ? ', will retry' : ', no attempts left'}`,
    );
  });
  on('job:warning', (e) =>
    log.warn({ id: e.id, worker: e.worker }, `job ${e.id} ${e.worker}: ${e.warning}`),
  );
  on('queue:pause', (e) => log.info(e, `queue ${e.queue} paused`));
  on('queue:resume', (e) => log.info(e, `queue ${e.queue} resumed`));
  on('queue:scale', (e) => log.info(e, `queue ${e.queue} scaled to ${e.limit}`));
  on('queue:start', (e) => log.info(e, `queue ${e.queue} started with limit ${e.limit}`));
  on('queue:stop', (e) => log.info(e, `queue ${e.queue} stopped`));
  on('queue:crashed', (e) =>
    log.error(e, `queue ${e.queue} crashed ${e.restarts} times; retrying in ${e.retryInMs} ms`),
  );
  // `name` is pino's own key (the logger's name): the breaker's goes under `breaker`.
  on('circuit:trip', ({ name, ...e }) =>
    log.error({ breaker: name, ...e }, `circuit ${name} tripped: ${e.error}`),
  );
  on('circuit:open', ({ name }) => log.warn({ breaker: name }, `circuit ${name} open`));
  on('circuit:close', ({ name }) =>
    log.info({ breaker: name }, `circuit ${name} closed: database answering again`),
  );
  on('leader:elected', (e) => log.info(e, `${e.node} is the leader`));
  on('leader:lost', (e) => log.warn(e, `${e.node} lost leadership: ${e.reason}`));
  on('plugin:exception', (e) => log.error(e, `plugin ${e.plugin} failed: ${e.error}`));
  on('plugin:stop', (e) => {
    if (e.rescued || e.discarded)
      log.warn(e, `rescued ${e.rescued ?? 0} jobs of dead nodes, discarded ${e.discarded ?? 0}`);
    if (e.inserted) log.info(e, `cron inserted ${e.inserted} jobs`);
    if (e.pruned) log.debug(e, `pruned ${e.pruned} finished jobs`);
  });
  on('pool:crash', (e) => log.error(e, `queue ${e.queue}: ${e.error}`));
  on('pool:restart', (e) => log.warn(e, `pool of queue ${e.queue} restarted`));
  on('node:up', (e) => log.info(e, `node ${e.node} up`));
  on('node:down', (e) => log.info(e, `node ${e.node} down`));
  on('node:fence', (e) =>
    log.warn(
      e,
      `node ${e.node} fenced: stopped fetching and stopped ${e.jobs} running jobs (${e.reason})`,
    ),
  );
  on('node:unfence', (e) =>
    log.info(
      e,
      `node ${e.node} heartbeats written again after ${e.fencedMs} ms fenced; fetching again`,
    ),
  );
  // The notifier retries every 250 ms: a line per attempt was four a second for as long as the
  // database was away. Attempts 1, 2, 4, 8, ... are logged (the event still fires for each).
  on('notifier:reconnect', (e) => {
    if ((e.attempt & (e.attempt - 1)) === 0)
      log.warn(e, `notification connection lost; reconnecting (attempt ${e.attempt})`);
  });
  on('telemetry:error', (e) =>
    log.error({ event: e.event, error: e.error.message }, `a listener of ${e.event} threw`),
  );
  return () => detach.forEach((fn) => fn());
}
