// The leader-only plugins every node registers besides the stager: cron, pruner, lifeline.
// Each factory reads its part of the node's configuration and returns nothing when disabled.

import { CronQueries } from '../db/queries/cron.js';
import { MaintenanceQueries } from '../db/queries/maintenance.js';
import type { PluginFactory } from '../node/node.js';
import { cronPlugins } from './cron.js';
import { Lifeline } from './lifeline.js';
import { Pruner } from './pruner.js';

const pruner: PluginFactory = (context, node) => {
  const config = node.config.plugins.pruner;
  if (!config.enabled) return [];
  return [
    new Pruner(
      context,
      new MaintenanceQueries(node.config.schema),
      new CronQueries(node.config.schema),
      {
        maxAge: config.maxAge,
        limit: config.limit,
        interval: config.interval,
      },
    ),
  ];
};

const lifeline: PluginFactory = (context, node) => {
  const config = node.config.plugins.lifeline;
  if (!config.enabled) return [];
  return [
    new Lifeline(context, new MaintenanceQueries(node.config.schema), {
      interval: config.interval,
      heartbeatTimeout: node.config.heartbeatTimeout,
      runId: node.runId,
    }),
  ];
};

export const standardPlugins: PluginFactory[] = [cronPlugins, pruner, lifeline];
