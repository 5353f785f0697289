import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from '../observability/logger.js';
import type { Answerer } from './answerer.js';

/** Limits of the TCP listener. */
export interface TcpLimits {
  /** Connections open at once; more are closed as they arrive. */
  readonly maxConnections: number;
  /** A connection with no query in flight and no traffic for this long is closed. */
  readonly idleTimeoutMs: number;
  /** Queries one connection may have in flight before its reading pauses. */
  readonly maxPendingPerConnection: number;
}

/**
 * One client connection: RFC 7766 framing (a two-byte length before each
 * message), several queries per connection, answered as they are ready.
 */
class DnsConnection {
  #buffer: Buffer = Buffer.alloc(0);
  #pending = 0;
  #closed = false;

  constructor(
    private readonly socket: Socket,
    private readonly answer: Answerer,
    private readonly limits: TcpLimits,
  ) {
    socket.setNoDelay(true);
    socket.setTimeout(limits.idleTimeoutMs, () => {
      if (this.#pending === 0) socket.end();
    });
    socket.on('data', (chunk: Buffer) => this.#read(chunk));
    socket.on('drain', () => this.#resume());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => (this.#closed = true));
  }

  #read(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    while (this.#buffer.length >= 2) {
      const size = this.#buffer.readUInt16BE(0);
      if (this.#buffer.length < 2 + size) break;
      const message = this.#buffer.subarray(2, 2 + size);
      this.#buffer = this.#buffer.subarray(2 + size);
      this.#query(message);
    }
  }

  #query(message: Buffer): void {
    const out = this.answer(message, this.socket.remoteAddress ?? '', 'tcp');
    if (out === null) return;
    if (!(out instanceof Promise)) {
      this.#write(out);
      return;
    }
    this.#pending++;
    if (this.#pending >= this.limits.maxPendingPerConnection) this.socket.pause();
    void out.then((later) => {
      this.#pending--;
      if (later !== null) this.#write(later);
      this.#resume();
    });
  }

  #write(out: Buffer): void {
    if (this.#closed) return;
    const length = Buffer.allocUnsafe(2);
    length.writeUInt16BE(out.length);
    this.socket.write(length);
    // A client that does not read its answers stops being read from.
    if (!this.socket.write(out)) this.socket.pause();
  }

  #resume(): void {
    if (!this.#closed && this.#pending < this.limits.maxPendingPerConnection && !this.socket.writableNeedDrain) this.socket.resume();
  }
}

/** The GeoDNS TCP listener. */
export class TcpListener {
  readonly #server: Server;
  readonly #connections = new Set<Socket>();
  readonly #logger: Logger;
  readonly #limits: TcpLimits;

  constructor(answer: Answerer, limits: TcpLimits, logger: Logger) {
    this.#logger = logger;
    this.#limits = limits;
    this.#server = createServer((socket) => {
      if (this.#connections.size >= this.#limits.maxConnections) {
        socket.destroy();
        return;
      }
      this.#connections.add(socket);
      socket.on('close', () => this.#connections.delete(socket));
      new DnsConnection(socket, answer, limits);
    });
    this.#server.on('error', (err) => this.#logger.warn({ err: err.message }, 'dns tcp listener error'));
  }

  /** Connections open now. */
  get connections(): number {
    return this.#connections.size;
  }

  /** Listens; resolves with the bound address. */
  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host, port }, () => {
        this.#server.off('error', reject);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  /** Stops accepting and closes every connection. */
  close(): Promise<void> {
    for (const socket of this.#connections) socket.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}
