import { constants, fstatSync, openSync } from 'node:fs';

/** Bytes a pipe takes in one atomic write (POSIX PIPE_BUF on Linux). */
export const PIPE_BUF = 4096;

/** Bytes of whole lines written to a file at once (O_APPEND makes each write atomic). */
const FILE_CHUNK = 64 * 1024;

/**
 * How lines reach a descriptor:
 * - `file`: a regular file, written from the thread pool (a slow disk never
 *   blocks the event loop) in large chunks;
 * - `pipe`: a pipe opened non-blocking, written on the event loop (a full pipe
 *   answers EAGAIN at once, so no thread is ever held), at most PIPE_BUF at a
 *   time so that lines of processes sharing it never interleave;
 * - `stream`: anything else (a socket such as journald's, a terminal), written
 *   from the thread pool, at most PIPE_BUF at a time.
 */
export type TargetKind = 'file' | 'pipe' | 'stream';

/** An open descriptor lines are written to. */
export interface LineTarget {
  readonly fd: number;
  readonly kind: TargetKind;
  /** Bytes of whole lines one write carries (a longer line gets a write of its own). */
  readonly chunkBytes: number;
  /** Whether the descriptor is ours to close (stdout is not). */
  readonly owned: boolean;
}

/** Opens a file for appending (created when missing); throws the open error when it cannot. */
export function openFileTarget(path: string): LineTarget {
  return { fd: openSync(path, 'a', 0o644), kind: 'file', chunkBytes: FILE_CHUNK, owned: true };
}

/**
 * The descriptor stdout lines are written to. A pipe is opened again through
 * /proc as a description of our own in non-blocking mode (fd 1's own mode,
 * shared with whoever else writes it, is left alone). A regular file (stdout
 * redirected to one) is written like a log file, through fd 1.
 */
export function stdoutTarget(): LineTarget {
  try {
    const st = fstatSync(1);
    if (st.isFIFO()) return { fd: openSync('/proc/self/fd/1', constants.O_WRONLY | constants.O_NONBLOCK), kind: 'pipe', chunkBytes: PIPE_BUF, owned: true };
    if (st.isFile()) return { fd: 1, kind: 'file', chunkBytes: FILE_CHUNK, owned: false };
  } catch {
    // No /proc, or it refuses: fd 1 as it is.
  }
  return { fd: 1, kind: 'stream', chunkBytes: PIPE_BUF, owned: false };
}
