// The Node actor: one per process. Starts everything in order (database, migrations, workers,
// notifier, queues, leadership, heartbeats) and stops it in reverse, the embedded database last.
// It is also where messages from other nodes (control notifications) are turned into calls on
// the queue supervisors.

import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import type { NodeConfig, QueueConfig } from '../config/types.js';
import { ConfigError, describe } from '../config/validate.js';
import { Breaker } from '../db/breaker.js';
import {
  createFetchPool,
  createPool,
  resolveDatabase,
  type DatabaseHandle,
} from '../db/connect.js';
import { migrateUp } from '../db/migrate.js';
import { JobQueries } from '../db/queries/jobs.js';
import { MaintenanceQueries } from '../db/queries/maintenance.js';
import { NodeQueries, type QueueHeartbeat } from '../db/queries/nodes.js';
import { Notifier } from '../notifier/notifier.js';
import { Peer } from '../peer/peer.js';
import { PeriodicPlugin, type PluginContext } from '../plugins/plugin.js';
import { Stager } from '../plugins/stager.js';
import { LostFetches } from '../queue/lost-fetches.js';
import { OutcomeWriter } from '../queue/outcomes.js';
import { QueueSupervisor } from '../queue/supervisor.js';
import { Telemetry } from '../telemetry/events.js';
import { attachLogger, createLogger } from '../telemetry/logger.js';
import { startMetricsServer, type MetricsServer } from '../telemetry/metrics.js';
import { loadWorkerFolder, loadWorkers, type RegisteredWorker } from '../worker/registry.js';
import { ControlChannel, stopWithin, type ControlMessage } from './control.js';
import { fenceTimings, HeartbeatFence } from './fence.js';
import { joinCluster, waitForNameToBeFree } from './membership.js';

/**
 * Beyond shutdownGracePeriod + cancelGracePeriod, what a shutdown may still take: up to 5 s to
 * write the last outcomes (OUTCOME_DRAIN_MS) and 5 s to close connections. A shutdown still
 * running after that waits on a database that does not answer; cli/start.ts then exits 1.
 */
export const SHUTDOWN_MARGIN_MS = 10_000;
const OUTCOME_DRAIN_MS = 5000;

/** Why a start ended early: stop() was called while the node was starting. */
export class StartAborted extends Error {
  override name = 'StartAborted';
}

export type PluginFactory = (context: PluginContext, node: QuernNode) => PeriodicPlugin[];

export interface NodeOptions {
  log?: Logger;
  telemetry?: Telemetry;
  /** Extra leader-only plugins (cron, pruner, lifeline register here). */
  plugins?: PluginFactory[];
}

export class QuernNode {
  readonly telemetry: Telemetry;
  readonly log: Logger;
  readonly runId = randomUUID().slice(0, 8);
  readonly supervisors = new Map<string, QueueSupervisor>();
  readonly startedAt = new Date();
  jobs!: JobQueries;
  nodes!: NodeQueries;
  pool!: pg.Pool;
  /** Claims jobs (see createFetchPool); everything else uses `pool`. */
  fetchPool!: pg.Pool;
  database!: DatabaseHandle;
  workers = new Map<string, RegisteredWorker>();
  breaker!: Breaker;
  control!: ControlChannel;
  private notifier: Notifier | null = null;
  private peer: Peer | null = null;
  private outcomes!: OutcomeWriter;
  private joined = false;
  private lostFetches!: LostFetches;
  private plugins: PeriodicPlugin[] = [];
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private heartbeating: Promise<void> | null = null;
  /** Stops this node's jobs when it cannot write heartbeats (see fence.ts). */
  private fence: HeartbeatFence | null = null;
  private leaving = false;
  /** Another process took this node's name (see onReplaced). */
  private replaced = false;
  private resolveStoppedOnItsOwn: (reason: string) => void = () => undefined;
  /** Resolves (with why) when the node stops without being asked to: see onReplaced. */
  readonly stoppedOnItsOwn = new Promise<string>(
    (resolve) => (this.resolveStoppedOnItsOwn = resolve),
  );
  private detachLogger: (() => void) | null = null;
  /** The Prometheus exporter, when `metrics` is configured. */
  metrics: MetricsServer | null = null;
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopping: Promise<void> | null = null;
  private starting: Promise<void> | null = null;
  /** Aborted by a stop() during start: the database wait ends, no further step begins. */
  private readonly startAbort = new AbortController();
  /** What the shutdown is waiting on now (see shutdownPending). */
  private readonly stopSteps = new Set<string>();

