import { startTestMeridian } from './meridian.js';
import { startUpstream } from './upstream.js';

/**
 * A GeoDNS node for www.example.com: one region (eu-west, edge 203.0.113.10)
 * with one live upstream, and `dns` as the static config's dns section. The
 * node and its upstream stop when the test ends.
 */
export async function startWwwDnsNode(t: { teardown(fn: () => unknown): void }, dns: Record<string, unknown>): Promise<{ dnsPort: number; adminPort: number }> {
  const up = await startUpstream('up');
  t.teardown(() => up.kill());
  const m = await startTestMeridian(
    {
      regions: { 'eu-west': { location: { lat: 53.35, lon: -6.26 }, edge: { ipv4: ['203.0.113.10'] } } },
      services: { web: { versions: { stable: { endpoints: { 'eu-west': [up.address] } } } } },
      routes: { www: { hosts: ['www.example.com'], service: 'web' } },
    },
    { dns },
  );
  t.teardown(() => m.close());
  return { dnsPort: m.dnsPort as number, adminPort: m.adminPort };
}
