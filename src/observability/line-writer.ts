import { close, closeSync, constants, fstat, fstatSync, open, openSync, stat, write } from 'node:fs';
import type { Logger } from './logger.js';
import { ThrottledWarning } from './throttled-warning.js';

/** Bytes a pipe takes in one atomic write (POSIX PIPE_BUF on Linux). */
export const PIPE_BUF = 4096;

/** Bytes of whole lines written to a file at once (O_APPEND makes each write atomic). */
const FILE_CHUNK = 64 * 1024;

/** How often a file's path is compared with the open file (a rename or delete by logrotate). */
const INODE_CHECK_MS = 1_000;

/** Wait before writing again after a non-blocking pipe said it was full. */
const EAGAIN_RETRY_MS = 5;

/** How long lines wait for others to share their write, unless a chunk is full sooner. */
const FLUSH_DELAY_MS = 10;

/**
 * The descriptor stdout lines are written to. A pipe is opened again through
 * /proc as a description of our own in non-blocking mode: a write to a pipe
 * nobody reads then says EAGAIN instead of holding a thread-pool thread, which
 * would keep the process from exiting. Lines of at most PIPE_BUF stay atomic.
 * Anything else (a file, a terminal, a socket) is written through fd 1.
 */
function stdoutDescriptor(): number {
  try {
    if (fstatSync(1).isFIFO()) return openSync('/proc/self/fd/1', constants.O_WRONLY | constants.O_NONBLOCK);
  } catch {
    // No /proc, or it refuses: fd 1 as it is.
  }
  return 1;
}

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
 * Writes whole ASCII lines (each ending in `\n`) asynchronously, one write in
 * flight at a time, so that a slow disk or a stalled reader never blocks the
 * process. Lines queued meanwhile go out together in chunks of whole lines: at
 * most PIPE_BUF bytes on stdout, where writes of several processes sharing a
 * pipe interleave only between atomic writes; larger to a file opened with
 * O_APPEND, where every write lands whole at the end. Past `maxBufferBytes`
 * lines are dropped and counted, never queued without bound. A file is opened
 * again on `reopen()` and when its path no longer names the open file.
 */
export class LineWriter {
  readonly #options: LineWriterOptions;
  readonly #chunkLimit: number;
  readonly #dropWarning: ThrottledWarning;
  readonly #reopenWarning: ThrottledWarning;
  #fd: number;
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
  #busy = false;
  #scheduled = false;
  /** Why the file is to be opened again (null: it is not). */
  #reopenWanted: 'signal' | 'moved' | null = null;
  #broken = false;
  #closed = false;
  #dropped = 0;
  #idle: (() => void)[] = [];
  #watch: NodeJS.Timeout | null = null;
  readonly #flushNow = (): void => this.#flush();

  private constructor(options: LineWriterOptions, fd: number) {
    this.#options = options;
    this.#fd = fd;
    this.#chunkLimit = options.target === 'stdout' ? PIPE_BUF : FILE_CHUNK;
    this.#dropWarning = new ThrottledWarning(options.logger, 'access log is falling behind or cannot be written: lines dropped (meridian_access_log_dropped_total)');
    this.#reopenWarning = new ThrottledWarning(options.logger, 'access log cannot be reopened; writing on to the file already open');
  }

