import { recordFailure, recordSuccess } from '../health/passive.js';
import type { PassiveSignal } from '../net/failures.js';
import type { Endpoint } from '../routing/table.js';

/** Where the data plane reports what a try saw of its endpoint. */
export interface PassiveSink {
  /** A try failed in a way that says something about the endpoint. */
  failure(endpoint: Endpoint, signal: PassiveSignal): void;
  /** A try succeeded after failures: the run of failures is over. */
  success(endpoint: Endpoint): void;
}

/** A single-process node decides ejections itself, at once. */
export const LOCAL_PASSIVE: PassiveSink = Object.freeze({
  failure: (endpoint: Endpoint, signal: PassiveSignal) => recordFailure(endpoint, signal),
  success: (endpoint: Endpoint) => recordSuccess(endpoint),
});