  constructor(
    readonly config: NodeConfig,
    private readonly options: NodeOptions = {},
  ) {
    // From JavaScript nothing stops a raw configuration ({ queues: ... }) or none: it failed
    // later, in pino ("default level:undefined must be included in custom levels") or reading it.
    const loaded = config as unknown as Record<string, unknown> | null | undefined;
    const missing = ['node', 'logLevel', 'schema', 'database', 'queues', 'plugins'].find(
      (key) => loaded?.[key] === undefined,
    );
    if (typeof loaded !== 'object' || loaded === null || missing !== undefined)
      throw new ConfigError(
        `QuernNode: expected a configuration made by loadConfig (new QuernNode(loadConfig({ queues: { default: 10 } }))), got ${typeof loaded !== 'object' || loaded === null ? describe(loaded) : `an object without "${missing}"`}`,
      );
    this.telemetry = options.telemetry ?? new Telemetry();
    this.log = options.log ?? createLogger(config.logLevel);
  }

  get name(): string {
    return this.config.node;
  }

  get isLeader(): boolean {
    return this.peer?.leader ?? false;
  }

  /** Starts the node. A stop() meanwhile ends it early: it rejects with StartAborted. */
  start(): Promise<void> {
    if (this.state === 'new') {
      this.state = 'starting';
      this.starting = this.doStart();
    }
    return this.starting ?? Promise.resolve();
  }

  /** Throws once a stop() was asked for during start; called between start steps. */
  private checkStart(): void {
    this.startAbort.signal.throwIfAborted();
  }

