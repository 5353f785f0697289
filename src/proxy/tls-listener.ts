import type { AddressInfo, Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { listenOn, type HostPort, type PortSharing } from '../net/address.js';
import type { Metrics } from '../observability/metrics.js';
import type { CertificateIndex } from './certificates.js';
import type { CertificateSet } from './certificate-set.js';
import type { TicketKeys } from './ticket-keys.js';

/** Settings of the TLS listener. */
export interface TlsListenerOptions {
  readonly listen: HostPort;
  readonly certificates: CertificateSet;
  /** Session ticket keys shared by the node's processes; followed as they are renewed. */
  readonly ticketKeys: TicketKeys;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** The whole handshake must finish within this time (a slow or silent client is cut). */
  readonly handshakeTimeoutMs: number;
  readonly sharing: PortSharing;
  readonly metrics: Metrics;
  /** Where each connection goes once its handshake is done (by its ALPN protocol: HTTP/2 sessions or the HTTP/1.1 server). */
  readonly onConnection: (socket: TLSSocket) => void;
}

/** An OpenSSL or socket error code as a metric label; anything else is `other`. */
function reasonOf(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code) ? code : 'other';
}

/**
 * The TLS listener: terminates TLS and hands each connection to the same HTTP
 * server as the plaintext listener, so both share one request path. The
 * certificate is picked by the client's server name (exact, then a one-label
 * wildcard, else the first certificate) and follows the certificate set as it
 * is reloaded. A failed handshake (garbage, plaintext, a client refusing the
 * certificate, a timeout) closes that connection alone and is counted.
 */
export class TlsListener {
  readonly server: Server;
  readonly #options: TlsListenerOptions;
  #index: CertificateIndex;

  constructor(options: TlsListenerOptions) {
    this.#options = options;
    this.#index = options.certificates.index;
    this.server = createServer({
      ...this.#ownContext(),
      ALPNProtocols: ['h2', 'http/1.1'],
      handshakeTimeout: options.handshakeTimeoutMs,
      SNICallback: (servername, callback) => callback(null, this.#index.lookup(servername).context),
    });
    this.server.on('secureConnection', options.onConnection);
    this.server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      options.metrics.tlsHandshakeErrors.inc({ reason: reasonOf(err) });
      socket.destroy();
    });
    options.certificates.onChange((index) => {
      this.#index = index;
      // A new context comes with new ticket keys: the node's shared ones are put back.
      this.server.setSecureContext(this.#ownContext());
      this.server.setTicketKeys(options.ticketKeys.current);
    });
    this.server.setTicketKeys(options.ticketKeys.current);
    options.ticketKeys.onChange((keys) => this.server.setTicketKeys(keys));
  }

  /** Starts listening (on `port` instead of the configured one when given); resolves with the bound address. */
  listen(port = this.#options.listen.port): Promise<AddressInfo> {
    return listenOn(this.server, this.#options.listen.host, port, this.#options.sharing);
  }

  /** Stops accepting; resolves once every connection it accepted has closed. */
  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** The context for clients that send no server name (the first certificate), with the listener's settings. */
  #ownContext(): { cert: string; key: string; minVersion: 'TLSv1.2' | 'TLSv1.3' } {
    const { cert, key } = this.#index.fallback.pem;
    return { cert, key, minVersion: this.#options.minVersion };
  }
}
