// The leader-only plugins every node registers besides the stager (pruner, lifeline, cron).
// Each is added here as it lands.

import type { PluginFactory } from '../node/node.js';

export const standardPlugins: PluginFactory[] = [];
