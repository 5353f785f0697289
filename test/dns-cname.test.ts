import t, { type Test } from 'tap';
import { routingIssues } from '../src/cli/validate.js';
import { formatIssue } from '../src/config/issues.js';
import { dig, type DigRecord } from './helpers/dig.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream } from './helpers/upstream.js';

const CHAIN = 10;
const DUBLIN = { lat: 53.35, lon: -6.26 };
const CHECKS = { interval: '200ms', timeout: '150ms', healthyThreshold: 1 };

function rows(records: readonly DigRecord[]): string[][] {
  return records.map((r) => [r.name, r.type, r.data]);
}

function routes(upstream: string): Record<string, unknown> {
  const regions: Record<string, unknown> = {
    'eu-west': { location: DUBLIN, edge: { ipv4: ['203.0.113.10'], cname: 'EU.cdn.test.' } },
    'us-east': { location: { lat: 38.9, lon: -77.04 }, edge: { cname: 'edge.provider.example' } },
    'cdn-eu': { location: DUBLIN, edge: { ipv4: ['198.51.100.1'], ipv6: ['2001:db8:c::1'] } },
    'loop-a': { location: DUBLIN, edge: { cname: 'loop-b.example.com' } },
    'loop-b': { location: DUBLIN, edge: { cname: 'loop-a.example.com' } },
    self: { location: DUBLIN, edge: { cname: 'self.example.com' } },
    gone: { location: DUBLIN, edge: { cname: 'missing.cdn.test' } },
  };
  const one = (region: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ healthCheck: CHECKS, ...extra, versions: { stable: { endpoints: { [region]: [upstream] } } } });
  const services: Record<string, unknown> = {
    web: { healthCheck: CHECKS, versions: { stable: { endpoints: { 'eu-west': [upstream], 'us-east': [upstream] } } } },
    fixed: one('eu-west', { steering: 'failover', failover: ['eu-west'] }),
    cdn: one('cdn-eu'),
    'loop-a': one('loop-a'),
    'loop-b': one('loop-b'),
    self: one('self'),
    gone: one('gone'),
  };
  const routeMap: Record<string, unknown> = {
    web: { hosts: ['www.example.com', 'example.com'], service: 'web' },
    fixed: { hosts: ['fixed.example.com'], service: 'fixed' },
    cdn: { hosts: ['eu.cdn.test'], service: 'cdn' },
    'loop-a': { hosts: ['loop-a.example.com'], service: 'loop-a' },
    'loop-b': { hosts: ['loop-b.example.com'], service: 'loop-b' },
    self: { hosts: ['self.example.com'], service: 'self' },
    gone: { hosts: ['gone.example.com'], service: 'gone' },
  };
  for (let i = 1; i <= CHAIN; i++) {
    regions[`chain-${i}`] = { location: DUBLIN, edge: i === CHAIN ? { ipv4: ['192.0.2.99'] } : { cname: `c${i + 1}.example.com` } };
    services[`chain-${i}`] = one(`chain-${i}`);
    routeMap[`chain-${i}`] = { hosts: [`c${i}.example.com`], service: `chain-${i}` };
  }
  return { regions, services, routes: routeMap };
}

async function meridian(t: Test): Promise<TestMeridian & { dnsPort: number }> {
  const up = await startUpstream('up');
  t.teardown(() => up.kill());
  const m = await startTestMeridian(routes(up.address), {
    dns: { listen: '127.0.0.1:0', zones: [{ name: 'example.com', nameservers: ['ns.provider.example'] }, { name: 'cdn.test', nameservers: ['ns.provider.example'] }] },
    geo: { networks: [{ cidr: '10.1.0.0/16', region: 'eu-west' }, { cidr: '10.2.0.0/16', region: 'us-east' }] },
  });
  t.teardown(() => m.close());
  if (m.dnsPort === null) throw new Error('dns not listening');
  return m as TestMeridian & { dnsPort: number };
}

