/**
 * The messages bench/connections and its client processes exchange over the
 * IPC channel of `child_process.fork`: one command at a time, one reply each.
 */

/** Failures by kind (an error code such as ECONNRESET, `status-503`, `timeout`), with their counts. */
export type ErrorCounts = Record<string, number>;

/** Opens `count` connections from `localAddress` to 127.0.0.1:port, `concurrency` at a time, each after one answered request. */
export interface OpenCommand {
  readonly type: 'open';
  readonly port: number;
  readonly localAddress: string;
  readonly count: number;
  readonly concurrency: number;
  /** Bound on connecting and the first answer, per connection. */
  readonly timeoutMs: number;
}

/** Reports how many of the held connections are still open. */
export interface CheckCommand {
  readonly type: 'check';
}

/** Sends requests on every held connection at `ratePerSec` in total for `seconds`. */
export interface RunCommand {
  readonly type: 'run';
  readonly ratePerSec: number;
  readonly seconds: number;
  /** Bound on each answer. */
  readonly timeoutMs: number;
}

/** Closes every connection; the client exits after its reply. */
export interface CloseCommand {
  readonly type: 'close';
}

/** What the bench asks of a client process. */
export type ClientCommand = OpenCommand | CheckCommand | RunCommand | CloseCommand;

/** Reply to `open`. */
export interface OpenedReply {
  readonly type: 'opened';
  readonly held: number;
  readonly errors: ErrorCounts;
  readonly ms: number;
}

/** Reply to `check`: connections open, and those the server closed since they were opened. */
export interface CheckedReply {
  readonly type: 'checked';
  readonly open: number;
  readonly closedByServer: number;
}

/** Reply to `run`: the latency in ms of every answered request, and what failed. */
export interface RanReply {
  readonly type: 'ran';
  readonly latenciesMs: readonly number[];
  /** When each request slower than SLOW_MS was sent, in ms from the start of the phase (the first SLOW_KEPT). */
  readonly slowSentAtMs: readonly number[];
  readonly errors: ErrorCounts;
  /** Held connections that sent at least one request in the phase. */
  readonly connectionsUsed: number;
  readonly open: number;
}

/** Requests at least this slow are reported with the time they were sent, to tell stalls from steady slowness. */
export const SLOW_MS = 50;
/** Slow requests a client reports at most. */
export const SLOW_KEPT = 5_000;

/** Reply to `close`. */
export interface ClosedReply {
  readonly type: 'closed';
}

/** What a client process answers. */
export type ClientReply = OpenedReply | CheckedReply | RanReply | ClosedReply;

/** Adds the counts of `from` into `into`. */
export function addErrors(into: Record<string, number>, from: ErrorCounts): void {
  for (const [kind, n] of Object.entries(from)) into[kind] = (into[kind] ?? 0) + n;
}
