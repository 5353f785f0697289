/**
 * One client keep-alive connection of bench/connections: a plain socket that
 * writes a fixed GET and reads answers framed by Content-Length. node:http's
 * Agent picks which free socket a request goes on; here each connection is
 * driven on its own, and 15,000 of them cost the client little memory and CPU.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

const HEAD_END = Buffer.from('\r\n\r\n');

/** A request that failed, with the kind the bench counts it under. */
export class RequestError extends Error {
  constructor(readonly kind: string) {
    super(kind);
  }
}

interface Pending {
  readonly sentAt: number;
  readonly resolve: (latencyMs: number) => void;
  readonly reject: (err: RequestError) => void;
  readonly timer: NodeJS.Timeout;
}

/** A keep-alive connection to Meridian that sends one request at a time. */
export class HeldConnection {
  readonly #socket: Socket;
  readonly #request: Buffer;
  #pending: Pending | null = null;
  /** Bytes of the answer read so far, until its head is complete. */
  #head: Buffer | null = null;
  /** Body bytes of the current answer still to come; -1 while its head is incomplete. */
  #bodyLeft = -1;
  /** Why the current answer counts as a failure once complete (non-2xx, `connection: close`), else null. */
  #failure: string | null = null;
  #closing = false;
  /** Whether the connection ended without the client closing it. */
  closedByServer = false;
  /** Requests sent on this connection. */
  requests = 0;

  private constructor(socket: Socket, request: Buffer) {
    this.#socket = socket;
    this.#request = request;
    socket.on('data', (chunk: Buffer) => this.#read(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => this.#fail(err.code ?? err.message));
    socket.on('close', () => {
      if (!this.#closing) this.closedByServer = true;
      this.#fail('closed');
    });
  }

  /** Connects from `localAddress` and has one request answered; rejects with a RequestError otherwise. */
  static async open(port: number, localAddress: string, request: Buffer, timeoutMs: number): Promise<HeldConnection> {
    const socket = connect({ host: '127.0.0.1', port, localAddress, noDelay: true });
    const conn = new HeldConnection(socket, request);
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => reject(new RequestError('connect-timeout')), timeoutMs);
        socket.once('connect', resolve);
        socket.once('error', (err: NodeJS.ErrnoException) => reject(new RequestError(err.code ?? err.message)));
      });
      clearTimeout(timer);
      await conn.send(timeoutMs);
      return conn;
    } catch (err) {
      clearTimeout(timer);
      conn.close();
      throw err;
    }
  }

  /** Whether the connection can still take a request. */
  get open(): boolean {
    return !this.#closing && !this.closedByServer && !this.#socket.destroyed;
  }

  /** Sends the request; resolves with the ms from the write to the last byte of a 2xx answer. */
  send(timeoutMs: number): Promise<number> {
    if (this.#pending !== null) return Promise.reject(new RequestError('busy'));
    if (!this.open) return Promise.reject(new RequestError('closed'));
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#fail('timeout');
        this.close();
      }, timeoutMs);
      this.#pending = { sentAt: performance.now(), resolve, reject, timer };
      this.#head = null;
      this.#bodyLeft = -1;
      this.#failure = null;
      this.requests++;
      this.#socket.write(this.#request);
    });
  }

  /** Closes the connection from the client side. */
  close(): void {
    this.#closing = true;
    this.#socket.destroy();
  }

  #read(chunk: Buffer): void {
    if (this.#pending === null) {
      this.#fail('unsolicited-bytes');
      this.close();
      return;
    }
    let body = chunk;
    if (this.#bodyLeft < 0) {
      const head = this.#head === null ? chunk : Buffer.concat([this.#head, chunk]);
      const end = head.indexOf(HEAD_END);
      if (end < 0) {
        this.#head = head;
        return;
      }
      this.#head = null;
      if (!this.#parseHead(head.toString('latin1', 0, end))) return;
      body = head.subarray(end + HEAD_END.length);
    }
    this.#bodyLeft -= body.length;
    if (this.#bodyLeft > 0) return;
    if (this.#bodyLeft < 0) {
      this.#fail('unexpected-bytes');
      this.close();
      return;
    }
    const pending = this.#pending;
    this.#pending = null;
    clearTimeout(pending.timer);
    if (this.#failure === null) pending.resolve(performance.now() - pending.sentAt);
    else pending.reject(new RequestError(this.#failure));
  }

  /** Reads status and framing; false (and the connection closed) when the answer cannot be framed. */
  #parseHead(head: string): boolean {
    const lines = head.split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
    let length = -1;
    let code = '';
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] as string;
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim().toLowerCase();
      if (name === 'content-length') length = Number(value);
      else if (name === 'x-meridian-error') code = ` ${value}`;
      else if (name === 'connection' && value === 'close' && this.#failure === null) this.#failure = 'connection-close';
    }
    if (status < 200 || status >= 300) this.#failure = `status-${status}${code}`;
    if (!Number.isInteger(length) || length < 0) {
      this.#fail('no-content-length');
      this.close();
      return false;
    }
    this.#bodyLeft = length;
    return true;
  }

  #fail(kind: string): void {
    const pending = this.#pending;
    if (pending === null) return;
    this.#pending = null;
    clearTimeout(pending.timer);
    pending.reject(new RequestError(kind));
  }
}