t.test('CNAME steering through real dig', async (t) => {
  const m = await meridian(t);
  const port = m.dnsPort;
  const EU = '+subnet=10.1.0.0/24';
  const US = '+subnet=10.2.0.0/24';
  // Every endpoint is the one upstream with the same checks: one health record, healthy once www has the full TTL.
  await waitFor(async () => (await dig(port, ['www.example.com', US])).answers[0]?.ttl === 30, 'the upstream checked healthy');

  t.test('a region with only a cname answers it for A, AAAA, ANY and CNAME; a target outside the zones is left to the resolver', async (t) => {
    for (const type of ['A', 'AAAA', 'ANY', 'CNAME']) {
      const r = await dig(port, ['www.example.com', type, US]);
      t.equal(r.status, 'NOERROR', type);
      t.ok(r.flags.has('aa'), `${type}: authoritative`);
      t.same(rows(r.answers), [['www.example.com.', 'CNAME', 'edge.provider.example.']], `${type}: the CNAME alone`);
      t.equal(r.answers[0]?.ttl, 30, `${type}: the answer TTL`);
      t.equal(r.subnet, '10.2.0.0/24/16', `${type}: the scope of the network that chose the region`);
    }
  });

  t.test('a region with addresses and a cname: addresses for their family, the cname (chained in-zone) for the other', async (t) => {
    const a = await dig(port, ['www.example.com', 'A', EU]);
    t.same(rows(a.answers), [['www.example.com.', 'A', '203.0.113.10']]);
    const aaaa = await dig(port, ['WWW.example.com', 'AAAA', EU]);
    t.same(
      rows(aaaa.answers),
      [
        ['WWW.example.com.', 'CNAME', 'eu.cdn.test.'],
        ['eu.cdn.test.', 'AAAA', '2001:db8:c::1'],
      ],
      'no IPv6 in eu-west: its cname, lowercased, with the target answered as Meridian answers eu.cdn.test',
    );
    t.same(aaaa.answers.map((r) => r.ttl), [30, 30]);
    t.comment(`CNAME and chained AAAA: ${/MSG SIZE\s+rcvd: (\d+)/.exec(aaaa.raw)?.[1]} bytes`);
    const cname = await dig(port, ['www.example.com', 'CNAME', EU]);
    t.equal(cname.status, 'NOERROR');
    t.same(cname.answers, [], 'a CNAME query where A has addresses: NODATA');
    t.same(cname.authority.map((r) => r.type), ['SOA']);
    const direct = await dig(port, ['eu.cdn.test', 'AAAA']);
    t.same(rows(direct.answers), [['eu.cdn.test.', 'AAAA', '2001:db8:c::1']], 'the same records as asking for the target');
  });

  t.test('a chained answer is scoped to the longer of both prefixes', async (t) => {
    const r = await dig(port, ['fixed.example.com', 'AAAA', EU]);
    t.same(rows(r.answers), [['fixed.example.com.', 'CNAME', 'eu.cdn.test.'], ['eu.cdn.test.', 'AAAA', '2001:db8:c::1']]);
    t.equal(r.subnet, '10.1.0.0/24/16', 'failover steering does not depend on the client (/0), the target does (/16)');
  });

  t.test('a chain through several names, bounded at 8 names', async (t) => {
    const r = await dig(port, ['c1.example.com', 'A']);
    t.equal(r.status, 'NOERROR');
    t.same(
      rows(r.answers),
      Array.from({ length: 8 }, (_, i) => [`c${i + 1}.example.com.`, 'CNAME', `c${i + 2}.example.com.`]),
      'eight names, then the last alias is left for the resolver to follow',
    );
    const near = await dig(port, ['c4.example.com', 'A']);
    t.same(
      rows(near.answers),
      [...Array.from({ length: 6 }, (_, i) => [`c${i + 4}.example.com.`, 'CNAME', `c${i + 5}.example.com.`]), ['c10.example.com.', 'A', '192.0.2.99']],
      'a chain within the bound ends in the addresses',
    );
  });

  t.test('loops end at the first name met twice', async (t) => {
    const loop = await dig(port, ['loop-a.example.com', 'A']);
    t.equal(loop.status, 'NOERROR');
    t.same(rows(loop.answers), [
      ['loop-a.example.com.', 'CNAME', 'loop-b.example.com.'],
      ['loop-b.example.com.', 'CNAME', 'loop-a.example.com.'],
    ]);
    const self = await dig(port, ['self.example.com', 'AAAA']);
    t.same(rows(self.answers), [['self.example.com.', 'CNAME', 'self.example.com.']], 'a region aliased to its own route host');
    const tcp = await dig(port, ['loop-b.example.com', 'A', '+tcp']);
    t.same(rows(tcp.answers).map((r) => r[0]), ['loop-b.example.com.', 'loop-a.example.com.'], 'the same over TCP');
  });

  t.test('a target Meridian serves without that name: the CNAME with the target zone NXDOMAIN (RFC 6604)', async (t) => {
    const r = await dig(port, ['gone.example.com', 'A']);
    t.equal(r.status, 'NXDOMAIN');
    t.same(rows(r.answers), [['gone.example.com.', 'CNAME', 'missing.cdn.test.']]);
    t.same(r.authority.map((a) => [a.name, a.type]), [['cdn.test.', 'SOA']], 'the SOA of the zone the chain ended in');
  });

  t.test('no CNAME at a zone apex: only regions with addresses answer there', async (t) => {
    const a = await dig(port, ['example.com', 'A', US]);
    t.same(rows(a.answers), [['example.com.', 'A', '203.0.113.10']], 'us-east has only a cname: the apex is answered from eu-west');
    const aaaa = await dig(port, ['example.com', 'AAAA', US]);
    t.equal(aaaa.status, 'NOERROR');
    t.same(aaaa.answers, [], 'no region has IPv6 addresses: NODATA, never a CNAME');
    const cname = await dig(port, ['example.com', 'CNAME', US]);
    t.same(cname.answers, [], 'CNAME at the apex: NODATA');
    const soa = await dig(port, ['example.com', 'SOA']);
    t.same(soa.answers.map((r) => r.type), ['SOA'], 'the SOA is still there');
  });
});

t.test('edge.cname validation', async (t) => {
  const doc = (cname: unknown): unknown => ({ regions: { 'eu-west': { location: DUBLIN, edge: { cname } } }, services: {}, routes: {} });
  const problems = (cname: unknown): string[] => routingIssues(doc(cname)).issues.filter((i) => i.reason !== 'empty').map(formatIssue);
  for (const good of ['cdn.example.net', 'Edge-1.CDN.example.net.', 'a.b']) t.same(problems(good), [], good);
  const hint = 'regions.eu-west.edge.cname: expected a host name such as edge.cdn.example.net';
  for (const bad of ['localhost', 'bad_name.example.net', '-x.example.net', 'x..example.net', `${'a'.repeat(64)}.example.net`, `${'abcdefghi.'.repeat(25)}example.net`, '*.cdn.net', '']) {
    t.same(problems(bad), [hint], JSON.stringify(bad));
  }
  t.same(problems('203.0.113.10'), ['regions.eu-west.edge.cname: expected a host name, not an address: addresses go in ipv4 or ipv6']);
  t.same(problems(42), ['regions.eu-west.edge.cname: Invalid input: expected string, received number']);
});
