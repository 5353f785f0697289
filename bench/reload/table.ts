/** Large routing tables for bench/reload: one region, `count` services and routes, every endpoint the bench upstream. */
import { stringify } from 'yaml';

/** The flavour of a table: a full reload changes every service between flavours `a` and `b`. */
export type Flavour = 'a' | 'b';

/**
 * A routing table as YAML: `count` services (`svc-N`, one endpoint each: the
 * upstream, so one health check serves them all) routed from `svc-N.bench`,
 * plus the route `/` (any host) that the probe and the load use. `changed`
 * names one service whose settings differ (a one-object edit).
 */
export function bigTable(count: number, upstream: string, flavour: Flavour, changed: number | null = null): string {
  const services: Record<string, unknown> = {};
  const routes: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) {
    const attempts = (flavour === 'a' ? 2 : 1) + (i === changed ? 1 : 0);
    services[`svc-${i}`] = {
      healthCheck: { path: '/', interval: '5s', timeout: '2s' },
      retries: { attempts },
      timeouts: { connect: '1s', request: '30s' },
      versions: { stable: { endpoints: { local: [upstream] } } },
    };
    routes[`svc-${i}`] = { hosts: [`svc-${i}.bench`], pathPrefix: '/', service: `svc-${i}` };
  }
  services.probe = { healthCheck: { path: '/', interval: '5s', timeout: '2s' }, versions: { stable: { endpoints: { local: [upstream] } } } };
  routes.probe = { pathPrefix: '/', service: 'probe' };
  return stringify({ regions: { local: { location: { lat: 0, lon: 0 } } }, services, routes });
}
