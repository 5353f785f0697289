/**
 * Where the outcome of every proxied exchange goes besides metrics: the
 * rollout counters of this node (rollout/ implements it, so the proxy knows
 * nothing of rollouts). Called once per exchange; an implementation keeps
 * only what it needs and returns at once for the rest.
 */
export interface OutcomeSink {
  /** `failed`: a 5xx answer, the upstream's or Meridian's own. */
  record(service: string, version: string, region: string, failed: boolean, durationMs: number): void;
}
