import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import type { Logger } from '../observability/logger.js';
import { BadUpstreamResponse, classifyUpstreamError, ERRORS, reasonPhrase, sendRawError } from './errors.js';
import { readRequestHead } from './headers.js';
import type { Rejection, RequestResolver } from './resolve.js';
import type { AccessRecorder } from './access-records.js';

/** What the upgrade proxy needs from the proxy server. */
export interface UpgradeHost {
  readonly draining: boolean;
  recordRejection(rejection: Rejection, startedAt: number): void;
  checkDrained(): void;
}

/** Bytes a client may send behind its upgrade request before the upstream has answered. */
const MAX_EARLY_BYTES = 64 * 1024;

/** Bytes that cannot appear in a reason phrase or header value written on a raw socket. */
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * Serialises a response head for a raw socket, dropping headers that only
 * concern one hop, the upstream's `x-meridian-*` headers, and values with
 * control characters; a bad reason phrase is replaced by the standard one.
 */
function rawHead(statusCode: number, statusText: string, rawHeaders: readonly (Buffer | string)[], keepUpgrade: boolean): string {
  let out = `HTTP/1.1 ${statusCode} ${CONTROL.test(statusText) ? reasonPhrase(statusCode) : statusText}\r\n`;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = String(rawHeaders[i]);
    const lower = name.toLowerCase();
    if (lower === 'keep-alive' || lower === 'proxy-connection' || lower === 'transfer-encoding' || lower.startsWith('x-meridian-')) continue;
    if (CONTROL.test(String(rawHeaders[i + 1]))) continue;
    if (!keepUpgrade && (lower === 'connection' || lower === 'upgrade')) continue;
    out += `${name}: ${String(rawHeaders[i + 1])}\r\n`;
  }
  return `${out}${keepUpgrade ? '' : 'connection: close\r\n'}\r\n`;
}

/** Answers CONNECT: Meridian is a reverse proxy, not a tunnel. */
export function handleConnect(_req: IncomingMessage, socket: Duplex): void {
  sendRawError(socket, ERRORS.methodNotAllowed);
}

/**
 * Upgraded connections (WebSocket and other `Upgrade:` protocols): routed like
 * any request, then the two sockets are spliced together. A non-101 answer from
 * the upstream is relayed as an ordinary response and the connection closed.
 */
export class UpgradeProxy {
  readonly #host: UpgradeHost;
  readonly #resolver: RequestResolver;
  readonly #logger: Logger;
  readonly #sockets = new Set<Duplex>();
  readonly #access: AccessRecorder | null;

  constructor(host: UpgradeHost, resolver: RequestResolver, logger: Logger, access: AccessRecorder | null = null) {
    this.#host = host;
    this.#resolver = resolver;
    this.#logger = logger;
    this.#access = access;
  }

  /** Upgraded connections currently open. */
  get open(): number {
    return this.#sockets.size / 2;
  }

  /** Closes every upgraded connection. */
  closeAll(): void {
    for (const socket of this.#sockets) socket.destroy();
  }

  /** Handles one `upgrade` event of the HTTP server. */
  handle(req: IncomingMessage, client: Socket, early: Buffer): void {
    const startedAt = performance.now();
    client.on('error', () => client.destroy());
    const head = readRequestHead(req.rawHeaders);
    const protocol = req.headers.upgrade;
    const resolver = this.#resolver;
    const peer = resolver.peerOf(client);
    const requestId = resolver.requestIdFor(head, peer);
    const target = this.#host.draining ? ({ error: ERRORS.shuttingDown } as const) : resolver.resolve(req, head, peer);
    if ('error' in target) {
      if ('series' in target) this.#host.recordRejection(target, startedAt);
      sendRawError(client, target.error, requestId);
      this.#access?.answer('upgrade', req, head, requestId, target.error.status, target.error, startedAt, 'route' in target ? target.route : undefined, 'version' in target ? target.version : undefined);
      return;
    }
    resolver.forwardingHeaders(head.forward, head, peer, target.host, requestId);
    const endpoint = target.endpoint;
    const sockets = this.#sockets;
    const host = this.#host;
    let abort: ((err?: Error) => void) | null = null;
    let settled = false;
    // Null when the access log is off: nothing is gathered then.
    const line = this.#access?.upgradeLine(req, head, requestId, target.route, endpoint, startedAt) ?? null;
    const done = (): void => {
      settled = true;
      endpoint.upstream.outstanding--;
    };
    // The upgraded socket is paused and detached from the HTTP parser: read it
    // while the upstream decides, so that a client leaving is noticed, keeping
    // early bytes (up to a bound) for the upstream.
    const pending: Buffer[] = early.length > 0 ? [early] : [];
    let pendingBytes = early.length;
    const hold = (chunk: Buffer): void => {
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= MAX_EARLY_BYTES) client.pause();
    };
    const leave = (): void => {
      if (!settled) abort?.(new Error('client went away'));
    };
    client.on('data', hold);
    client.once('end', leave);
    client.once('close', leave);
    endpoint.upstream.outstanding++;
    const handler: Dispatcher.DispatchHandler = {
      onConnect(abortRequest) {
        abort = abortRequest;
        if (client.destroyed || client.readableEnded) abortRequest(new Error('client went away'));
      },
      onUpgrade(statusCode, rawHeaders, upstream) {
        done();
        if (client.destroyed) {
          upstream.destroy();
          return;
        }
        client.off('data', hold);
        client.off('end', leave);
        client.write(rawHead(statusCode, 'Switching Protocols', rawHeaders ?? [], true));
        line?.answered(statusCode);
        // Socket counters from here on: what the two ends sent each other through Meridian.
        const inFrom = (upstream as Socket).bytesWritten;
        const outFrom = client.bytesWritten;
        for (const chunk of pending) upstream.write(chunk);
        let open = 2;
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.once('close', () => {
            sockets.delete(socket);
            if (--open === 0 && line !== null) {
              line.bytesIn = (upstream as Socket).bytesWritten - inFrom;
              line.bytesOut = client.bytesWritten - outFrom;
              line.end();
            }
            host.checkDrained();
          });
        }
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        client.pipe(upstream).pipe(client);
      },
      onHeaders(statusCode, rawHeaders, _resume, statusText) {
        if (statusCode < 200) return true;
        if (statusCode > 599) {
          abort?.(new BadUpstreamResponse(`invalid status ${statusCode}`));
          return false;
        }
        client.write(rawHead(statusCode, statusText, rawHeaders, false));
        line?.answered(statusCode);
        return true;
      },
      onData(chunk) {
        if (line !== null) line.bytesOut += chunk.length;
        return client.write(chunk);
      },
      onComplete() {
        done();
        client.end();
        line?.end();
      },
      onError: (err) => {
        done();
        const error = client.destroyed ? ERRORS.clientAborted : classifyUpstreamError(err);
        this.#logger.debug({ err: err.message, endpoint: endpoint.key }, 'upgrade failed');
        if (client.writable && client.bytesWritten === 0) sendRawError(client, error, requestId);
        else client.destroy();
        line?.failed(error);
        line?.end();
      },
    };
    endpoint.upstream.pool.dispatch(
      {
        path: target.url,
        method: 'GET',
        headers: head.forward,
        upgrade: typeof protocol === 'string' && protocol !== '' ? protocol : 'websocket',
      },
      handler,
    );
  }
}
