import { Readable } from 'node:stream';
import type { DownstreamRequest } from './downstream.js';

/** Largest request body kept in memory so that a failed try can send it again. */
export const REPLAY_LIMIT = 64 * 1024;

/**
 * A request body as the tries of one request see it. Bodies up to 64 KiB are
 * read into memory first and can be sent any number of times; a larger body is
 * streamed (its first 64 KiB included) and can be sent again only while no try
 * has started reading it, which is the case after a failed connect.
 */
export class RequestBody {
  readonly #req: DownstreamRequest;
  readonly #chunks: Buffer[] = [];
  #bytes = 0;
  #complete = false;
  #consumed = false;
  #failed: Error | null = null;
  #attached: BodyStream | null = null;

  private constructor(req: DownstreamRequest) {
    this.#req = req;
  }

  /** A body streamed to the first try as it arrives, nothing held back: sent again only if no try has read it. */
  static streamed(req: DownstreamRequest): RequestBody {
    return new RequestBody(req);
  }

  /**
   * Reads the body up to the replay limit (at once when Content-Length says it
   * is larger). Resolves when the body is complete, past the limit, or broken.
   */
  static async read(req: DownstreamRequest, contentLength: number | null): Promise<RequestBody> {
    const body = new RequestBody(req);
    if (contentLength !== null && contentLength > REPLAY_LIMIT) return body;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onError);
        req.off('close', onClose);
        resolve();
      };
      const onData = (chunk: Buffer): void => {
        body.#chunks.push(chunk);
        body.#bytes += chunk.length;
        if (body.#bytes > REPLAY_LIMIT) {
          req.pause();
          done();
        }
      };
      const onEnd = (): void => {
        body.#complete = true;
        done();
      };
      const onError = (err: Error): void => {
        body.#failed = err;
        done();
      };
      const onClose = (): void => {
        if (!body.#complete) body.#failed ??= new Error('client went away');
        done();
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', onError);
      req.on('close', onClose);
    });
    return body;
  }

  /** Body bytes read from the client so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether the client broke off while the body was being read. */
  get failed(): boolean {
    return this.#failed !== null;
  }

  /** Whether another try can send the body from its start. */
  get replayable(): boolean {
    return this.#complete || !this.#consumed;
  }

  /** The body for one try: the whole buffer when complete, else a stream of it. */
  forAttempt(): Buffer | Readable {
    if (this.#complete) return this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks);
    const stream = new BodyStream(this);
    return stream;
  }

  /** Starts feeding a try's stream: buffered chunks, then the rest of the request. */
  attach(stream: BodyStream): void {
    this.#consumed = true;
    this.#attached = stream;
    for (const chunk of this.#chunks) stream.push(chunk);
    this.#chunks.length = 0;
    const req = this.#req;
    req.on('data', (chunk: Buffer) => {
      this.#bytes += chunk.length;
      if (this.#attached !== null && !this.#attached.push(chunk)) req.pause();
    });
    req.once('end', () => this.#attached?.push(null));
    req.once('error', (err) => this.#attached?.destroy(err));
    req.once('close', () => {
      if (!req.complete) this.#attached?.destroy(new Error('client went away'));
    });
    req.resume();
  }

  /** The try's stream wants more. */
  more(): void {
    if (this.#consumed) this.#req.resume();
  }

  /** A try's stream was destroyed (the try failed or was aborted). */
  detach(stream: BodyStream): void {
    if (this.#attached === stream) this.#attached = null;
  }
}

/** One try's view of a streamed request body; reading it is what makes the body non-replayable. */
class BodyStream extends Readable {
  readonly #source: RequestBody;
  #started = false;

  constructor(source: RequestBody) {
    super();
    this.#source = source;
  }

  override _read(): void {
    if (this.#started) {
      this.#source.more();
      return;
    }
    this.#started = true;
    this.#source.attach(this);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#source.detach(this);
    callback(err);
  }
}
