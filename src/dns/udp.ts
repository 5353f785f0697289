import { createSocket, type Socket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import type { Logger } from '../observability/logger.js';
import type { Answerer } from './answerer.js';

/** The GeoDNS UDP listener: one datagram in, at most one datagram out. */
export class UdpListener {
  readonly #socket: Socket;
  readonly #answer: Answerer;
  readonly #logger: Logger;

  constructor(host: string, answer: Answerer, logger: Logger) {
    this.#socket = createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4' });
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
      this.#socket.bind({ address: host, port, exclusive: true }, () => {
        this.#socket.off('error', failed);
        resolve(this.#socket.address());
      });
    });
  }

  #received(message: Buffer, address: string, port: number): void {
    const out = this.#answer(message, address, 'udp');
    if (out === null) return;
    if (out instanceof Promise) void out.then((later) => later !== null && this.#send(later, address, port));
    else this.#send(out, address, port);
  }

  #send(out: Buffer, address: string, port: number): void {
    this.#socket.send(out, port, address, (err) => {
      if (err !== null) this.#logger.debug({ err: err.message, peer: address }, 'dns udp answer not sent');
    });
  }

  /** Stops receiving. */
  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}
