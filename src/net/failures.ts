/**
 * How a conversation with a peer failed, named once: the proxy maps these to
 * its answers (502/504 and their codes), active health checks report them as
 * an endpoint's reason, and passive health ejects on some of them.
 */

/** The ways talking to an upstream can fail below HTTP, plus an answer that is not HTTP. */
export type TransportFailure =
  /** The connection was refused. */
  | 'connect-refused'
  /** No route to the host or network, or its name did not resolve. */
  | 'unreachable'
  /** The connection was not established in time. */
  | 'connect-timeout'
  /** The TLS handshake failed (the certificate did not verify, or no common protocol): nothing was sent. */
  | 'tls-failed'
  /** Connected, but the answer (or the rest of it) did not come in time. */
  | 'timeout'
  /** The connection was closed or reset under the request. */
  | 'reset'
  /** The request was dispatched to a pool already closed (a table swap): nothing was sent. */
  | 'retired'
  /** The upstream's bytes are not a valid HTTP response. */
  | 'bad-response'
  /** The request itself could not be sent as it was (framing). */
  | 'bad-request'
  /** Meridian abandoned the request (the client went away). */
  | 'aborted'
  /** This process could not open a socket (out of file descriptors or socket buffers): the upstream is not to blame. */
  | 'local-limit'
  /** Every connection to the upstream stayed busy until the try's deadline: the request never left. */
  | 'queued'
  /** Anything else. */
  | 'error';

/** What a finished try tells passive health about its endpoint. */
export type PassiveSignal = 'connect-refused' | 'connect-timeout' | 'tls-failed' | 'reset' | 'status-5xx' | 'timeout';

const BY_CODE: Readonly<Record<string, TransportFailure>> = {
  ECONNREFUSED: 'connect-refused',
  EHOSTUNREACH: 'unreachable',
  ENETUNREACH: 'unreachable',
  EHOSTDOWN: 'unreachable',
  ENOTFOUND: 'unreachable',
  EAI_AGAIN: 'unreachable',
  EADDRNOTAVAIL: 'unreachable',
  UND_ERR_CONNECT_TIMEOUT: 'connect-timeout',
  MERIDIAN_TLS_FAILED: 'tls-failed',
  UND_ERR_HEADERS_TIMEOUT: 'timeout',
  UND_ERR_BODY_TIMEOUT: 'timeout',
  ETIMEDOUT: 'timeout',
  UND_ERR_CLOSED: 'retired',
  UND_ERR_SOCKET: 'reset',
  ECONNRESET: 'reset',
  EPIPE: 'reset',
  UND_ERR_REQ_CONTENT_LENGTH_MISMATCH: 'bad-request',
  UND_ERR_INVALID_ARG: 'bad-request',
  UND_ERR_ABORTED: 'aborted',
  MERIDIAN_QUEUE_TIMEOUT: 'queued',
  EMFILE: 'local-limit',
  ENFILE: 'local-limit',
  ENOBUFS: 'local-limit',
  MERIDIAN_BAD_RESPONSE: 'bad-response',
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'bad-response',
  UND_ERR_RES_EXCEEDED_MAX_SIZE: 'bad-response',
  UND_ERR_HEADERS_OVERFLOW: 'bad-response',
};

/** Names the failure behind an error from undici, a socket, or a timeout signal. */
export function classifyTransportError(err: Error): TransportFailure {
  if (err.name === 'TimeoutError') return 'timeout';
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const known = BY_CODE[code];
  if (known !== undefined) return known;
  // undici's parser errors do not always carry their HPE_ code: the class name tells.
  return code.startsWith('HPE_') || err.name === 'HTTPParserError' ? 'bad-response' : 'error';
}
