import t, { type Test } from 'tap';
import { getJson } from './helpers/client.js';
import { dig, type DigRecord } from './helpers/dig.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream } from './helpers/upstream.js';
import { buildStaticConfig } from '../src/config/static-load.js';

const BIG_V6 = (ns: number): string[] => Array.from({ length: 5 }, (_, i) => `2001:db8:${ns}::${i + 1}`);

const ZONES = [
  {
    name: 'example.com',
    nameservers: [
      { name: 'ns1.example.com', ipv4: ['192.0.2.53'], ipv6: ['2001:db8::53'] },
      { name: 'ns2.example.com', ipv4: ['192.0.2.54'] },
      'ns.provider.test',
      { name: 'ns3.dns.example.com', ipv6: ['2001:db8::55'] },
      'ns4.example.com',
    ],
  },
  // ns1.example.com again (same addresses), by name alone, and a name server outside every zone.
  { name: 'example.net', nameservers: ['ns1.example.com', 'ns.provider.test'] },
  { name: 'big.test', nameservers: [1, 2, 3, 4].map((n) => ({ name: `ns${n}.big.test`, ipv6: BIG_V6(n) })) },
];

function rows(records: readonly DigRecord[]): string[][] {
  return records.map((r) => [r.name, r.type, r.data]);
}

async function meridian(t: Test): Promise<TestMeridian & { dnsPort: number }> {
  const up = await startUpstream('up');
  t.teardown(() => up.kill());
  const doc = {
    regions: { 'eu-west': { location: { lat: 53.35, lon: -6.26 }, edge: { ipv4: ['203.0.113.10'] } } },
    services: { web: { healthCheck: { interval: '200ms', timeout: '150ms', healthyThreshold: 1 }, versions: { stable: { endpoints: { 'eu-west': [up.address] } } } } },
    routes: { web: { hosts: ['www.example.com', 'ns2.example.com'], service: 'web' } },
  };
  const m = await startTestMeridian(doc, { dns: { listen: '127.0.0.1:0', zones: ZONES } });
  t.teardown(() => m.close());
  if (m.dnsPort === null) throw new Error('dns not listening');
  return m as TestMeridian & { dnsPort: number };
}

t.test('name servers with addresses: A/AAAA answered, glue with NS answers', async (t) => {
  const m = await meridian(t);
  const port = m.dnsPort;
  await waitFor(async () => (await dig(port, ['www.example.com'])).answers.length === 1, 'route answered');

  const ns = await dig(port, ['example.com', 'NS']);
  t.equal(ns.status, 'NOERROR');
  t.ok(ns.flags.has('aa'));
  t.same(
    ns.answers.map((a) => a.data),
    ['ns1.example.com.', 'ns2.example.com.', 'ns.provider.test.', 'ns3.dns.example.com.', 'ns4.example.com.'],
  );
  t.same(
    rows(ns.additional),
    [
      ['ns1.example.com.', 'A', '192.0.2.53'],
      ['ns1.example.com.', 'AAAA', '2001:db8::53'],
      ['ns2.example.com.', 'A', '192.0.2.54'],
      ['ns3.dns.example.com.', 'AAAA', '2001:db8::55'],
    ],
    'glue for the name servers with addresses; none for ns.provider.test (not served here) or ns4 (no addresses)',
  );
  t.ok(ns.additional.every((r) => r.ttl === 3600), 'glue has the NS TTL');
  t.comment(`NS answer with 5 NS and 4 glue records: ${/MSG SIZE\s+rcvd: (\d+)/.exec(ns.raw)?.[1]} bytes`);

  const sibling = await dig(port, ['example.net', 'NS']);
  t.same(rows(sibling.additional), [['ns1.example.com.', 'A', '192.0.2.53'], ['ns1.example.com.', 'AAAA', '2001:db8::53']], 'a name server in another served zone: its addresses too; none out of zone');

  const soa = await dig(port, ['example.com', 'SOA']);
  t.equal(soa.answers[0]?.type, 'SOA');
  t.same(soa.additional, [], 'no additional-section processing for SOA (RFC 1035 3.3.13)');

  const cases: [string, string, string[][]][] = [
    ['ns1.example.com', 'A', [['ns1.example.com.', 'A', '192.0.2.53']]],
    ['ns1.example.com', 'AAAA', [['ns1.example.com.', 'AAAA', '2001:db8::53']]],
    ['NS1.Example.COM', 'A', [['NS1.Example.COM.', 'A', '192.0.2.53']]],
    ['ns1.example.com', 'ANY', [['ns1.example.com.', 'A', '192.0.2.53']]],
    ['ns3.dns.example.com', 'ANY', [['ns3.dns.example.com.', 'AAAA', '2001:db8::55']]],
    ['ns2.example.com', 'A', [['ns2.example.com.', 'A', '192.0.2.54']]],
  ];
  for (const [name, type, expected] of cases) {
    const r = await dig(port, [name, type]);
    t.equal(r.status, 'NOERROR', `${name} ${type}`);
    t.ok(r.flags.has('aa'), `${name} ${type}: authoritative`);
    t.same(rows(r.answers), expected, `${name} ${type}`);
    t.equal(r.answers[0]?.ttl, 3600, `${name} ${type}: static, the NS TTL`);
  }
  t.comment('ns2.example.com is also a route host: the name server addresses win over the edge address');

  for (const [name, type] of [['ns2.example.com', 'AAAA'], ['ns1.example.com', 'MX'], ['dns.example.com', 'A']] as const) {
    const r = await dig(port, [name, type]);
    t.equal(r.status, 'NOERROR', `${name} ${type}: NODATA`);
    t.same(r.answers, [], `${name} ${type}: no records`);
    t.same(r.authority.map((a) => a.type), ['SOA'], `${name} ${type}: SOA for negative caching`);
  }
  t.equal((await dig(port, ['ns4.example.com', 'A'])).status, 'NXDOMAIN', 'a name server given by name alone is not invented');
  t.equal((await dig(port, ['x.ns1.example.com', 'A'])).status, 'NXDOMAIN', 'nothing below a name server');

  const state = await getJson<{ dns: { warnings: string[] } }>(m.adminPort, '/api/v1/state');
  t.equal(state.dns.warnings.length, 1, 'one warning');
  t.match(state.dns.warnings[0], /zone example\.com: name server ns4\.example\.com lies in a zone Meridian serves but has no addresses/);
});

