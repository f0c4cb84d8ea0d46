// Control of a node from anywhere in the cluster. Queue changes (pause, resume, scale, start,
// stop; for one node or all) are saved in queue_settings first, then announced by NOTIFY on the
// schema's control channel; a node that hears one re-reads its settings and applies what
// changed. It also re-reads them every poll, because a notification sent while its listening
// connection is down is lost, and at start, so a paused queue stays paused after a restart.
// The cancel of a running job is a message too, backed by the same poll: a job this node runs
// whose row is no longer executing under its attempt (cancelled, rescued) is stopped.

import { MAX_QUEUE_LIMIT, queueConfig } from '../config/load.js';
import type { NodeConfig, QueueConfig } from '../config/types.js';
import { channelNames } from '../db/identifiers.js';
import type { Queryable } from '../db/queries/jobs.js';
import { MaintenanceQueries } from '../db/queries/maintenance.js';
import type { QueueSetting } from '../db/queries/nodes.js';
import type { QuernNode } from './node.js';

export type QueueAction = 'pause' | 'resume' | 'scale' | 'start' | 'stop';

export type ControlMessage =
  | { action: QueueAction; queue: string; node: string | null; limit?: number }
  | { action: 'cancel'; id: number; node: string | null; token?: string | null };

/** The default limit of a queue started at runtime without one. */
export const DEFAULT_STARTED_LIMIT = 10;

export async function sendControl(
  db: Queryable,
  schema: string,
  message: ControlMessage,
): Promise<void> {
  await db.query('SELECT pg_notify($1, $2)', [
    channelNames(schema).control,
    JSON.stringify(message),
  ]);
}

/** What the configuration and the saved settings ask of one queue on this node. */
interface Wanted {
  config: QueueConfig;
  paused: boolean;
  limit: number;
}

/**
 * Settings rows come from the database, which any client can write: a row this code would not
 * accept from the config (a limit out of range, a queue name that is not plain) is skipped and
 * reported, never allowed to stop the node.
 */
export function wantedQueues(
  configured: Record<string, QueueConfig>,
  settings: QueueSetting[],
  onInvalid: (setting: QueueSetting, why: string) => void = () => undefined,
): Map<string, Wanted> {
  const wanted = new Map<string, Wanted>();
  const validLimit = (setting: QueueSetting | undefined): number | null => {
    const limit = setting?.limit ?? null;
    if (limit === null) return null;
    if (Number.isInteger(limit) && limit >= 1 && limit <= MAX_QUEUE_LIMIT) return limit;
    onInvalid(setting!, `limit ${limit} is outside 1 to ${MAX_QUEUE_LIMIT}`);
    return null;
  };
  for (const [queue, config] of Object.entries(configured)) {
    const setting = settings.find((s) => s.queue === queue);
    if (setting?.running === false) continue;
    wanted.set(queue, {
      config,
      paused: setting?.paused ?? config.paused,
      limit: validLimit(setting) ?? config.limit,
    });
  }
  for (const setting of settings) {
    if (setting.running !== true || wanted.has(setting.queue)) continue;
    const limit = validLimit(setting) ?? DEFAULT_STARTED_LIMIT;
    try {
      wanted.set(setting.queue, {
        config: queueConfig(setting.queue, { limit }),
        paused: setting.paused ?? false,
        limit,
      });
    } catch (error) {
      onInvalid(setting, (error as Error).message);
    }
  }
  return wanted;
}

/** How often a node reads the saved queue settings and the rows of the jobs it runs. */
export function controlPollInterval(config: Pick<NodeConfig, 'heartbeatInterval'>): number {
  return Math.max(200, config.heartbeatInterval);
}

/**
 * The longest a run of this node goes on once its job is cancelled in its row: until the node
 * hears of it (at once by notification, at the latest at its next poll), then the job's
 * cancelGracePeriod to honour its abort signal before its thread is terminated, and a second
 * for the poll's query and the termination. Written with the heartbeat (nodes.stop_within_ms).
 */
export function stopWithin(
  config: Pick<NodeConfig, 'heartbeatInterval' | 'cancelGracePeriod'>,
): number {
  return controlPollInterval(config) + config.cancelGracePeriod + 1000;
}

