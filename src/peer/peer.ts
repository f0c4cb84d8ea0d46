// Leadership: the node holding a session-level advisory lock on its own dedicated connection
// (outside the pool) is the leader. Every node tries to take the lock each interval. When the
// connection errors or ends, the session's lock is gone with it, so the node stops leading at
// once, before any other node can take the lock. Only the leader runs leader-only plugins.
//
// States: follower --(lock taken)--> leader --(connection lost | stop)--> follower.
// A leader also re-checks each interval that its connection still answers, and gives up as soon
// as a check takes longer than CHECK_TIMEOUT_MS. The server is told to probe this connection
// often (TCP keepalives), so it ends the session of a vanished host, and frees the lock, after
// about SERVER_DETECTION_MS: later than the old leader gives up, so two never lead at once.
//
// Failover bound: when a leader's process dies, the server ends its session at once and the
// next node's try (every `interval`) takes the lock; when its host or network vanishes, add
// SERVER_DETECTION_MS.

import pg from 'pg';
import type { Telemetry } from '../telemetry/events.js';

/** A leader whose connection does not answer a check within this gives up leading. */
export const CHECK_TIMEOUT_MS = 1500;
/** Roughly when the server notices a vanished client (keepalive idle + interval x count). */
export const SERVER_DETECTION_MS = 5000;
const SESSION_SETTINGS = [
  'SET tcp_keepalives_idle = 2',
  'SET tcp_keepalives_interval = 1',
  'SET tcp_keepalives_count = 3',
];

export interface PeerOptions {
  url: string;
  schema: string;
  node: string;
  interval: number;
  telemetry: Telemetry;
  onChange: (leader: boolean) => void;
}

export class Peer {
  private client: pg.Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;
  private ticking = false;
  leader = false;

  constructor(private readonly options: PeerOptions) {}

  start(): Promise<void> {
    if (!this.stopped) return Promise.resolve();
    this.stopped = false;
    return this.tick();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.options.interval);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.stopped) return;
    this.ticking = true;
    try {
      const client = await this.connection();
      if (this.leader) {
        await withTimeout(client.query('SELECT 1'), CHECK_TIMEOUT_MS);
      } else {
        // Bounded too: on a connection that hangs for good (a firewall that lost its state) the
        // try never ended, this node never tried again, and could not lead for as long as the
        // kernel kept the connection (about 15 minutes). A lock the server granted meanwhile goes
        // with the session, which ends with the connection.
        const { rows } = await withTimeout(
          client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS locked', [
            `quern:leader:${this.options.schema}`,
          ]),
          CHECK_TIMEOUT_MS,
        );
        if (rows[0]?.locked && !this.stopped) this.becomeLeader();
      }
    } catch (error) {
      this.dropConnection(`leadership connection failed: ${(error as Error).message}`);
    } finally {
      this.ticking = false;
      this.schedule();
    }
  }

  private async connection(): Promise<pg.Client> {
    if (this.client) return this.client;
    const client = new pg.Client({
      connectionString: this.options.url,
      application_name: `quern-peer-${this.options.node}`.slice(0, 63),
      keepAlive: true,
      connectionTimeoutMillis: 5000,
    });
    client.on('error', (error: Error) =>
      this.dropConnection(`leadership connection lost: ${error.message}`, client),
    );
    client.on('end', () => this.dropConnection('leadership connection ended', client));
    this.client = client;
    try {
      await client.connect();
      // Over a Unix socket these are ignored, and there is no network to lose.
      for (const setting of SESSION_SETTINGS)
        await withTimeout(client.query(setting), CHECK_TIMEOUT_MS);
    } catch (error) {
      if (this.client === client) this.client = null;
      void client.end().catch(() => undefined);
      throw error;
    }
    return client;
  }

  private becomeLeader(): void {
    this.leader = true;
    this.options.telemetry.emit('leader:elected', { node: this.options.node });
    this.options.onChange(true);
  }

  private dropConnection(reason: string, which?: pg.Client): void {
    if (which && which !== this.client) return;
    const client = this.client;
    this.client = null;
    if (client) void client.end().catch(() => undefined);
    if (this.leader) {
      this.leader = false;
      this.options.telemetry.emit('leader:lost', { node: this.options.node, reason });
      this.options.onChange(false);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    while (this.ticking) await new Promise((r) => setTimeout(r, 10));
    const wasLeader = this.leader;
    this.leader = false;
    if (wasLeader) {
      this.options.telemetry.emit('leader:lost', {
        node: this.options.node,
        reason: 'node stopping',
      });
      this.options.onChange(false);
    }
    const client = this.client;
    this.client = null;
    // Ending the session releases the lock, so another node can lead at once.
    if (client) await client.end().catch(() => undefined);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
