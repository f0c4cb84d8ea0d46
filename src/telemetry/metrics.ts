// Prometheus metrics (prom-client), opt-in with `metrics: { port, host }`. Counters and the
// run-time histogram follow the telemetry catalogue; gauges are read at scrape time from the
// node (running jobs, limits, leadership, breaker) and from the database (queue depth). Each node
// has its own registry, so several nodes in one process never share series.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ConfigError } from '../config/validate.js';
import type { BreakerState } from '../db/breaker.js';
import { StatsQueries } from '../db/queries/stats.js';
import type { QuernNode } from '../node/node.js';
import type { Telemetry } from './events.js';

/** Seconds: from a few milliseconds (small jobs) to ten minutes (batch jobs). */
const RUN_TIME_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
];
const BREAKER_STATES: BreakerState[] = ['closed', 'open', 'half-open'];

export class MetricsServer {
  readonly registry = new Registry();
  private server: Server | null = null;
  private readonly detach: (() => void)[] = [];

  constructor(private readonly node: QuernNode) {
    const registry = this.registry;
    registry.setDefaultLabels({ node: node.name });
    collectDefaultMetrics({ register: registry });
    const registers = [registry];

    const jobs = new Counter({
      name: 'quern_jobs_total',
      help: 'Job attempts finished on this node, by queue, worker and the state they ended in',
      labelNames: ['queue', 'worker', 'state'],
      registers,
    });
    const runTime = new Histogram({
      name: 'quern_job_run_seconds',
      help: 'Run time of job attempts on this node (attempted to outcome)',
      labelNames: ['queue', 'worker'],
      buckets: RUN_TIME_BUCKETS,
      registers,
    });
    const queueTime = new Histogram({
      name: 'quern_job_queue_seconds',
      help: 'Time jobs waited from due to attempted, on this node',
      labelNames: ['queue', 'worker'],
      buckets: RUN_TIME_BUCKETS,
      registers,
    });
    const crashes = new Counter({
      name: 'quern_pool_crashes_total',
      help: 'Worker threads that died, by queue',
      labelNames: ['queue'],
      registers,
    });
    const trips = new Counter({
      name: 'quern_circuit_trips_total',
      help: 'Times a circuit breaker tripped open',
      labelNames: ['name'],
      registers,
    });
    this.on('job:stop', (e) => {
      jobs.inc({ queue: e.queue, worker: e.worker, state: e.state });
      runTime.observe({ queue: e.queue, worker: e.worker }, e.durationMs / 1000);
    });
    this.on('job:start', (e) =>
      queueTime.observe({ queue: e.queue, worker: e.worker }, e.queueTimeMs / 1000),
    );
    this.on('pool:crash', (e) => crashes.inc({ queue: e.queue }));
    this.on('circuit:trip', (e) => trips.inc({ name: e.name }));

    const queueGauge = (name: string, help: string, pick: (q: QueueView) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['queue'],
        registers,
        collect() {
          this.reset();
          for (const [queue, q] of Object.entries(node.queueHeartbeats()))
            this.set({ queue }, pick(q));
        },
      });
    };
    queueGauge('quern_queue_running', 'Jobs running now on this node, by queue', (q) => q.running);
    queueGauge(
      'quern_queue_limit',
      'Most jobs of the queue this node runs at once',
      (q) => q.limit,
    );
    queueGauge('quern_queue_paused', '1 when the queue is paused on this node', (q) =>
      q.paused ? 1 : 0,
    );
    new Gauge({
      name: 'quern_leader',
      help: '1 while this node is the leader (runs stager, cron, pruner, lifeline)',
      registers,
      collect() {
        this.set(node.isLeader ? 1 : 0);
      },
    });
    new Gauge({
      name: 'quern_circuit_state',
      help: 'Circuit breaker state: 1 for the current state, 0 for the others',
      labelNames: ['name', 'state'],
      registers,
      collect() {
        const breaker = node.breaker as { state: BreakerState } | undefined;
        if (!breaker) return;
        for (const state of BREAKER_STATES)
          this.set({ name: 'database', state }, breaker.state === state ? 1 : 0);
      },
    });
    const depthErrors = new Counter({
      name: 'quern_metrics_depth_errors_total',
      help: 'Scrapes whose queue-depth query failed (the last known depth is kept)',
      registers,
    });
    let statsQueries: StatsQueries | null = null;
    new Gauge({
      name: 'quern_queue_jobs',
      help: 'Jobs waiting or running in the whole cluster, by queue and state (the same on every node)',
      labelNames: ['queue', 'state'],
      registers,
      async collect() {
        if (!node.pool || !node.breaker) return;
        statsQueries ??= new StatsQueries(node.config.schema);
        const queries = statsQueries;
        try {
          const rows = await node.breaker.call(() => queries.depth(node.pool));
          this.reset();
          for (const r of rows) this.set({ queue: r.queue, state: r.state }, r.count);
        } catch {
          depthErrors.inc();
        }
      },
    });
  }

  private on: Telemetry['on'] = (event, listener) => {
    this.node.telemetry.on(event, listener);
    this.detach.push(() => this.node.telemetry.off(event, listener));
    return this.node.telemetry;
  };

  /** Serves GET /metrics; an address already in use stops the node with a clear error. */
  async listen(port: number, host: string): Promise<AddressInfo> {
    const server = createServer((request, response) => {
      if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== '/metrics') {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (error: unknown) =>
          response.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(error)}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(
          new ConfigError(
            `metrics: cannot listen on ${host}:${port}: ${error.code ?? error.message}`,
          ),
        ),
      );
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    return server.address() as AddressInfo;
  }

  get address(): AddressInfo | null {
    return (this.server?.address() as AddressInfo | null) ?? null;
  }

  async stop(): Promise<void> {
    this.detach.forEach((fn) => fn());
    this.detach.length = 0;
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

interface QueueView {
  running: number;
  limit: number;
  paused: boolean;
}

/** Starts the exporter of a node (called by the node at start when `metrics` is configured). */
export async function startMetricsServer(
  node: QuernNode,
  options: { port: number; host: string },
): Promise<MetricsServer> {
  const metrics = new MetricsServer(node);
  try {
    const address = await metrics.listen(options.port, options.host);
    node.log.info(
      { host: address.address, port: address.port },
      `metrics on http://${address.address}:${address.port}/metrics`,
    );
  } catch (error) {
    await metrics.stop();
    throw error;
  }
  return metrics;
}