  /** Opens the target (a file for appending, created when missing); throws the open error when it cannot. */
  static open(options: LineWriterOptions): LineWriter {
    if (options.target === 'stdout') return new LineWriter(options, stdoutDescriptor());
    const writer = new LineWriter(options, openSync(options.target, 'a', 0o644));
    const st = fstatSync(writer.#fd);
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
    if (!this.#busy && !this.#scheduled) {
      // A short wait gathers the lines of many requests into one write (one syscall, one trip to the thread pool).
      this.#scheduled = true;
      if (this.#bytes >= this.#chunkLimit) setImmediate(this.#flushNow);
      else setTimeout(this.#flushNow, FLUSH_DELAY_MS).unref();
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
    if (this.#options.target === 'stdout' || this.#closed) return;
    this.#reopenWanted = reason;
    if (!this.#busy) this.#flush();
  }

  /** Writes what is queued (for at most `timeoutMs`), then closes the file; later lines are dropped. */
  async close(timeoutMs: number): Promise<void> {
    if (this.#watch !== null) clearInterval(this.#watch);
    this.#watch = null;
    if (this.#busy || this.#pending()) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((resolve) => this.#idle.push(resolve)), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
    }
    this.#closed = true;
    // Whatever the deadline left behind is counted as dropped, not written later.
    this.#seal();
    const left = this.#queue.reduce((sum, c) => sum + c.lines, 0) + (this.#carry?.lines ?? 0);
    this.#queue = [];
    this.#carry = null;
    if (left > 0) this.#drop(left);
    if (this.#options.target !== 'stdout' && !this.#busy) closeSync(this.#fd);
  }

  #pending(): boolean {
    return this.#carry !== null || this.#queue.length > 0 || this.#used > 0;
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#busy) return;
    if (this.#reopenWanted !== null) {
      this.#reopenFile(this.#reopenWanted);
      return;
    }
    let chunk = this.#carry;
    this.#carry = null;
    if (chunk === null) {
      if (this.#queue.length === 0) this.#seal();
      chunk = this.#queue.shift() ?? null;
      if (chunk === null) {
        for (const resolve of this.#idle.splice(0)) resolve();
        return;
      }
    }
    this.#busy = true;
    const taken = chunk;
    write(this.#fd, taken.bytes, 0, taken.bytes.length, null, (err, written) => this.#written(taken, err, written));
  }

  #written(chunk: Chunk, err: NodeJS.ErrnoException | null, written: number): void {
    this.#busy = false;
    if (err !== null) {
      if (err.code === 'EAGAIN' && !this.#closed) {
        // stdout shared with a process that made it non-blocking, and the reader is behind: try the same bytes again.
        this.#carry = chunk;
        setTimeout(this.#flushNow, EAGAIN_RETRY_MS).unref();
        return;
      }
      this.#bytes -= chunk.bytes.length;
      this.#release(chunk);
      this.#drop(chunk.lines);
      this.#dropWarning.note({ err: err.message, target: this.#options.target });
      if (this.#options.target === 'stdout' && err.code !== undefined && BROKEN.has(err.code)) this.#abandon();
    } else if (written < chunk.bytes.length) {
      // Only a file does this (a full disk): the rest goes next, still appended whole.
      this.#bytes -= written;
      this.#carry = { bytes: chunk.bytes.subarray(written), lines: chunk.lines, base: chunk.base };
    } else {
      this.#bytes -= written;
      this.#release(chunk);
    }
    if (this.#closed && !this.#pending()) {
      if (this.#options.target !== 'stdout') closeSync(this.#fd);
      for (const resolve of this.#idle.splice(0)) resolve();
      return;
    }
    this.#flush();
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
        this.#flush();
        return;
      }
      const old = this.#fd;
      this.#fd = fd;
      fstat(fd, (statErr, st) => {
        if (statErr === null) {
          this.#ino = st.ino;
          this.#dev = st.dev;
        }
        close(old, () => undefined);
        this.#options.logger.info({ path: this.#options.target, reason }, 'access log reopened');
        this.#busy = false;
        this.#flush();
      });
    });
  }

  #checkPath(): void {
    if (this.#reopenWanted !== null) return;
    stat(this.#options.target, (err, st) => {
      if (this.#closed) return;
      if (err !== null || st.ino !== this.#ino || st.dev !== this.#dev) this.reopen('moved');
    });
  }

  #drop(lines: number): void {
    this.#dropped += lines;
    this.#options.onDrop(lines);
    if (!this.#closed) this.#dropWarning.note({ dropped: this.#dropped, target: this.#options.target });
  }
}
