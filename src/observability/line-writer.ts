import { close, closeSync, fstat, fstatSync, open, stat, write, writeSync } from 'node:fs';
import { openFileTarget, stdoutTarget, type LineTarget } from './line-target.js';
import type { Logger } from './logger.js';
import { ThrottledWarning } from './throttled-warning.js';

export { PIPE_BUF } from './line-target.js';

/** How often a file's path is compared with the open file (a rename or delete by logrotate). */
const INODE_CHECK_MS = 1_000;

/** Wait before writing again after a non-blocking pipe said it was full. */
const EAGAIN_RETRY_MS = 5;

/** How long lines wait for others to share their write, unless a chunk is full sooner. */
const FLUSH_DELAY_MS = 10;

/** Errors after which stdout will never take another line. */
const BROKEN = new Set(['EPIPE', 'EBADF', 'ECONNRESET']);

/** Whole lines bound for one write. */
interface Chunk {
  readonly bytes: Buffer;
  readonly lines: number;
  /** The buffer `bytes` lies in, reused once written. */
  readonly base: Buffer;
}

/** Chunk buffers kept for reuse: allocating a fresh one per write would grow external memory and bring on full collections. */
const SPARE_CHUNKS = 4;

/** Settings of a line writer. */
export interface LineWriterOptions {
  /** `stdout`, or the path of a file opened for appending. */
  readonly target: string;
  /** Bytes of lines waiting to be written beyond which new lines are dropped. */
  readonly maxBufferBytes: number;
  /** Told how many lines were dropped, each time some are. */
  readonly onDrop: (lines: number) => void;
  readonly logger: Logger;
}

/**
 * Writes whole ASCII lines (each ending in `\n`) asynchronously, so that a
 * slow disk or a stalled reader never blocks the process. Lines are copied
 * into chunks as they come; a chunk is written when it is full, or
 * FLUSH_DELAY_MS after its first line, so that one write carries the lines of
 * many requests. How a chunk is written depends on the target (line-target.ts):
 * from the thread pool, one write in flight at a time, or on the event loop to
 * a non-blocking pipe. Past `maxBufferBytes` lines are dropped and counted,
 * never queued without bound. A file is opened again on `reopen()` and when
 * its path no longer names the open file.
 */
