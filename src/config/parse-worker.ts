/**
 * The routing-file parser thread: YAML parsing and schema validation of a
 * large table take seconds, which must not stall requests on the main thread.
 */
import { readlinkSync } from 'node:fs';
import { constants, setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { parseRoutingText } from './routing-text.js';

/**
 * On Linux a thread is a task of its own: lower this one's priority, so that on
 * a busy machine the threads serving requests get the CPU first and a parse
 * takes longer instead of requests. Elsewhere the thread keeps its priority.
 */
function yieldCpuToServing(): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, constants.priority.PRIORITY_LOW);
  } catch {
    // Not Linux, or not allowed: parsing still runs off the event loop.
  }
}

yieldCpuToServing();

/** A parse request from the main thread. */
export interface ParseJob {
  readonly id: number;
  readonly text: string;
  readonly fileName: string;
}

parentPort?.on('message', (job: ParseJob) => {
  const parsed = parseRoutingText(job.text, job.fileName);
  // The bytes move to the main thread without a copy.
  parentPort?.postMessage({ id: job.id, parsed }, parsed.ok ? [parsed.encoded.buffer as ArrayBuffer, parsed.rawJson.buffer as ArrayBuffer] : []);
});