  private async doStart(): Promise<void> {
    const { config, log } = this;
    this.detachLogger = attachLogger(this.telemetry, log, { logArgs: config.logArgs });
    try {
      // First, so the counters see every job this node runs.
      if (config.metrics) this.metrics = await startMetricsServer(this, config.metrics);
      // The folder must exist (see loadWorkerFolder), except in a testing mode: such a node runs
      // no queue, and needs no workers.
      this.workers =
        config.testing === 'disabled'
          ? await loadWorkerFolder(
              config.workers,
              config.workersRelative === false
                ? null
                : 'a relative "workers" is resolved against the folder of the configuration file',
            )
          : await loadWorkers(config.workers);
      this.checkStart();
      log.info(
        { workers: [...this.workers.keys()], dir: config.workers },
        `loaded ${this.workers.size} workers`,
      );

      // An embedded server started meanwhile is kept in this.database, so teardown stops it.
      this.database = await resolveDatabase(
        config.database.url,
        config.database.dataDir,
        log,
        this.startAbort.signal,
      );
      this.checkStart();
      this.pool = createPool(
        this.database.url,
        config.database.poolSize,
        `quern-${config.node}`.slice(0, 63),
      );
      // One fetch connection per queue at most (each queue has one fetch in flight).
      this.fetchPool = createFetchPool(
        this.database.url,
        Math.max(1, Math.min(config.database.poolSize, Object.keys(config.queues).length || 1)),
        `quern-${config.node}-fetch`.slice(0, 63),
        config.heartbeatTimeout,
      );
      // On a client of its own: the pool's statements are given up after QUERY_TIMEOUT_MS, and
      // a migration that builds an index on a large table may take longer.
      const client = new pg.Client({
        connectionString: this.database.url,
        application_name: `quern-${config.node}`.slice(0, 63),
      });
      client.on('error', () => undefined);
      try {
        await client.connect();
        const result = await migrateUp(client, config.schema);
        log.info({ schema: config.schema, from: result.from, to: result.to }, 'database ready');
      } finally {
        await client.end().catch(() => undefined);
      }
      this.checkStart();

      this.jobs = new JobQueries(config.schema);
      this.nodes = new NodeQueries(config.schema);
      this.breaker = new Breaker({
        name: 'database',
        ...config.breaker,
        telemetry: this.telemetry,
      });
      // Fetches refused while the breaker was open wait for no poll: the database is back.
      this.telemetry.on('circuit:close', () => this.wake(['*']));
      const call = <T>(fn: () => Promise<T>): Promise<T> => this.breaker.call(fn);
      this.outcomes = new OutcomeWriter(this.pool, this.jobs, {
        call,
        onError: (error, pending) =>
          log.warn(
            { error: error.message, pending },
            'could not record job outcomes; holding them',
          ),
      });
      this.lostFetches = new LostFetches(this.pool, new MaintenanceQueries(config.schema), call);
      this.control = new ControlChannel(this);

      // Plugins are built before anything runs: a bad crontab entry stops the node here.
      const context: PluginContext = {
        pool: this.pool,
        node: this.name,
        telemetry: this.telemetry,
        call,
        isLeader: () => this.isLeader,
      };
      const plugins = [
        new Stager(context, this.jobs, config.plugins.stager.interval),
        ...(this.options.plugins ?? []).flatMap((factory) => factory(context, this)),
      ];
      // testing 'inline' or 'manual': nothing is fetched or scheduled; the suite drives jobs
      // with quern/testing (drainQueue). Plugins are still built, so config errors still show.
      this.plugins = config.testing === 'disabled' ? plugins : [];

      const notifier = new Notifier(this.database.url, config.schema);
      notifier.on('insert', (queues) => this.wake(queues));
      notifier.on(
        'control',
        (message) => void this.control.handle(message as unknown as ControlMessage),
      );
      notifier.on('error', (error) =>
        log.warn({ error: error.message }, 'notification connection error'),
      );
      notifier.on('reconnect', (attempt) =>
        this.telemetry.emit('notifier:reconnect', { node: this.name, attempt }),
      );
      notifier.on('connected', () => this.wake(['*']));
      this.notifier = notifier;
      await notifier.start();
      this.checkStart();

      // The first heartbeat comes before the first fetch, so the lifeline never sees a job of
      // a node without a row; jobs a killed earlier process of this node left are rescued here.
      const seen = await waitForNameToBeFree({
        pool: this.pool,
        nodes: this.nodes,
        name: this.name,
        heartbeatTimeout: config.heartbeatTimeout,
        heartbeatInterval: config.heartbeatInterval,
        signal: this.startAbort.signal,
        onWait: (ageMs) =>
          log.warn(
            { node: this.name, heartbeatAgeMs: Math.round(ageMs) },
            'a node of this name sent a heartbeat recently: waiting to see whether it is still alive',
          ),
      });
      this.checkStart();
      this.fence = new HeartbeatFence(fenceTimings(config), {
        fence: (silentMs) => this.onFence(silentMs),
        lift: (fencedMs) => this.onFenceLifted(fencedMs),
      });
      const joinSent = HeartbeatFence.now();
      const joined = await joinCluster({
        pool: this.pool,
        schema: config.schema,
        nodes: this.nodes,
        name: this.name,
        runId: this.runId,
        startedAt: this.startedAt,
        heartbeatTimeout: config.heartbeatTimeout,
        stopWithin: stopWithin(config),
        queues: {},
        seen,
      });
      this.joined = true;
      // Joining wrote this node's first heartbeat: from here, jobs may run, so the fence counts.
      this.fence.written(joinSent);
      if (joined.startedCluster) log.info('no other live node: this node starts the cluster');
      if (joined.rescued.rescued + joined.rescued.discarded > 0)
        log.warn(joined.rescued, 'rescued jobs an earlier process of this node left executing');
      // Configured queues, with the changes saved at runtime (pause, scale, start, stop).
      // The last point a stop gives up the start: once queues run, the start finishes and the
      // stop is the usual one (running jobs get their grace period).
      this.checkStart();
      if (config.testing !== 'disabled')
        log.info({ testing: config.testing }, 'testing mode: no queue runs on this node');
      await this.control.applySettings();
      this.peer = new Peer({
        url: this.database.url,
        schema: config.schema,
        node: this.name,
        interval: Math.min(1000, config.heartbeatInterval),
        telemetry: this.telemetry,
        onChange: (leader) => this.onLeadership(leader),
      });
      await this.peer.start();
      await this.heartbeat();
      this.scheduleHeartbeat();
      this.control.start();
      this.state = 'running';
      log.info(
        {
          node: this.name,
          queues: Object.fromEntries(
            [...this.supervisors].map(([q, s]) => [
              q,
              { limit: s.producer.limit, threads: s.threadCount, paused: s.producer.paused },
            ]),
          ),
        },
        `node ${this.name} started`,
      );
      this.telemetry.emit('node:up', { node: this.name, queues: [...this.supervisors.keys()] });
    } catch (error) {
      const aborted = this.startAbort.signal.aborted;
      await this.teardown(
        aborted ? 'stopped while starting' : `start failed: ${(error as Error).message}`,
      ).catch(() => undefined);
      this.state = 'stopped';
      // Whatever a step threw once a stop was asked for (a connection cut under it), the start
      // ended because of the stop.
      throw aborted ? (this.startAbort.signal.reason as Error) : error;
    }
  }

