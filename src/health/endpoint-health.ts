/** Health states an endpoint can be in. */
export type HealthState = 'unchecked' | 'healthy' | 'unhealthy';

/**
 * The health of one endpoint identity (address + check settings), shared by every
 * service and routing-table revision that uses it. Mutated in place by checkers,
 * read on the request path through `up`.
 */
export class EndpointHealth {
  /** Identity: address plus the check settings that judge it. */
  readonly key: string;
  /** Whether the request path may send traffic here. */
  up = true;
  state: HealthState = 'unchecked';
  /** Why the endpoint is in its state (`unchecked` until health checking runs). */
  reason = 'unchecked';
  /** When the state last changed (ms since epoch). */
  changedAt = Date.now();

  constructor(key: string) {
    this.key = key;
  }
}
