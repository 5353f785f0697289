import type { Socket } from 'node:net';
import type { buildConnector } from 'undici';
import { upstreamConnector } from '../net/upstream-connector.js';
import type { UpstreamTarget, UpstreamTlsError } from '../net/upstream-tls.js';

/**
 * Unsolicited `100 Continue` from upstreams.
 *
 * RFC 9110 15.2: a client must accept a 1xx response it did not ask for. undici's
 * HTTP/1.1 client does not: every `100` destroys the socket ("bad response"), so an
 * upstream that sends one before a valid answer would cost the client a 502.
 * Meridian never sends `Expect` upstream, so every `100` it receives is
 * unsolicited and carries nothing: it is removed from the byte stream before
 * undici's parser sees it. (`102` and `103` are left alone: undici handles them.)
 *
 * undici's parser pulls bytes with `socket.read()`, so the socket's `read` is
 * wrapped. It inspects data only while a request written on the socket waits for
 * its response head: a request head is recognised on the write side (undici
 * writes heads as latin1 strings starting with the method, while bodies are
 * buffers and chunk-size lines start with CR/LF), and inspection stops at the
 * first final (>= 200) or `101` head. So a response costs one look at its first
 * 12 bytes; bodies are never scanned.
 */

/** An interim head longer than this is not held back: undici sees it (and its size limit applies). */
const MAX_HELD = 16 * 1024;
const STATUS_LINE_LENGTH = 12; // "HTTP/1.1 100"
const PREFIX = 'HTTP/1.';
const CRLFCRLF = Buffer.from('\r\n\r\n');

/** The status code of a status line starting at `pos`; -1 when more bytes are needed; -2 when not a status line. */
function statusAt(data: Buffer, pos: number): number {
  const available = Math.min(data.length - pos, STATUS_LINE_LENGTH);
  for (let i = 0; i < available; i++) {
    const c = data[pos + i] as number;
    const ok = i < 7 ? c === PREFIX.charCodeAt(i) : i === 8 ? c === 32 : c >= 48 && c <= 57;
    if (!ok) return -2;
  }
  if (available < STATUS_LINE_LENGTH) return -1;
  return ((data[pos + 9] as number) - 48) * 100 + ((data[pos + 10] as number) - 48) * 10 + ((data[pos + 11] as number) - 48);
}

/** The per-socket state of the filter and the wrapped `read`/`write`. */
class InterimFilter {
  /** A request head was written and its final response head has not arrived yet. */
  #awaiting = false;
  /** Bytes of an incomplete interim head, kept until the rest arrives. */
  #held: Buffer | null = null;

  constructor(socket: Socket) {
    const read = socket.read;
    type Write = (this: Socket, chunk: unknown, encoding?: unknown, callback?: unknown) => boolean;
    const write = socket.write as Write;
    const filter = this;
    (socket as unknown as { write: Write }).write = function (chunk, encoding, callback) {
      if (typeof chunk === 'string') {
        const first = chunk.charCodeAt(0);
        if (first >= 65 && first <= 90) filter.requestWritten();
      }
      return write.call(this, chunk, encoding, callback);
    };
    socket.read = function (this: Socket, size?: number): Buffer | null {
      const chunk = read.call(this, size) as Buffer | null;
      if (!filter.#awaiting || chunk === null) return chunk;
      return filter.filter(chunk);
    };
  }

  /** A request head went out: its response head is awaited. */
  requestWritten(): void {
    this.#awaiting = true;
    this.#held = null;
  }

  /** Removes complete `100` heads from the start of a response; holds an incomplete interim head back. */
  filter(chunk: Buffer): Buffer | null {
    const data = this.#held === null ? chunk : Buffer.concat([this.#held, chunk]);
    this.#held = null;
    let kept: Buffer[] | null = null;
    let keepFrom = 0;
    let pos = 0;
    let end = data.length;
    while (pos < data.length) {
      const status = statusAt(data, pos);
      if (status === -1) {
        this.#held = data.subarray(pos);
        end = pos;
        break;
      }
      if (status === -2 || status >= 200 || status === 101) {
        // A final head (or something undici will refuse): nothing more to inspect.
        this.#awaiting = false;
        break;
      }
      const headEnd = data.indexOf(CRLFCRLF, pos);
      if (headEnd < 0) {
        if (data.length - pos > MAX_HELD) {
          this.#awaiting = false;
        } else {
          this.#held = data.subarray(pos);
          end = pos;
        }
        break;
      }
      const next = headEnd + CRLFCRLF.length;
      if (status === 100) {
        if (pos > keepFrom) (kept ??= []).push(data.subarray(keepFrom, pos));
        keepFrom = next;
      }
      pos = next;
    }
    if (keepFrom === 0 && end === data.length) return data;
    const rest = data.subarray(keepFrom, Math.max(keepFrom, end));
    const out = kept === null ? rest : Buffer.concat([...kept, rest]);
    // Nothing to hand over yet: the next 'readable' brings the rest.
    return out.length === 0 ? null : out;
  }
}

/** Installs the unsolicited-100 filter on an upstream socket. */
export function filterUnsolicitedContinue(socket: Socket): void {
  new InterimFilter(socket);
}

/**
 * An undici `connect` function for a target (plaintext or TLS): undici's own
 * connector, with the filter on every socket it makes for an HTTP/1.1 target;
 * a failed TLS handshake is also handed to `onTlsFailure`. HTTP/2 targets get
 * no filter: HTTP/2 frames 1xx responses as HEADERS, which node:http2 reads
 * off the socket's handle, not through `read()`, and undici accepts them.
 */
export function filteringConnector(options: buildConnector.BuildOptions, target: UpstreamTarget, onTlsFailure?: (err: UpstreamTlsError) => void): buildConnector.connector {
  const onSocket = target.protocol === undefined ? filterUnsolicitedContinue : undefined;
  return upstreamConnector(options, target, { ...(onSocket === undefined ? {} : { onSocket }), ...(onTlsFailure === undefined ? {} : { onTlsFailure }) });
}