  startQueue(queue: string, queueConfig: QueueConfig): QueueSupervisor | null {
    const existing = this.supervisors.get(queue);
    if (existing) return existing;
    if (this.config.testing !== 'disabled') return null; // the suite drains queues itself
    const supervisor = new QueueSupervisor({
      queue,
      node: this.name,
      config: queueConfig,
      workersDir: this.config.workers,
      cancelGracePeriod: this.config.cancelGracePeriod,
      restartBudget: this.config.restartBudget,
      telemetry: this.telemetry,
      producer: {
        node: this.name,
        pool: this.fetchPool,
        queries: this.jobs,
        outcomes: this.outcomes,
        workers: this.workers,
        telemetry: this.telemetry,
        call: (fn) => this.breaker.call(fn),
        runId: this.runId,
        onFetchFailed: (token, error) => this.lostFetches.failed(token, error),
      },
    });
    this.supervisors.set(queue, supervisor);
    if (this.fence?.fenced) supervisor.producer.fenced = true; // it fetches once the fence lifts
    supervisor.start();
    return supervisor;
  }

  async stopQueue(queue: string): Promise<boolean> {
    const supervisor = this.supervisors.get(queue);
    if (!supervisor) return false;
    supervisor.stopFetching();
    await this.waitForQueues([supervisor], Date.now() + this.config.shutdownGracePeriod);
    await supervisor.stop();
    this.supervisors.delete(queue);
    return true;
  }

  wake(queues: string[]): void {
    if (queues.includes('*')) {
      for (const supervisor of this.supervisors.values()) supervisor.producer.wake();
      return;
    }
    for (const queue of queues) this.supervisors.get(queue)?.producer.wake();
  }

  private onLeadership(leader: boolean): void {
    for (const plugin of this.plugins) {
      if (leader) plugin.start();
      else void plugin.stop();
    }
    void this.heartbeat().catch(() => undefined);
  }

  private scheduleHeartbeat(): void {
    this.heartbeatTimer = setTimeout(() => {
      void this.heartbeat()
        .catch(() => undefined)
        .finally(() => {
          // On while stopping too: jobs run through the shutdown grace period, and a node that
          // fell silent then would see them rescued (and fence them itself) while they run.
          if (this.leaving) return;
          if (this.state === 'running' || this.state === 'starting' || this.state === 'stopping')
            this.scheduleHeartbeat();
        });
    }, this.config.heartbeatInterval);
    this.heartbeatTimer.unref();
  }

  queueHeartbeats(): Record<string, QueueHeartbeat> {
    return Object.fromEntries(
      [...this.supervisors].map(([queue, s]) => [
        queue,
        {
          limit: s.producer.limit,
          threads: s.threadCount,
          running: s.producer.runningCount,
          paused: s.producer.paused,
        },
      ]),
    );
  }

  async heartbeat(): Promise<void> {
    if (!this.nodes || this.leaving) return;
    // Taken before sending: the row's time is never earlier, so the fence never counts late.
    const sentAt = HeartbeatFence.now();
    const beat = this.breaker.probe(() =>
      this.nodes.heartbeat(
        this.pool,
        this.name,
        this.queueHeartbeats(),
        this.isLeader,
        this.startedAt,
        this.config.heartbeatTimeout,
        stopWithin(this.config),
        false,
      ),
    );
    this.heartbeating = beat.then(
      () => undefined,
      () => undefined,
    );
    if (!(await beat)) return this.onReplaced();
    this.fence?.written(sentAt);
    // The database answers again: jobs claimed by fetches whose answer was lost go back. Not
    // awaited: the next heartbeat waits for this one, and a put-back that is slow (on a
    // connection that hangs, until the pool's query timeout) left the node without heartbeats
    // past heartbeatTimeout, fenced; it is repeated for two minutes after a lost fetch.
    if (this.lostFetches.pending > 0) void this.lostFetches.release().catch(() => undefined);
  }