t.test('glue that does not fit is left out without TC; the NS records still answer', async (t) => {
  const m = await meridian(t);
  const fits = await dig(m.dnsPort, ['big.test', 'NS', '+bufsize=1232', '+ignore']);
  t.notOk(fits.flags.has('tc'));
  t.equal(fits.additional.length, 20, 'all 20 AAAA with EDNS (1232 bytes)');
  const small = await dig(m.dnsPort, ['big.test', 'NS', '+noedns', '+ignore']);
  t.notOk(small.flags.has('tc'), 'no TC for additional data that does not fit in 512 bytes (RFC 2181 9)');
  t.equal(small.answers.length, 4, 'the NS records are all there');
  t.same(small.additional, [], 'the glue is left out');
});

function problems(zones: unknown): string[] {
  try {
    buildStaticConfig({ store: { file: 'routes.yaml' }, dns: { zones } });
    return [];
  } catch (err) {
    return String((err as Error).message).split('\n');
  }
}

t.test('name server configuration errors', async (t) => {
  t.same(problems([{ name: 'example.com', nameservers: ['ns1.example.com', { name: 'ns2.example.com', ipv4: ['192.0.2.1'] }] }]), [], 'names and objects mix');
  t.same(problems([{ name: 'example.com', nameservers: [{ name: 'ns1.example.com', ipv4: ['::1'] }] }]), ['dns.zones[0].nameservers[0].ipv4[0]: expected an IPv4 address']);
  t.same(problems([{ name: 'example.com', nameservers: [{ name: 'ns1.example.com', ipv6: ['192.0.2.1'] }] }]), ['dns.zones[0].nameservers[0].ipv6[0]: expected an IPv6 address']);
  t.same(problems([{ name: 'example.com', nameservers: [{ name: 'ns1.example.com' }] }]), ['dns.zones[0].nameservers[0].ipv4: give ipv4 or ipv6 addresses, or write the name alone']);
  t.same(problems([{ name: 'example.com', nameservers: [{ name: 'ns1.example.com', ipv4: ['192.0.2.1'], port: 53 }] }]), ['dns.zones[0].nameservers[0].port: unknown field']);
  t.match(problems([{ name: 'example.com', nameservers: [{ name: 'ns1.provider.test', ipv4: ['192.0.2.1'] }] }]), [
    /^dns\.zones\[0\]\.nameservers\[0\]: ns1\.provider\.test is outside every zone here/,
  ]);
  t.match(
    problems([
      { name: 'example.com', nameservers: [{ name: 'ns1.example.com', ipv4: ['192.0.2.1'] }] },
      { name: 'example.net', nameservers: [{ name: 'ns1.example.com', ipv4: ['192.0.2.2'] }] },
    ]),
    [/^dns\.zones\[1\]\.nameservers\[0\]: ns1\.example\.com has other addresses at dns\.zones\[0\]\.nameservers\[0\]/],
  );
  const config = buildStaticConfig({ store: { file: 'routes.yaml' }, dns: { zones: [{ name: 'Example.COM.', nameservers: ['NS1.example.com.', { name: 'ns2.example.com', ipv6: ['2001:db8::1'] }] }] } });
  t.same(config.dns?.zones[0]?.nameservers, [
    { name: 'ns1.example.com', ipv4: [], ipv6: [] },
    { name: 'ns2.example.com', ipv4: [], ipv6: ['2001:db8::1'] },
  ], 'both forms become { name, ipv4, ipv6 }, names lowercased');
});
