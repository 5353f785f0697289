import { createSocket, type Socket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import { sharingOptions, type PortSharing } from '../net/address.js';
import type { Logger } from '../observability/logger.js';
import type { Answerer } from './answerer.js';

/** The GeoDNS UDP listener: one datagram in, at most one datagram out. */
export class UdpListener {
  readonly #socket: Socket;
  readonly #answer: Answerer;
  readonly #logger: Logger;

  readonly #sharing: PortSharing;
  #closed = false;

  constructor(host: string, answer: Answerer, logger: Logger, sharing: PortSharing = 'own') {
    // Answers go to the literal address a query came from: resolve it on the spot,
    // without dns.lookup's extra tick per datagram.
    const family = isIP(host) === 6 ? 6 : 4;
    this.#sharing = sharing;
    this.#socket = createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      lookup: (address, _options, done) => done(null, address, isIP(address) || family),
      ...(sharing === 'reuseport' ? { reusePort: true } : {}),
    });
    this.#answer = answer;
    this.#logger = logger;
    this.#socket.on('message', (message, peer) => this.#received(message, peer.address, peer.port));
    // Send failures (ICMP unreachable and the like) are the client's problem; the socket stays up.
    this.#socket.on('error', (err) => this.#logger.warn({ err: err.message }, 'dns udp socket error'));
  }

  /** Binds; resolves with the bound address. */
  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const failed = (err: Error): void => reject(err);
      this.#socket.once('error', failed);
      this.#socket.bind({ address: host, port, exclusive: sharingOptions(this.#sharing).exclusive }, () => {
        this.#socket.off('error', failed);
        resolve(this.#socket.address());
      });
    });
  }

  #received(message: Buffer, address: string, port: number): void {
    const out = this.#answer(message, address, 'udp');
    if (out === null) return;
    if (!(out instanceof Promise)) this.#send(out, address, port);
    else
      void out
        .then((later) => {
          if (later !== null) this.#send(later, address, port);
        })
        .catch((err: Error) => this.#logger.error({ err: err.message }, 'dns udp answer failed'));
  }

  #send(out: Buffer, address: string, port: number): void {
    // A forwarded answer may be ready after close, when sending would throw.
    if (this.#closed) return;
    // Without a callback Node can send synchronously; failures reach the 'error' handler.
    this.#socket.send(out, port, address);
  }

  /** Stops receiving. */
  close(): Promise<void> {
    this.#closed = true;
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}
