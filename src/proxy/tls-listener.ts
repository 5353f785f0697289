import type { AddressInfo, Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { listenOn, type HostPort, type PortSharing } from '../net/address.js';
import type { Metrics } from '../observability/metrics.js';
import type { CertificateIndex } from './certificates.js';
import type { CertificateSet } from './certificate-set.js';
import { ACME_TLS_ALPN, type AcmeChallenges } from './acme-challenges.js';
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
  /** TLS-ALPN-01 challenges to answer (ACME with `challenge: tls-alpn-01`); absent: ALPN offers h2 and http/1.1 only. */
  readonly challenges?: AcmeChallenges;
}

/** The server's ALPN choice among a client's offers: h2, then http/1.1; undefined refuses the handshake (no common protocol). */
function serverAlpn(protocols: readonly string[]): string | undefined {
  return protocols.includes('h2') ? 'h2' : protocols.includes('http/1.1') ? 'http/1.1' : undefined;
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
  /**
   * The name a TLS-ALPN-01 validation connection asked for: OpenSSL calls the
   * ALPN callback and then the certificate (SNI) callback for the same
   * handshake in one go, so the second sees what the first chose.
   */
  #alpnChallenge: string | null = null;

  constructor(options: TlsListenerOptions) {
    this.#options = options;
    this.#index = options.certificates.index;
    const challenges = options.challenges;
    this.server = createServer({
      ...this.#ownContext(),
      ...(challenges === undefined ? { ALPNProtocols: ['h2', 'http/1.1'] } : { ALPNCallback: ({ servername, protocols }: { servername: string; protocols: string[] }) => this.#alpn(challenges, servername, protocols) }),
      handshakeTimeout: options.handshakeTimeoutMs,
      SNICallback: (servername, callback) => {
        if (this.#alpnChallenge !== null) {
          const name = this.#alpnChallenge;
          this.#alpnChallenge = null;
          const context = name === servername ? challenges?.alpnContext(name) : undefined;
          if (context !== undefined) return callback(null, context);
        }
        callback(null, this.#index.lookup(servername).context);
      },
    });
    // A TLS-ALPN-01 validation ends with its handshake (RFC 8737 3): nothing is served on it.
    this.server.on('secureConnection', (socket: TLSSocket) => (socket.alpnProtocol === ACME_TLS_ALPN ? socket.destroy() : options.onConnection(socket)));
    this.server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      options.metrics.tls.handshakeErrors.inc({ reason: reasonOf(err) });
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

  /** ALPN with ACME: `acme-tls/1` only for a name with a pending challenge (its certificate follows in the SNI callback). */
  #alpn(challenges: AcmeChallenges, servername: string, protocols: readonly string[]): string | undefined {
    this.#alpnChallenge = null;
    // RFC 8737 validation always sends the name; without one there is nothing to answer.
    if (typeof servername === 'string' && protocols.includes(ACME_TLS_ALPN) && challenges.alpnContext(servername) !== undefined) {
      this.#alpnChallenge = servername;
      return ACME_TLS_ALPN;
    }
    return serverAlpn(protocols);
  }

  /** The context for clients that send no server name (the first certificate), with the listener's settings. */
  #ownContext(): { cert: string; key: string; minVersion: 'TLSv1.2' | 'TLSv1.3' } {
    const { cert, key } = this.#index.fallback.pem;
    return { cert, key, minVersion: this.#options.minVersion };
  }
}
