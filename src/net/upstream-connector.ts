import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { buildConnector } from 'undici';
import { alpnRefusedError } from './upstream-protocol.js';
import { isTlsHandshakeError, sniFor, tlsConnectOptions, UpstreamTlsError, type UpstreamTarget } from './upstream-tls.js';

/** What a connector reports besides the socket: every socket it hands over, and every TLS handshake that failed. */
export interface ConnectorHooks {
  /** Called with each connected socket before undici uses it. */
  readonly onSocket?: (socket: Socket) => void;
  /** Called with each failed TLS handshake (the connect fails with it too). */
  readonly onTlsFailure?: (err: UpstreamTlsError) => void;
}

/**
 * An undici `connect` function for one upstream target: undici's own connector,
 * with the target's TLS settings when it has them. The SNI name is the
 * target's, never the one undici derives from a request's Host header, so every
 * request to one endpoint is verified against the same name. A handshake that
 * fails is reported as an UpstreamTlsError: it happened before anything was
 * sent on the connection, which is what makes a retry elsewhere safe.
 *
 * HTTP/2: an `h2` target offers h2 by ALPN and a handshake that settles on
 * anything else fails like a TLS failure (an HTTP/1.1 connection would be
 * pipelined as if it were multiplexed); an `h2c` socket is marked as having
 * chosen h2, which is how undici's client is told to speak HTTP/2 on it.
 */
export function upstreamConnector(options: buildConnector.BuildOptions, target: UpstreamTarget, hooks: ConnectorHooks = {}): buildConnector.connector {
  const tls = target.tls != null;
  const servername = sniFor(target);
  // The name goes with each connect below: in the build options undici would rank it below the Host-derived one.
  const { ca, rejectUnauthorized } = tlsConnectOptions(target);
  const h2 = target.protocol === 'h2';
  const h2c = target.protocol === 'h2c';
  const connect = buildConnector(tls ? { ...options, ...(ca === undefined ? {} : { ca }), rejectUnauthorized, ...(h2 ? { allowH2: true } : {}) } : options);
  const { onSocket, onTlsFailure } = hooks;
  return (opts, callback) => {
    // Without a name undici's connector falls back to the URL's host: the name itself, or none for an IP.
    const connectOpts = tls ? { ...opts, servername } : opts;
    connect(connectOpts, (err: Error | null, socket: Socket | TLSSocket | null) => {
      if (err !== null || socket === null) {
        const failure = err ?? new Error('connect failed');
        if (tls && isTlsHandshakeError(failure)) {
          const tlsError = new UpstreamTlsError(failure);
          onTlsFailure?.(tlsError);
          callback(tlsError, null);
        } else {
          callback(failure, null);
        }
        return;
      }
      if (h2 && (socket as TLSSocket).alpnProtocol !== 'h2') {
        const tlsError = new UpstreamTlsError(alpnRefusedError((socket as TLSSocket).alpnProtocol));
        socket.destroy();
        onTlsFailure?.(tlsError);
        callback(tlsError, null);
        return;
      }
      if (h2c) (socket as Socket & { alpnProtocol?: string }).alpnProtocol = 'h2';
      onSocket?.(socket);
      callback(null, socket);
    });
  };
}
