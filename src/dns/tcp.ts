import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from '../observability/logger.js';
import type { Answerer } from './answerer.js';
import { listenOn, type PortSharing } from '../net/address.js';

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
  /** Bytes received and not yet framed, kept as chunks: joined once per whole frame. */
  #chunks: Buffer[] = [];
  #buffered = 0;
  #pending = 0;
  #closed = false;
  /** Closes a connection whose frame has been arriving for longer than the idle timeout. */
  #frameTimer: NodeJS.Timeout | null = null;

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
    socket.on('close', () => {
      this.#closed = true;
      if (this.#frameTimer !== null) clearTimeout(this.#frameTimer);
    });
  }

  #read(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    let framed = false;
    for (;;) {
      if (this.#buffered < 2) break;
      const head = this.#chunks[0] as Buffer;
      const size = head.length >= 2 ? head.readUInt16BE(0) : ((head[0] as number) << 8) | ((this.#chunks[1] as Buffer)[0] as number);
      if (this.#buffered < 2 + size) break;
      const all = this.#chunks.length === 1 ? head : Buffer.concat(this.#chunks, this.#buffered);
      const rest = all.subarray(2 + size);
      this.#chunks = rest.length === 0 ? [] : [rest];
      this.#buffered = rest.length;
      framed = true;
      this.#query(all.subarray(2, 2 + size));
    }
    this.#watchFrame(framed);
  }

  /** A sender trickling a frame byte by byte would reset the idle timer forever: frames get the idle timeout to arrive whole. */
  #watchFrame(framed: boolean): void {
    if (this.#frameTimer !== null && (framed || this.#buffered === 0)) {
      clearTimeout(this.#frameTimer);
      this.#frameTimer = null;
    }
    if (this.#buffered > 0 && this.#frameTimer === null) {
      this.#frameTimer = setTimeout(() => this.socket.destroy(), this.limits.idleTimeoutMs);
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
    void out
      .then((later) => {
        if (later !== null) this.#write(later);
      })
      .catch(() => this.socket.destroy())
      .finally(() => {
        this.#pending--;
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
  listen(host: string, port: number, sharing: PortSharing = 'own'): Promise<AddressInfo> {
    return listenOn(this.#server, host, port, sharing);
  }

  /** Stops accepting and closes every connection. */
  close(): Promise<void> {
    for (const socket of this.#connections) socket.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}