export class LineWriter {
  readonly #options: LineWriterOptions;
  readonly #chunkLimit: number;
  readonly #dropWarning: ThrottledWarning;
  readonly #reopenWarning: ThrottledWarning;
  #target: LineTarget;
  #ino = 0;
  #dev = 0;
  /** Full chunks waiting for their write, oldest first. */
  #queue: Chunk[] = [];
  /** The chunk lines are copied into as they come (off the JS heap, so a backlog costs the collector nothing). */
  #current: Buffer | null = null;
  readonly #spare: Buffer[] = [];
  #used = 0;
  #currentLines = 0;
  #bytes = 0;
  /** The rest of a chunk a write took only part of (or that must be tried again), written before the queue. */
  #carry: Chunk | null = null;
  /** A write is in flight on the thread pool (or a reopen). */
  #busy = false;
  #timer: NodeJS.Timeout | null = null;
  #immediate = false;
  /** Why the file is to be opened again (null: it is not). */
  #reopenWanted: 'signal' | 'moved' | null = null;
  #broken = false;
  /** close() was called: what is left is written at once, without waiting for chunks to fill. */
  #closing = false;
  #closed = false;
  #dropped = 0;
  #idle: (() => void)[] = [];
  #watch: NodeJS.Timeout | null = null;
  readonly #onTimer = (): void => {
    this.#timer = null;
    this.#flush(true);
  };
  readonly #onImmediate = (): void => {
    this.#immediate = false;
    this.#flush(false);
  };

  private constructor(options: LineWriterOptions, target: LineTarget) {
    this.#options = options;
    this.#target = target;
    this.#chunkLimit = target.chunkBytes;
    this.#dropWarning = new ThrottledWarning(options.logger, 'access log is falling behind or cannot be written: lines dropped (meridian_access_log_dropped_total)');
    this.#reopenWarning = new ThrottledWarning(options.logger, 'access log cannot be reopened; writing on to the file already open');
  }

  /** Opens the target (a file for appending, created when missing); throws the open error when it cannot. */
  static open(options: LineWriterOptions): LineWriter {
    if (options.target === 'stdout') return new LineWriter(options, stdoutTarget());
    const writer = new LineWriter(options, openFileTarget(options.target));
    const st = fstatSync(writer.#target.fd);
    writer.#ino = st.ino;
    writer.#dev = st.dev;
    writer.#watch = setInterval(() => writer.#checkPath(), INODE_CHECK_MS);
    writer.#watch.unref();
    return writer;
  }

  /** Lines dropped so far (buffer full, write errors, or written after close). */
  get dropped(): number {
    return this.#dropped;
  }

  /** Bytes of lines waiting to be written. */
  get buffered(): number {
    return this.#bytes;
  }

  /** Queues one line (ASCII, ending in a newline); drops it when the buffer is full. */
  write(line: string): void {
    if (this.#closed || this.#broken || this.#bytes + line.length > this.#options.maxBufferBytes) {
      this.#drop(1);
      return;
    }
    this.#append(line);
    if (this.#busy || this.#immediate) return;
    if (this.#queue.length > 0) {
      // A chunk is full: written in this turn's wake, not with the request it came from.
      this.#immediate = true;
      setImmediate(this.#onImmediate);
    } else if (this.#timer === null) {
      this.#timer = setTimeout(this.#onTimer, FLUSH_DELAY_MS);
      this.#timer.unref();
    }
  }

  /** Copies a line into the current chunk, starting a new chunk when it does not fit (a longer line gets one of its own). */
  #append(line: string): void {
    const length = line.length;
    if (this.#current !== null && this.#used + length > this.#current.length) this.#seal();
    if (this.#current === null) {
      this.#current = (length <= this.#chunkLimit ? this.#spare.pop() : undefined) ?? Buffer.allocUnsafe(Math.max(this.#chunkLimit, length));
      this.#used = 0;
      this.#currentLines = 0;
    }
    this.#current.write(line, this.#used, 'latin1');
    this.#used += length;
    this.#currentLines++;
    this.#bytes += length;
  }

  /** Moves the current chunk to the queue. */
  #seal(): void {
    if (this.#current === null || this.#used === 0) return;
    this.#queue.push({ bytes: this.#current.subarray(0, this.#used), lines: this.#currentLines, base: this.#current });
    this.#current = null;
  }

  /** Opens the file again between two writes (logrotate moved it away and signalled); nothing for stdout. */
  reopen(reason: 'signal' | 'moved' = 'signal'): void {
    if (this.#options.target === 'stdout' || this.#closing) return;
    this.#reopenWanted = reason;
    if (!this.#busy) this.#flush(false);
  }

  /** Writes what is queued (for at most `timeoutMs`), then closes the file; later lines are dropped. */
  async close(timeoutMs: number): Promise<void> {
    if (this.#watch !== null) clearInterval(this.#watch);
    this.#watch = null;
    this.#closing = true;
    if (!this.#busy) this.#flush(true);
    if (this.#busy || this.#pending()) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((resolve) => this.#idle.push(resolve)), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
    }
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    // Whatever the deadline left behind is counted as dropped, not written later.
    this.#seal();
    const left = this.#queue.reduce((sum, c) => sum + c.lines, 0) + (this.#carry?.lines ?? 0);
    this.#queue = [];
    this.#carry = null;
    this.#bytes = 0;
    if (left > 0) this.#drop(left);
    if (!this.#busy) this.#closeTarget();
  }

  #closeTarget(): void {
    if (this.#target.owned) closeSync(this.#target.fd);
  }

  #pending(): boolean {
    return this.#carry !== null || this.#queue.length > 0 || this.#used > 0;
  }

  /** The next chunk to write: a carried rest, a full chunk, or (when `partial`) the chunk still filling. */
  #next(partial: boolean): Chunk | null {
    const carry = this.#carry;
    if (carry !== null) {
      this.#carry = null;
      return carry;
    }
    if (this.#queue.length === 0 && (partial || this.#closing)) this.#seal();
    return this.#queue.shift() ?? null;
  }

  /**
   * Writes what is due: full chunks, and the filling one too when `partial`
   * (its delay is over, or the writer is closing). A filling chunk left behind
   * gets its timer.
   */
  #flush(partial: boolean): void {
    if (this.#busy || this.#closed) return;
    if (this.#reopenWanted !== null) {
      this.#reopenFile(this.#reopenWanted);
      return;
    }
    if (this.#target.kind === 'pipe') this.#writePipe(partial);
    else this.#writeAsync(partial);
  }

  /** One chunk from the thread pool; the next follows when it is done. */
  #writeAsync(partial: boolean): void {
    const chunk = this.#next(partial);
    if (chunk === null) {
      this.#settle();
      return;
    }
    this.#busy = true;
    write(this.#target.fd, chunk.bytes, 0, chunk.bytes.length, null, (err, written) => {
      this.#busy = false;
      if (this.#closed) {
        this.#closeTarget();
        return;
      }
      if (this.#wrote(chunk, err, written)) this.#flush(false);
    });
  }

  /** Every due chunk, on the event loop, until the pipe is full (EAGAIN: tried again shortly). */
  #writePipe(partial: boolean): void {
    for (let chunk = this.#next(partial); chunk !== null; chunk = this.#next(partial)) {
      let written = 0;
      let error: NodeJS.ErrnoException | null = null;
      try {
        written = writeSync(this.#target.fd, chunk.bytes, 0, chunk.bytes.length);
      } catch (err) {
        error = err as NodeJS.ErrnoException;
      }
      if (!this.#wrote(chunk, error, written)) return;
    }
    this.#settle();
  }

  /**
   * Accounts for one write: a rest is carried, an error drops the chunk's
   * lines. Returns whether to go on writing (false: wait for the retry timer).
   */
  #wrote(chunk: Chunk, err: NodeJS.ErrnoException | null, written: number): boolean {
    if (err !== null) {
      if (err.code === 'EAGAIN' && !this.#closed) {
        // The pipe is full (its reader is behind): the same bytes again shortly.
        this.#carry = chunk;
        this.#retryLater();
        return false;
      }
      this.#bytes -= chunk.bytes.length;
      this.#release(chunk);
      this.#drop(chunk.lines);
      this.#dropWarning.note({ err: err.message, target: this.#options.target });
      if (this.#options.target === 'stdout' && err.code !== undefined && BROKEN.has(err.code)) this.#abandon();
    } else if (written < chunk.bytes.length) {
      // A full disk, or a pipe taking part of a line longer than PIPE_BUF: the rest goes next.
      this.#bytes -= written;
      this.#carry = { bytes: chunk.bytes.subarray(written), lines: chunk.lines, base: chunk.base };
    } else {
      this.#bytes -= written;
      this.#release(chunk);
    }
    return true;
  }

  #retryLater(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#onTimer, EAGAIN_RETRY_MS);
    this.#timer.unref();
  }

  /** Nothing due is left: a filling chunk waits for its timer; with nothing at all, close() hears of it. */
  #settle(): void {
    if (this.#used > 0) {
      if (this.#timer === null) {
        this.#timer = setTimeout(this.#onTimer, FLUSH_DELAY_MS);
        this.#timer.unref();
      }
      return;
    }
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  /** Keeps a written chunk's buffer for the next lines (chunk-sized ones, a few at most). */
  #release(chunk: Chunk): void {
    if (chunk.base.length === this.#chunkLimit && this.#spare.length < SPARE_CHUNKS) this.#spare.push(chunk.base);
  }

  /** stdout is gone for good (the reader closed the pipe): what is queued and all later lines are dropped. */
  #abandon(): void {
    this.#broken = true;
    this.#seal();
    const left = this.#queue.reduce((sum, c) => sum + c.lines, 0);
    this.#queue = [];
    this.#bytes = 0;
    if (left > 0) this.#drop(left);
  }

  #reopenFile(reason: 'signal' | 'moved'): void {
    this.#reopenWanted = null;
    this.#busy = true;
    open(this.#options.target, 'a', 0o644, (err, fd) => {
      if (err !== null) {
        this.#busy = false;
        // The old file takes the lines meanwhile; the path is tried again at the next check.
        this.#reopenWarning.note({ err: err.message, path: this.#options.target });
        this.#flush(false);
        return;
      }
      const old = this.#target.fd;
      this.#target = { ...this.#target, fd };
      fstat(fd, (statErr, st) => {
        if (statErr === null) {
          this.#ino = st.ino;
          this.#dev = st.dev;
        }
        close(old, () => undefined);
        this.#options.logger.info({ path: this.#options.target, reason }, 'access log reopened');
        this.#busy = false;
        if (this.#closed) this.#closeTarget();
        else this.#flush(false);
      });
    });
  }

  #checkPath(): void {
    if (this.#reopenWanted !== null) return;
    stat(this.#options.target, (err, st) => {
      if (this.#closing) return;
      if (err !== null || st.ino !== this.#ino || st.dev !== this.#dev) this.reopen('moved');
    });
  }

  #drop(lines: number): void {
    this.#dropped += lines;
    this.#options.onDrop(lines);
    if (!this.#closed) this.#dropWarning.note({ dropped: this.#dropped, target: this.#options.target });
  }
}
