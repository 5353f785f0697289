import type { PassiveSignal } from '../net/failures.js';
import type { EndpointHealth, OutlierSpec } from './endpoint-health.js';

/** What passive health reads of an endpoint: its health, its service's outlier settings, and the endpoints of its version and region. */
export interface OutlierTarget {
  readonly health: EndpointHealth;
  readonly outlier: OutlierSpec;
  /** Every endpoint of the same version and region, this one included: the unit the ejection cap counts. */
  readonly peers: readonly OutlierTarget[];
}


/**
 * Whether ejecting one more endpoint keeps the ejected share of its region
 * within the service's cap, so a burst of bad requests cannot empty a region.
 */
function withinCap(ep: OutlierTarget): boolean {
  let ejected = 1;
  for (const peer of ep.peers) if (peer !== ep && peer.health.ejected) ejected++;
  return (ejected * 100) / ep.peers.length <= ep.outlier.maxEjectedPercent;
}

/**
 * Passive health: applies what a request saw to its endpoint. A connection that
 * could not be made ejects at once (no request can be blamed for it), and so
 * does a TLS handshake that failed (every request would fail the same way until
 * the certificate or the table changes); a reset
 * ejects at once within the cap; 5xx answers and timeouts eject after
 * `consecutive5xx` in a row, within the cap.
 */
export function recordFailure(ep: OutlierTarget, signal: PassiveSignal): void {
  const health = ep.health;
  if (health.ejected) return;
  switch (signal) {
    case 'connect-refused':
    case 'connect-timeout':
    case 'tls-failed':
      health.eject(signal, ep.outlier);
      return;
    case 'reset':
      if (withinCap(ep)) health.eject('reset', ep.outlier);
      return;
    case 'status-5xx':
    case 'timeout':
      health.consecutive5xx++;
      if (health.consecutive5xx >= ep.outlier.consecutive5xx && withinCap(ep)) health.eject(signal === 'timeout' ? 'ejected-timeout' : 'ejected-5xx', ep.outlier);
  }
}

/** A try that got a non-5xx answer: the run of failures is over. */
export function recordSuccess(ep: OutlierTarget): void {
  if (ep.health.consecutive5xx !== 0) ep.health.consecutive5xx = 0;
}
