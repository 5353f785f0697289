/**
 * The routing-file parser thread: YAML parsing and schema validation of a
 * large table take seconds, which must not stall requests on the main thread.
 */
import { parentPort } from 'node:worker_threads';
import { parseRoutingText } from './routing-text.js';

/** A parse request from the main thread. */
export interface ParseJob {
  readonly id: number;
  readonly text: string;
  readonly fileName: string;
}

parentPort?.on('message', (job: ParseJob) => {
  parentPort?.postMessage({ id: job.id, parsed: parseRoutingText(job.text, job.fileName) });
});
