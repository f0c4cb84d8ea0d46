// A TCP proxy in the test process, to cut one node off from PostgreSQL while the server stays up
// for everyone else (a network split). `cut` destroys every connection through it and stops
// listening, so new connections are refused; `restore` listens again on the same port.
// `freeze` is a database that hangs instead: connections stay open (old and new), but nothing
// is forwarded either way, so every query waits for an answer that never comes. `thaw` lets new
// connections through again while the frozen ones stay hung.

import net from 'node:net';

export class TcpProxy {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private port = 0;
  private frozen = false;
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  private readonly target: { host: string; port: number };

  /** `databaseUrl`: where to forward (its host and port). */
  constructor(private readonly databaseUrl: string) {
    const parsed = new URL(databaseUrl);
    this.target = { host: parsed.hostname || '127.0.0.1', port: Number(parsed.port || 5432) };
  }

  /** The database URL, through the proxy. */
  get url(): string {
    const parsed = new URL(this.databaseUrl);
    parsed.hostname = '127.0.0.1';
    parsed.port = String(this.port);
    return parsed.toString();
  }

  /** Connections open through the proxy now. */
  get connections(): number {
    return this.sockets.size / 2;
  }

  async start(): Promise<void> {
    const server = net.createServer((client) => {
      if (this.frozen) {
        // Accepted, never answered: a hung server still completes TCP handshakes.
        this.sockets.add(client);
        client.on('close', () => this.sockets.delete(client));
        client.on('error', () => undefined);
        client.pause();
        return;
      }
      const upstream = net.connect(this.target.port, this.target.host);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
      const pair = { client, upstream };
      this.pairs.add(pair);
      client.on('close', () => this.pairs.delete(pair));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  /** Every connection through the proxy dies at once, and new ones are refused. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    const closed = new Promise<void>((resolve) =>
      server ? server.close(() => resolve()) : resolve(),
    );
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  /** Nothing is forwarded any more, in either direction; connections stay open. */
  freeze(): void {
    this.frozen = true;
    for (const { client, upstream } of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  /**
   * New connections are forwarded again; those opened before stay hung, in both directions (a
   * firewall or NAT that lost their state drops their packets without a word).
   */
  thaw(): void {
    this.frozen = false;
  }

  /** Accepts connections again, on the same port. */
  async restore(): Promise<void> {
    if (!this.server) await this.start();
  }

  async stop(): Promise<void> {
    await this.cut();
  }
}