  /**
   * The row of this node's name is another process's (another started_at): this one was silent
   * past heartbeatTimeout (frozen by SIGSTOP or a paused VM, or cut off), and a process started
   * meanwhile under the same name, took the name and rescued this one's jobs. Two processes
   * under one name rescue each other's jobs, and the jobs of one that dies are never rescued
   * while the other heartbeats for the name, so this one stops: fenced for good (its heartbeats
   * no longer count), its running jobs stopped, its row left to the other process, and
   * `stoppedOnItsOwn` resolves (`node cluster.js` exits 1).
   */
  private onReplaced(): void {
    if (this.replaced) return;
    this.replaced = true;
    const reason = `another process took the node name "${this.name}" while this one wrote no heartbeat for longer than heartbeatTimeout (${this.config.heartbeatTimeout} ms) and rescued its jobs: this process stops`;
    this.log.error({ node: this.name }, reason);
    this.fence?.fenceNow();
    this.resolveStoppedOnItsOwn(reason);
    void this.stop('replaced by another process of the same name');
  }

  /**
   * No heartbeat was written for `silentMs`: another node may soon rescue this node's jobs, so
   * they stop here first (fence.ts). Fetching stops on every queue; claimed jobs not started go
   * back when the database can be written; running jobs get their abort signal, and their
   * threads are terminated after the fence's grace. Their outcomes (`interrupted`: available,
   * attempt refunded) go through the outcome writer, fenced by attempt token: if a rescue came
   * first the write is refused, else the job simply goes back.
   */
  private onFence(silentMs: number): void {
    const { heartbeatTimeout } = this.config;
    const { graceMs } = this.fence!.timings;
    const reason = `no heartbeat written for ${Math.round(silentMs)} ms; other nodes may rescue this node's jobs after heartbeatTimeout (${heartbeatTimeout} ms)`;
    let jobs = 0;
    for (const supervisor of this.supervisors.values())
      jobs += supervisor.fence(`node ${this.name} lost the database: ${reason}`, graceMs);
    this.telemetry.emit('node:fence', {
      node: this.name,
      jobs,
      silentMs: Math.round(silentMs),
      reason,
    });
  }

  private onFenceLifted(fencedMs: number): void {
    for (const supervisor of this.supervisors.values()) supervisor.lift();
    this.telemetry.emit('node:unfence', { node: this.name, fencedMs: Math.round(fencedMs) });
  }

  /** Stops a running job on this node (the cancel of a job that another node may have asked for). */
  cancelRunning(id: number, reason: string, token?: string | null): boolean {
    for (const supervisor of this.supervisors.values()) {
      if (supervisor.producer.cancelRunning(id, reason, token)) return true;
    }
    return false;
  }

