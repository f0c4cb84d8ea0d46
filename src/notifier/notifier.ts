// One dedicated LISTEN connection per node (pg-listen). It turns insert notifications into
// queue wake-ups and control notifications into messages. pg-listen re-subscribes after a
// reconnect by itself; we retry forever (retryTimeout 0) because notifications lost while the
// connection is down are also found by polling. Channels are derived from the schema.

import * as pgListen from 'pg-listen';
import type { Subscriber } from 'pg-listen';
import { EventEmitter } from 'eventemitter3';
import { channelNames } from '../db/identifiers.js';

// pg-listen is CommonJS with `exports.default`; under Node's ESM loader that is `.default`.
type CreateSubscriber = (
  config: {
    connectionString: string;
    application_name: string;
    query_timeout: number;
    connectionTimeoutMillis: number;
  },
  options: Record<string, unknown>,
) => Subscriber;
const listenModule = pgListen as unknown as {
  default: CreateSubscriber | { default: CreateSubscriber };
};
const createSubscriber: CreateSubscriber =
  typeof listenModule.default === 'function' ? listenModule.default : listenModule.default.default;

/** The LISTEN connection's statements (its LISTENs and pg-listen's checks) answer within this. */
const CHECK_TIMEOUT_MS = 2000;

export interface NotifierEvents {
  /** Queues that got available jobs; '*' means all. */
  insert: (queues: string[]) => void;
  control: (message: Record<string, unknown>) => void;
  connected: () => void;
  reconnect: (attempt: number) => void;
  error: (error: Error) => void;
}

export class Notifier extends EventEmitter<NotifierEvents> {
  private subscriber: Subscriber | null = null;
  readonly channels: { insert: string; control: string };

  constructor(
    private readonly url: string,
    schema: string,
  ) {
    super();
    this.channels = channelNames(schema);
  }

  async start(): Promise<void> {
    if (this.subscriber) return;
    const subscriber = createSubscriber(
      {
        connectionString: this.url,
        application_name: 'quern-notifier',
        // pg-listen's check of the connection (every paranoidChecking ms) reconnects when its
        // query fails, and only then: on a connection that hangs for good (a firewall that lost
        // its state) it waited for good too, and no notification came for as long as the kernel
        // kept the connection (about 15 minutes). Bounded, the check fails and pg-listen
        // reconnects and LISTENs again; so does a connect that is never answered.
        query_timeout: CHECK_TIMEOUT_MS,
        connectionTimeoutMillis: 5000,
      },
      {
        paranoidChecking: 2000,
        // pg-listen's reconnect loop (retryTimeout 0: forever) does not look at close(); a
        // retryInterval that throws once we stop is the only way to end it, so that a node
        // stopping while the database is away can exit.
        retryInterval: () => {
          if (this.stopped) throw new Error('notifier stopped');
          return 250;
        },
        retryTimeout: 0,
        parse: (text: string) => text,
      },
    );
    subscriber.events.on('error', (error: Error) => this.emit('error', error));
    subscriber.events.on('reconnect', (attempt: number) => this.emit('reconnect', attempt));
    subscriber.events.on('connected', () => this.emit('connected'));
    subscriber.notifications.on(this.channels.insert, (payload?: string) => {
      this.emit('insert', payload ? payload.split(',') : ['*']);
    });
    subscriber.notifications.on(this.channels.control, (payload?: string) => {
      if (!payload) return;
      try {
        const message = JSON.parse(payload) as unknown;
        if (message && typeof message === 'object')
          this.emit('control', message as Record<string, unknown>);
      } catch {
        // A control payload we did not write; ignore it.
      }
    });
    this.subscriber = subscriber;
    await subscriber.connect();
    await subscriber.listenTo(this.channels.insert);
    await subscriber.listenTo(this.channels.control);
  }

  private stopped = false;

  async stop(): Promise<void> {
    this.stopped = true;
    const subscriber = this.subscriber;
    this.subscriber = null;
    if (subscriber) await subscriber.close().catch(() => undefined);
  }
}
