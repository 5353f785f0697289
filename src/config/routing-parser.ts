import { Worker } from 'node:worker_threads';
import type { ParseJob } from './parse-worker.js';
import type { ParsedRouting } from './routing-text.js';

/** Memory a parse may use before the thread is stopped (a pathological file must not take the node down). */
const WORKER_HEAP_MB = 1_024;

/** The worker script beside this module: compiled `.js`, or `.ts` when run from sources. */
function workerUrl(): URL {
  const here = import.meta.url;
  return new URL(`./parse-worker${here.endsWith('.ts') ? '.ts' : '.js'}`, here);
}

/**
 * Parses routing files on a worker thread, one at a time, so the event loop
 * keeps serving while a large file is read. The thread starts on first use,
 * does not keep the process alive, and is replaced if it dies; a parse that
 * was running then fails with a clear problem instead of hanging.
 */
export class RoutingParser {
  #worker: Worker | null = null;
  #nextId = 1;
  readonly #pending = new Map<number, (parsed: ParsedRouting) => void>();

  /** Parses and validates `text` (named `fileName` in problems) off the event loop. */
  parse(text: string, fileName: string): Promise<ParsedRouting> {
    const worker = this.#worker ?? this.#start();
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      worker.ref();
      const job: ParseJob = { id, text, fileName };
      worker.postMessage(job);
    });
  }

  /** Stops the thread; parses still running fail. */
  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = null;
    if (worker !== null) await worker.terminate();
    this.#failAll('the parser was stopped');
  }

  #start(): Worker {
    const worker = new Worker(workerUrl(), { resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB } });
    worker.unref();
    worker.on('message', (message: { id: number; parsed: ParsedRouting }) => {
      const resolve = this.#pending.get(message.id);
      this.#pending.delete(message.id);
      if (this.#pending.size === 0) worker.unref();
      resolve?.(message.parsed);
    });
    const lost = (why: string): void => {
      if (this.#worker === worker) this.#worker = null;
      this.#failAll(why);
    };
    worker.on('error', (err: Error) => lost(`the parser thread failed: ${err.message}`));
    worker.on('exit', (code) => lost(`the parser thread exited (code ${code})`));
    this.#worker = worker;
    return worker;
  }

  #failAll(why: string): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const resolve of pending) resolve({ ok: false, issues: [{ path: '', message: why, reason: 'syntax' }] });
  }
}
