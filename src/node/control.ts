// Messages between nodes, carried by NOTIFY on the schema's control channel: queue changes
// (pause, resume, scale, start, stop) for one node or all, and the cancel of a running job.
// Queue changes are also saved in queue_settings, so they outlive a restart.

import type { Queryable } from '../db/queries/jobs.js';
import { channelNames } from '../db/identifiers.js';
import type { QuernNode } from './node.js';
import { queueConfig } from '../config/load.js';

export type QueueAction = 'pause' | 'resume' | 'scale' | 'start' | 'stop';

export type ControlMessage =
  | { action: QueueAction; queue: string; node: string | null; limit?: number }
  | { action: 'cancel'; id: number; node: string | null };

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

export class ControlChannel {
  constructor(private readonly node: QuernNode) {}

  async handle(message: ControlMessage): Promise<void> {
    const node = this.node;
    if (message.node && message.node !== node.name) return;
    const emitBase = { node: node.name };
    if (message.action === 'cancel') {
      const running = node.cancelRunning(message.id, 'cancelled by request');
      node.telemetry.emit('job:cancel', { id: message.id, node: node.name, running });
      return;
    }
    const { queue } = message;
    const supervisor = node.supervisors.get(queue);
    switch (message.action) {
      case 'pause':
        if (supervisor && !supervisor.producer.paused) {
          supervisor.pause();
          node.telemetry.emit('queue:pause', { queue, ...emitBase });
        }
        break;
      case 'resume':
        if (supervisor && supervisor.producer.paused) {
          supervisor.resume();
          node.telemetry.emit('queue:resume', { queue, ...emitBase });
        }
        break;
      case 'scale':
        if (supervisor && typeof message.limit === 'number') {
          supervisor.scale(message.limit);
          node.telemetry.emit('queue:scale', { queue, limit: message.limit, ...emitBase });
        }
        break;
      case 'start':
        if (!supervisor) {
          const limit = message.limit ?? 10;
          node.startQueue(queue, node.config.queues[queue] ?? queueConfig(queue, { limit }));
          node.telemetry.emit('queue:start', { queue, limit, ...emitBase });
        }
        break;
      case 'stop':
        if (supervisor && (await node.stopQueue(queue)))
          node.telemetry.emit('queue:stop', { queue, ...emitBase });
        break;
    }
    await node.heartbeat().catch(() => undefined);
  }
}
