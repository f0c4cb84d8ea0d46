// `queue pause|resume|scale|start|stop QUEUE [--limit N] [--node NAME]`: changes a queue on one
// node or on all, at runtime; the change is kept across restarts.

import { MAX_QUEUE_LIMIT } from '../config/load.js';
import { nodeNameProblem } from '../config/node-name.js';
import { isPlainIdentifier, MAX_QUEUE_LENGTH } from '../db/identifiers.js';
import { isAlive } from '../db/queries/nodes.js';
import { configFromFlags, connectClient, integerArgument, print, UsageError } from './context.js';
import type { Command } from './main.js';
import type { QueueAction } from '../node/control.js';

const ACTIONS: QueueAction[] = ['pause', 'resume', 'scale', 'start', 'stop'];

export const queue: Command = {
  options: { node: { type: 'string' }, limit: { type: 'string' } },
  async run({ positionals, values }) {
    const [action, name, ...extra] = positionals;
    if (!action || !ACTIONS.includes(action as QueueAction))
      throw new UsageError(`queue needs an action: ${ACTIONS.join(', ')}`);
    if (!name || extra.length > 0) throw new UsageError(`queue ${action} needs one QUEUE name`);
    if (!isPlainIdentifier(name, MAX_QUEUE_LENGTH)) {
      throw new UsageError(
        `QUEUE: ${JSON.stringify(name)} is not a queue name (a plain lower-case identifier, [a-z_][a-z0-9_]*)`,
      );
    }
    if (values.node !== undefined && String(values.node).trim() === '') {
      throw new UsageError('--node: expected a node name');
    }
    const nodeProblem = values.node === undefined ? null : nodeNameProblem(String(values.node));
    if (nodeProblem !== null) {
      throw new UsageError(
        `--node: ${nodeProblem}; leave --node out to change the queue on every node`,
      );
    }
    const limit =
      values.limit === undefined
        ? undefined
        : integerArgument(values.limit, '--limit', { max: MAX_QUEUE_LIMIT });
    if (action === 'scale' && limit === undefined)
      throw new UsageError('queue scale needs --limit N');
    if (limit !== undefined && action !== 'scale' && action !== 'start')
      throw new UsageError(
        `--limit: only queue scale and queue start take it, not queue ${action}`,
      );
    const connected = await connectClient(configFromFlags(values), { existing: true });
    try {
      const node = values.node as string | undefined;
      await connected.client.controlQueue(action as QueueAction, name, {
        ...(node ? { node } : {}),
        ...(limit !== undefined ? { limit } : {}),
      });
      print(`queue ${name}: ${action} sent to ${node ?? 'all nodes'}`);
      // Sent and saved either way (a node reads the saved settings when it starts), but a typo
      // in the queue or node name changed nothing now, without a word.
      const live = (await connected.client.nodes.list(connected.client.pool)).filter((n) =>
        isAlive(n, connected.config.heartbeatTimeout),
      );
      const targets = node ? live.filter((n) => n.name === node) : live;
      if (node && targets.length === 0)
        process.stderr.write(
          `warning: no live node is named ${JSON.stringify(node)}; the setting is saved and applies when it starts\n`,
        );
      else if (action !== 'start' && !targets.some((n) => Object.hasOwn(n.queues, name)))
        process.stderr.write(
          `warning: no live node${node ? ` named ${JSON.stringify(node)}` : ''} runs queue ${name}; the setting is saved and applies when a node runs it\n`,
        );
    } finally {
      await connected.close();
    }
    return 0;
  },
};