export class ControlChannel {
  /** What was last applied, per queue: only a change of the wanted state is acted on, so a
   * queue paused for another reason (a breaker) is not resumed by the next poll. */
  private applied: Map<string, Wanted> | null = null;
  private applying: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly maintenance: MaintenanceQueries;
  private readonly stoppedByPoll = new Map<number, number>();
  /** Invalid saved settings already logged, so the poll does not repeat them each second. */
  private readonly reported = new Set<string>();

  constructor(
    private readonly node: QuernNode,
    private readonly pollInterval = controlPollInterval(node.config),
  ) {
    this.maintenance = new MaintenanceQueries(node.config.schema);
  }

  async handle(message: ControlMessage): Promise<void> {
    const node = this.node;
    if (message.node && message.node !== node.name) return;
    if (message.action === 'cancel') {
      // The poll may have seen the cancelled row, and stopped the job, before this message came.
      const running =
        node.cancelRunning(message.id, 'cancelled by request', message.token) ||
        this.stoppedByPoll.has(message.id);
      node.telemetry.emit('job:cancel', { id: message.id, node: node.name, running });
      return;
    }
    await this.applySettings();
  }

  start(): void {
    if (this.timer) return;
    const tick = (): void => {
      this.timer = setTimeout(() => {
        void Promise.all([this.applySettings(), this.stopForeignJobs()])
          .catch(() => undefined)
          .finally(() => {
            if (this.timer) tick();
          });
      }, this.pollInterval);
      this.timer.unref();
    };
    tick();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Reads this node's settings and applies what changed; runs are serialised and coalesced. */
  applySettings(): Promise<void> {
    if (this.applying) {
      this.again = true;
      return this.applying;
    }
    this.applying = (async () => {
      try {
        do {
          this.again = false;
          await this.applyOnce();
        } while (this.again);
      } finally {
        this.applying = null;
      }
    })();
    return this.applying;
  }

  private async applyOnce(): Promise<void> {
    const node = this.node;
    const settings = await node.breaker.call(() => node.nodes.settingsFor(node.pool, node.name));
    const wanted = wantedQueues(node.config.queues, settings, (setting, why) => {
      const key = `${setting.queue}:${why}`;
      if (this.reported.has(key)) return;
      this.reported.add(key);
      node.log.error(
        { queue: setting.queue, setting },
        `ignoring the saved setting of queue ${setting.queue}: ${why}`,
      );
    });
    const before = this.applied;
    this.applied = wanted;
    const emit = before !== null;
    const base = { node: node.name };
    for (const [queue, want] of wanted) {
      const was = before?.get(queue);
      const supervisor = node.supervisors.get(queue);
      if (!was) {
        if (supervisor) continue;
        node.startQueue(queue, { ...want.config, paused: want.paused, limit: want.limit });
        if (emit) node.telemetry.emit('queue:start', { queue, limit: want.limit, ...base });
        continue;
      }
      if (!supervisor) continue;
      if (want.paused !== was.paused) {
        if (want.paused) supervisor.pause();
        else supervisor.resume();
        node.telemetry.emit(want.paused ? 'queue:pause' : 'queue:resume', { queue, ...base });
      }
      if (want.limit !== was.limit) {
        supervisor.scale(want.limit);
        node.telemetry.emit('queue:scale', { queue, limit: want.limit, ...base });
      }
    }
    for (const queue of before?.keys() ?? []) {
      if (wanted.has(queue)) continue;
      if (await node.stopQueue(queue)) node.telemetry.emit('queue:stop', { queue, ...base });
    }
    if (emit) await node.heartbeat().catch(() => undefined);
  }

  /** Stops jobs this node runs whose row says they are no longer this attempt's. */
  private async stopForeignJobs(): Promise<void> {
    const node = this.node;
    const attempts = [...node.supervisors.values()].flatMap((s) =>
      s.producer.runningJobs().map((j) => ({ id: j.id, token: j.token })),
    );
    if (attempts.length === 0) return;
    const foreign = await node.breaker.call(() => this.maintenance.notMine(node.pool, attempts));
    const now = Date.now();
    for (const [id, at] of this.stoppedByPoll) if (now - at > 60_000) this.stoppedByPoll.delete(id);
    for (const { id, token } of foreign) {
      const reason = 'the job was cancelled, or rescued by another node, meanwhile';
      if (node.cancelRunning(id, reason, token)) this.stoppedByPoll.set(id, now);
    }
  }
}
