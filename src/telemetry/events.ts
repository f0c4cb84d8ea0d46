// The telemetry catalogue: every state change a node makes is an event named `scope:action` with
// a documented payload. Emitting never throws: a listener that throws is reported on
// `telemetry:error` (and logged by the default logger), never propagated into the runtime.

import { EventEmitter } from 'eventemitter3';
import type { JobState } from '../jobs/types.js';

export interface JobEventBase {
  id: number;
  worker: string;
  queue: string;
  attempt: number;
  node: string;
  /** The job's args. The default logger leaves them out unless `logArgs` is set. */
  args?: Record<string, unknown>;
}

export interface TelemetryEvents {
  'job:start': JobEventBase & { queueTimeMs: number };
  'job:stop': JobEventBase & {
    state: JobState;
    durationMs: number;
    queueTimeMs: number;
    result?: unknown;
  };
  'job:exception': JobEventBase & {
    error: string;
    stack: string;
    willRetry: boolean;
    state: JobState;
  };
  'job:warning': JobEventBase & { warning: string };
  'job:cancel': { id: number; node: string; running: boolean };
  'queue:pause': { queue: string; node: string };
  'queue:resume': { queue: string; node: string };
  'queue:scale': { queue: string; node: string; limit: number };
  'queue:start': { queue: string; node: string; limit: number };
  'queue:stop': { queue: string; node: string };
  'queue:crashed': { queue: string; node: string; restarts: number; retryInMs: number };
  'circuit:trip': { name: string; error: string; failures: number };
  'circuit:open': { name: string };
  'circuit:close': { name: string };
  'leader:elected': { node: string };
  'leader:lost': { node: string; reason: string };
  'plugin:start': { plugin: string; node: string };
  'plugin:stop': {
    plugin: string;
    node: string;
    durationMs: number;
    staged?: number;
    pruned?: number;
    rescued?: number;
    discarded?: number;
    inserted?: number;
  };
  'plugin:exception': { plugin: string; node: string; error: string };
  /** A worker thread died; `culprit` is the job it died of when the thread could tell. */
  'pool:crash': {
    queue: string;
    node: string;
    error: string;
    jobs: number[];
    culprit: number | null;
  };
  'pool:restart': { queue: string; node: string; restarts: number };
  'node:up': { node: string; queues: string[] };
  'node:down': { node: string; reason: string };
  /**
   * The node wrote no heartbeat for `silentMs`: it stopped fetching and asked its `jobs` running
   * jobs to stop, before another node may rescue them (src/node/fence.ts).
   */
  'node:fence': { node: string; jobs: number; silentMs: number; reason: string };
  /** A heartbeat was written again after `fencedMs` fenced: the queues fetch again. */
  'node:unfence': { node: string; fencedMs: number };
  'notifier:reconnect': { node: string; attempt: number };
  'telemetry:error': { event: string; error: Error };
}

export type TelemetryEventName = keyof TelemetryEvents;

type Listener<K extends TelemetryEventName> = (payload: TelemetryEvents[K]) => void;

export class Telemetry {
  private readonly emitter = new EventEmitter();

  on<K extends TelemetryEventName>(event: K, listener: Listener<K>): this {
    this.emitter.on(event, listener as (payload: unknown) => void);
    return this;
  }

  once<K extends TelemetryEventName>(event: K, listener: Listener<K>): this {
    this.emitter.once(event, listener as (payload: unknown) => void);
    return this;
  }

  off<K extends TelemetryEventName>(event: K, listener: Listener<K>): this {
    this.emitter.off(event, listener as (payload: unknown) => void);
    return this;
  }

  /** Calls each listener in turn; a throwing listener is reported and the others still run. */
  emit<K extends TelemetryEventName>(event: K, payload: TelemetryEvents[K]): void {
    for (const listener of this.emitter.listeners(event)) {
      try {
        (listener as Listener<K>)(payload);
      } catch (error) {
        if (event === 'telemetry:error') continue;
        this.emit('telemetry:error', {
          event,
          error: error instanceof Error ? error : new Error(String(error)),
        });
      }
    }
  }

  /** Resolves with the next payload of `event` that satisfies `predicate` (handy in tests). */
  waitFor<K extends TelemetryEventName>(
    event: K,
    predicate: (payload: TelemetryEvents[K]) => boolean = () => true,
    timeoutMs = 30000,
  ): Promise<TelemetryEvents[K]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off(event, listener);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${event}`));
      }, timeoutMs);
      const listener: Listener<K> = (payload) => {
        if (!predicate(payload)) return;
        clearTimeout(timer);
        this.off(event, listener);
        resolve(payload);
      };
      this.on(event, listener);
    });
  }

  removeAllListeners(): void {
    this.emitter.removeAllListeners();
  }
}