  private async waitForQueues(supervisors: QueueSupervisor[], deadline: number): Promise<boolean> {
    const idle = Promise.all(supervisors.map((s) => s.producer.idle())).then(() => true);
    const timeout = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
      void idle.then(() => clearTimeout(timer));
    });
    return Promise.race([idle, timeout]);
  }

  /** Graceful stop: no new fetches, running jobs get the grace period, outcomes are written. */
  stop(reason = 'stopped'): Promise<void> {
    this.stopping ??= this.doStop(reason);
    return this.stopping;
  }

  /**
   * What a shutdown still waits on: its steps in progress and the jobs still running.
   * cli/start.ts logs this when a shutdown passes its bound.
   */
  shutdownPending(): string[] {
    const running = [...this.supervisors.values()].flatMap((s) =>
      s.producer.runningJobs().map((j) => `job ${j.id} (${j.worker}, queue ${s.queue}) running`),
    );
    const outcomes = this.outcomes?.pending ?? 0;
    return [
      ...this.stopSteps,
      ...running,
      ...(outcomes > 0 ? [`${outcomes} job outcomes not written`] : []),
    ];
  }

  /** Runs one step of the shutdown, named in shutdownPending() while it runs. */
  private async stopStep<T>(name: string, step: () => Promise<T>): Promise<T> {
    this.stopSteps.add(name);
    try {
      return await step();
    } finally {
      this.stopSteps.delete(name);
    }
  }

  private async doStop(reason: string): Promise<void> {
    if (this.state === 'starting') {
      // The start gives up at its next step (a database wait at once) and tears down what it
      // started, an embedded server included; if it had just finished, stop as usual.
      this.log.info({ reason }, `node ${this.name} stopping while starting`);
      this.startAbort.abort(new StartAborted(`node stopped while starting (${reason})`));
      await this.stopStep('start: ending its current step', () =>
        (this.starting ?? Promise.resolve()).catch(() => undefined),
      );
    }
    if (this.state === 'stopped' || this.state === 'new') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    const { log } = this;
    log.info(
      { reason, gracePeriodMs: this.config.shutdownGracePeriod },
      `node ${this.name} stopping`,
    );
    const supervisors = [...this.supervisors.values()];
    supervisors.forEach((s) => s.stopFetching());
    const deadline = Date.now() + this.config.shutdownGracePeriod;
    const finished = await this.stopStep('jobs: finishing within the grace period', () =>
      this.waitForQueues(supervisors, deadline),
    );
    if (!finished) {
      const left = supervisors.flatMap((s) =>
        s.producer.runningJobs().map((j) => ({ queue: s.queue, ...j })),
      );
      log.warn(
        {
          jobs: left.map((j) => ({
            id: j.id,
            worker: j.worker,
            queue: j.queue,
            runningMs: Date.now() - j.startedAt,
          })),
        },
        `${left.length} jobs still running after the grace period; they are stopped and will run again`,
      );
    }
    await this.teardown(reason);
    this.state = 'stopped';
  }

  private async teardown(reason: string): Promise<void> {
    const step = <T>(name: string, fn: () => Promise<T>): Promise<T> => this.stopStep(name, fn);
    this.fence?.stop();
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.control?.stop();
    // Together: a plugin stop waits for its database call in flight, which on a hung database
    // never ends, and the jobs' threads must still be stopped (they need no database).
    await Promise.all([
      ...this.plugins.map((plugin) =>
        step(`plugin ${plugin.constructor.name}: stopping`, () => plugin.stop()),
      ),
      // Destroying the pools ends unfinished jobs as interrupted: their outcome puts them back.
      ...[...this.supervisors.values()].map((s) =>
        step(`queue ${s.queue}: stopping its threads`, () => s.stop()),
      ),
    ]);
    await new Promise((resolve) => setImmediate(resolve));
    if (this.outcomes) {
      const left = await step('outcomes: writing the last ones', () =>
        this.outcomes.drain(Date.now() + OUTCOME_DRAIN_MS),
      );
      if (left > 0)
        this.log.error(
          { pending: left },
          'could not record every outcome before stopping; the lifeline will rescue those jobs',
        );
      this.outcomes.close();
    }
    if (this.peer) await step('leadership: closing its connection', () => this.peer!.stop());
    if (this.notifier)
      await step('notifications: closing the LISTEN connection', () => this.notifier!.stop());
    // Only a node that wrote its row removes it: a start refused because another live process
    // has this name must not delete that process's heartbeat.
    // No heartbeat after this point, and none in flight: the one sent when leadership ends (on
    // peer.stop) would otherwise land after the removal and bring the row back to life, so the
    // next node to start would see a live node and not start the cluster (@reboot).
    this.leaving = true;
    if (this.heartbeating)
      await step('heartbeat: the last one in flight', () => this.heartbeating!);
    if (this.joined && this.nodes && this.pool)
      await step('node row: removing it', () =>
        this.nodes.remove(this.pool, this.name, this.startedAt).catch(() => undefined),
      );
    await step('pools: closing their connections', () =>
      Promise.all([
        this.pool?.end().catch(() => undefined),
        this.fetchPool?.end().catch(() => undefined),
      ]),
    );
    this.telemetry.emit('node:down', { node: this.name, reason });
    await this.metrics?.stop();
    if (this.database?.embedded)
      await step('embedded PostgreSQL: stopping it', () => this.database.embedded!.stop());
    this.detachLogger?.();
  }
}
