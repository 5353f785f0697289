import { rm } from 'node:fs/promises';
import { Agent } from 'node:http';
import t, { type Test } from 'tap';
import type { Origin } from '../src/geo/origin.js';
import { pickEndpoint } from '../src/routing/balancer.js';
import { buildSteering } from '../src/routing/steering.js';
import type { Endpoint, RegionGroup } from '../src/routing/table.js';
import { send, type TestResponse } from './helpers/client.js';
import { startTestMeridian, type StaticOverrides, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { compileClean, groupOf, versionOf } from './helpers/table.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

const LOCATIONS = {
  'ap-south': { lat: 19.08, lon: 72.88 }, // Mumbai
  'us-east': { lat: 38.9, lon: -77.04 }, // Washington
  'eu-west': { lat: 53.35, lon: -6.26 }, // Dublin
} as const;
type RegionName = keyof typeof LOCATIONS;
/**
 * Declaration order on purpose differs from every expected "nearest" answer, so
 * a test cannot pass by falling back to declaration order.
 */
const DECLARED: readonly RegionName[] = ['ap-south', 'us-east', 'eu-west'];
const LONDON = { lat: 51.5, lon: -0.13 };
const SINGAPORE = { lat: 1.35, lon: 103.82 };

type Upstreams = Record<RegionName, TestUpstream>;

function regions(drained: readonly RegionName[] = []): Record<string, unknown> {
  return Object.fromEntries(DECLARED.map((r) => [r, { location: LOCATIONS[r], ...(drained.includes(r) ? { drain: true } : {}) }]));
}

/** A service with one endpoint (the region's own upstream) in each of `where`. */
function service(ups: Upstreams, where: readonly RegionName[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...extra, versions: { stable: { endpoints: Object.fromEntries(where.map((r) => [r, [ups[r].address]])) } } };
}

async function regionUpstreams(t: Test): Promise<Upstreams> {
  const ups: Upstreams = {
    'ap-south': await startUpstream('ap-south'),
    'us-east': await startUpstream('us-east'),
    'eu-west': await startUpstream('eu-west'),
  };
  t.teardown(async () => {
    await Promise.all(Object.values(ups).map((u) => u.kill()));
  });
  return ups;
}

async function meridian(t: Test, routes: unknown, overrides: StaticOverrides = {}): Promise<TestMeridian> {
  const m = await startTestMeridian(routes, { ...overrides, proxy: { debugHeaders: true, ...(overrides.proxy ?? {}) } });
  t.teardown(async () => {
    await m.close();
    await rm(m.dir, { recursive: true, force: true });
  });
  return m;
}

/** The region that served a response: the debug header, cross-checked with the upstream's own label. */
function servedBy(res: TestResponse): string {
  if (res.status !== 200) return `${res.status}:${String(res.headers['x-meridian-error'])}`;
  const region = String(res.headers['x-meridian-region']);
  const label = String(res.headers['x-upstream']);
  return region === label ? region : `mismatch:${region}/${label}`;
}

function client(m: TestMeridian, agent?: Agent): (xff: string | null, host?: string) => Promise<string> {
  return async (xff, host = 'web.test') => {
    const headers: Record<string, string> = { host };
    if (xff !== null) headers['x-forwarded-for'] = xff;
    return servedBy(await send(m.port, { headers, agent: agent ?? false }));
  };
}

function keepAlive(t: Test): Agent {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  t.teardown(() => agent.destroy());
  return agent;
}

const GEO: StaticOverrides = {
  geo: {
    networks: [
      { cidr: '10.1.0.0/16', region: 'eu-west' },
      { cidr: '10.2.0.0/16', region: 'us-east' },
      { cidr: '10.3.0.0/16', location: SINGAPORE },
      { cidr: '10.1.5.0/24', region: 'us-east' },
    ],
  },
  node: { location: LONDON },
};

t.test('nearest: each client network goes to its nearest region', async (t) => {
  const ups = await regionUpstreams(t);
  const m = await meridian(
    t,
    {
      regions: regions(),
      services: {
        web: service(ups, DECLARED),
        noEu: service(ups, ['ap-south', 'us-east']),
        noAp: service(ups, ['us-east', 'eu-west']),
      },
      routes: {
        web: { pathPrefix: '/', service: 'web' },
        noEu: { hosts: ['noeu.test'], service: 'noEu' },
        noAp: { hosts: ['noap.test'], service: 'noAp' },
      },
    },
    GEO,
  );
  const via = client(m, keepAlive(t));
  t.equal(await via('10.1.2.3'), 'eu-west', '10.1.0.0/16 is mapped to eu-west');
  t.equal(await via('10.2.0.9'), 'us-east', '10.2.0.0/16 is mapped to us-east');
  t.equal(await via('10.3.200.1'), 'ap-south', '10.3.0.0/16 is Singapore: Mumbai is nearest');
  t.equal(await via('192.0.2.1'), 'eu-west', 'an unknown address uses node.location (London): Dublin is nearest');
  t.equal(await via(null), 'eu-west', 'no X-Forwarded-For: the peer 127.0.0.1 is unknown too, so node.location');
  t.equal(await via('not-an-ip'), 'eu-west', 'an unparsable X-Forwarded-For entry falls back to node.location');

  t.equal(await via('10.1.5.7'), 'us-east', 'longest prefix wins: 10.1.5.0/24 maps to us-east inside 10.1.0.0/16');
  t.equal(await via('10.1.6.7'), 'eu-west', 'outside the /24 the /16 still applies');

  t.equal(await via('10.2.0.9, 127.0.0.5'), 'us-east', 'a trusted hop on the right of X-Forwarded-For is skipped');
  t.equal(await via('10.2.0.9, 10.1.0.9'), 'eu-west', 'the right-most untrusted entry is the client (what a client forges on the left is ignored)');
  const repeated = await send(m.port, { headers: ['host', 'web.test', 'x-forwarded-for', '10.3.0.1', 'x-forwarded-for', '10.2.0.1'] });
  t.equal(servedBy(repeated), 'us-east', 'several X-Forwarded-For headers are one list: the last entry counts');

  t.equal(await via('10.1.2.3', 'noeu.test'), 'us-east', 'no endpoint in eu-west: the next nearest to Dublin is us-east');
  t.equal(await via('192.0.2.1', 'noeu.test'), 'us-east', 'unknown client without eu-west: next nearest to London is us-east');
  t.equal(await via('10.3.0.1', 'noap.test'), 'eu-west', 'Singapore without ap-south: Dublin is nearer than Washington');
  t.equal(await via('10.2.0.9', 'noap.test'), 'us-east', 'a client in a region the service serves stays there');
});

t.test('X-Forwarded-For is believed only from trusted proxies', async (t) => {
  const ups = await regionUpstreams(t);
  const routes = { regions: regions(), services: { web: service(ups, DECLARED) }, routes: { web: { pathPrefix: '/', service: 'web' } } };
  const m = await meridian(t, routes, { ...GEO, proxy: { trustedProxies: ['192.0.2.0/24'] } });
  const via = client(m);
  t.equal(await via('10.2.0.9'), 'eu-west', 'the peer 127.0.0.1 is not trusted here: its X-Forwarded-For is ignored (node.location)');
  t.equal(await via('10.3.0.1'), 'eu-west', 'nor is a Singapore address');
});

t.test('without client geo: node.region, else node.location, else declaration order', async (t) => {
  const ups = await regionUpstreams(t);
  const routes = {
    regions: regions(),
    services: { web: service(ups, DECLARED), noUs: service(ups, ['ap-south', 'eu-west']), noAp: service(ups, ['us-east', 'eu-west']) },
    routes: {
      web: { pathPrefix: '/', service: 'web' },
      noUs: { hosts: ['nous.test'], service: 'noUs' },
      noAp: { hosts: ['noap.test'], service: 'noAp' },
    },
  };
  const byRegion = client(await meridian(t, routes, { node: { region: 'us-east' } }));
  t.equal(await byRegion('10.1.2.3'), 'us-east', 'node.region without node.location: its own region first');
  t.equal(await byRegion(null, 'nous.test'), 'eu-west', 'and when that region has no endpoint, the nearest to its location (Washington -> Dublin)');

  const neither = client(await meridian(t, routes));
  t.equal(await neither('10.1.2.3'), 'ap-south', 'neither node.region nor node.location: the first declared region');
  t.equal(await neither(null, 'noap.test'), 'us-east', 'declaration order among the regions the service has');
});

t.test('failover steering: the listed order, then unlisted regions; drained regions are skipped', async (t) => {
  const ups = await regionUpstreams(t);
  const routes = (drained: RegionName[]): unknown => ({
    regions: regions(drained),
    services: {
      web: service(ups, DECLARED),
      fo: service(ups, DECLARED, { steering: 'failover', failover: ['us-east', 'eu-west'] }),
      foLast: service(ups, DECLARED, { steering: 'failover', failover: ['eu-west'] }),
      foUnlisted: service(ups, ['ap-south', 'us-east'], { steering: 'failover', failover: ['eu-west'] }),
    },
    routes: {
      web: { pathPrefix: '/', service: 'web' },
      fo: { hosts: ['fo.test'], service: 'fo' },
      foLast: { hosts: ['folast.test'], service: 'foLast' },
      foUnlisted: { hosts: ['founlisted.test'], service: 'foUnlisted' },
    },
  });
  const m = await meridian(t, routes([]), GEO);
  const via = client(m, keepAlive(t));
  for (const xff of ['10.1.2.3', '10.3.0.1', '192.0.2.1']) {
    t.equal(await via(xff, 'fo.test'), 'us-east', `failover [us-east, eu-west]: client ${xff} goes to us-east`);
  }
  t.equal(await via('10.2.0.1', 'folast.test'), 'eu-west', 'failover [eu-west]: the listed region comes before unlisted ones declared earlier');
  t.equal(await via('10.1.2.3', 'founlisted.test'), 'ap-south', 'no listed region has endpoints: unlisted regions in declaration order');

  await m.writeRoutes(routes(['us-east']));
  await waitFor(async () => (await via('10.1.2.3', 'fo.test')) !== 'us-east', 'the us-east drain to apply');
  t.equal(await via('10.1.2.3', 'fo.test'), 'eu-west', 'us-east drained: failover goes to the next listed region');
  t.equal(await via('10.2.0.9'), 'eu-west', 'us-east drained: nearest steering sends its clients to the next nearest (Dublin)');
  t.equal(await via('10.1.2.3', 'founlisted.test'), 'ap-south', 'a drain elsewhere does not move a service already off that region');
  const usBefore = ups['us-east'].seen.length;
  for (let i = 0; i < 20; i++) await via('10.2.0.9', i % 2 === 0 ? 'fo.test' : 'web.test');
  t.equal(ups['us-east'].seen.length, usBefore, 'a drained region gets no new requests');

  await m.writeRoutes(routes(['us-east', 'eu-west']));
  await waitFor(async () => (await via('10.1.2.3', 'fo.test')) === 'ap-south', 'the second drain to apply');
  t.equal(await via('10.2.0.9', 'fo.test'), 'ap-south', 'both listed regions drained: the unlisted region takes the traffic');

  await m.writeRoutes(routes(['us-east', 'eu-west', 'ap-south']));
  const none = await waitFor(async () => {
    const res = await send(m.port, { headers: { host: 'fo.test' } });
    return res.status === 503 ? res : null;
  }, 'every region drained');
  t.equal(none.headers['x-meridian-error'], 'no-healthy-upstream', 'every region drained: 503, drained endpoints are never tried even as a last resort');
});

t.test('weighted steering: regionWeights dial the share of each region', async (t) => {
  const endpoints = (port: number) => [`127.0.0.1:${port}`];
  const table = compileClean({
    regions: regions(),
    services: {
      web: {
        steering: 'weighted',
        regionWeights: { 'eu-west': 70, 'us-east': 30 },
        versions: { stable: { endpoints: { 'ap-south': endpoints(1001), 'us-east': endpoints(1002), 'eu-west': endpoints(1003) } } },
      },
    },
  });
  const steering = versionOf(table, 'web').steering;
  t.equal(steering.kind, 'weighted');
  const origin: Origin = { key: 'test', region: 'ap-south', location: LOCATIONS['ap-south'] };
  const first = new Map<string, number>();
  const orders = new Set<string>();
  const draws = 20_000;
  for (let i = 0; i < draws; i++) {
    const order = steering.candidates(origin);
    const name = order[0]?.region.name ?? 'none';
    first.set(name, (first.get(name) ?? 0) + 1);
    orders.add(order.map((g) => g.region.name).join(','));
  }
  const euShare = ((first.get('eu-west') ?? 0) * 100) / draws;
  t.ok(Math.abs(euShare - 70) <= 2, `eu-west is first for ${euShare}% of ${draws} requests (want 70 ± 2)`);
  t.equal(first.get('ap-south') ?? 0, 0, 'a region without weight is never first, whatever the client origin');
  t.same([...orders].sort(), ['eu-west,us-east,ap-south', 'us-east,eu-west,ap-south'], 'the other weighted region is the first fallback, the unweighted one the last');

  const ups = await regionUpstreams(t);
  const m = await meridian(t, {
    regions: regions(),
    services: { web: service(ups, DECLARED, { steering: 'weighted', regionWeights: { 'eu-west': 70, 'us-east': 30 } }) },
    routes: { web: { pathPrefix: '/', service: 'web' } },
  });
  const agent = keepAlive(t);
  const counts = new Map<string, number>();
  const total = 240;
  for (let batch = 0; batch < total / 16; batch++) {
    const got = await Promise.all(Array.from({ length: 16 }, () => send(m.port, { agent }).then(servedBy)));
    for (const r of got) counts.set(r, (counts.get(r) ?? 0) + 1);
  }
  const eu = ((counts.get('eu-west') ?? 0) * 100) / total;
  // 240 draws at p=0.7: one standard deviation is 3 points, so ±13 is over four of them.
  t.ok(Math.abs(eu - 70) <= 13, `through sockets eu-west served ${eu}% of ${total} requests (want 70 ± 13); ${JSON.stringify([...counts])}`);
  t.equal((counts.get('eu-west') ?? 0) + (counts.get('us-east') ?? 0), total, 'every request was served by eu-west or us-east');
});

t.test('within a region: endpoint weights and power of two choices', async (t) => {
  const table = compileClean({
    regions: { 'eu-west': { location: LOCATIONS['eu-west'] } },
    services: {
      weighted: { versions: { stable: { endpoints: { 'eu-west': [{ address: '127.0.0.1:1001', weight: 1 }, { address: '127.0.0.1:1002', weight: 3 }] } } } },
      even: { versions: { stable: { endpoints: { 'eu-west': ['127.0.0.1:2001', '127.0.0.1:2002'] } } } },
      three: { versions: { stable: { endpoints: { 'eu-west': ['127.0.0.1:3001', '127.0.0.1:3002', '127.0.0.1:3003'] } } } },
    },
  });
  /** Percent of `picks` idle-or-loaded picks that went to each endpoint key. */
  const shares = (group: RegionGroup, picks = 4_000): Map<string, number> => {
    const counts = new Map<string, number>(group.endpoints.map((ep) => [ep.key, 0]));
    for (let i = 0; i < picks; i++) {
      const key = pickEndpoint(group, false, { exclude: null, sawFull: false })?.key ?? 'none';
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return new Map([...counts].map(([key, n]) => [key, (n * 100) / picks]));
  };
  const weighted = groupOf(versionOf(table, 'weighted'), 'eu-west');
  const light = shares(weighted).get('127.0.0.1:1001') ?? 0;
  t.ok(Math.abs(light - 25) <= 5, `idle, weights 1 and 3: the weight-1 endpoint gets ${light}% of 4,000 picks (want 25 ± 5)`);

  const even = groupOf(versionOf(table, 'even'), 'eu-west');
  const half = shares(even).get('127.0.0.1:2001') ?? 0;
  t.ok(Math.abs(half - 50) <= 5, `idle, equal weights: ${half}% (want 50 ± 5)`);

  const busy = even.endpoints[0] as Endpoint;
  busy.upstream.outstanding = 20;
  const busyShare = shares(even).get(busy.key) ?? 0;
  busy.upstream.outstanding = 0;
  t.ok(busyShare < 10, `the endpoint with 20 requests outstanding gets ${busyShare}% of picks (want < 10)`);

  const three = groupOf(versionOf(table, 'three'), 'eu-west');
  const loaded = three.endpoints[1] as Endpoint;
  loaded.upstream.outstanding = 50;
  const threeShares = shares(three);
  loaded.upstream.outstanding = 0;
  const loadedShare = threeShares.get(loaded.key) ?? 0;
  const idle = [...threeShares].filter(([key]) => key !== loaded.key).map(([, share]) => share);
  t.ok(loadedShare < 10, `three endpoints, one loaded: it gets ${loadedShare}% (want < 10)`);
  t.ok(idle.length === 2 && idle.every((share) => share > 30), `and the two idle ones share the rest (${idle.join('%, ')}%)`);
  t.equal(threeShares.get('none'), undefined, 'every pick found an endpoint');
});

t.test('within a region through sockets: weights are honoured and drained endpoints get nothing', async (t) => {
  const light = await startUpstream('light');
  const heavy = await startUpstream('heavy');
  const drained = await startUpstream('drained');
  t.teardown(async () => {
    await Promise.all([light.kill(), heavy.kill(), drained.kill()]);
  });
  const m = await meridian(t, {
    regions: { 'eu-west': { location: LOCATIONS['eu-west'] } },
    services: {
      web: {
        versions: {
          stable: {
            endpoints: {
              'eu-west': [
                { address: light.address, weight: 1 },
                { address: drained.address, weight: 5, drain: true },
                { address: heavy.address, weight: 3 },
              ],
            },
          },
        },
      },
    },
    routes: { web: { pathPrefix: '/', service: 'web' } },
  });
  const agent = keepAlive(t);
  const total = 200;
  const statuses = new Set<number>();
  for (let i = 0; i < total; i++) statuses.add((await send(m.port, { agent })).status);
  t.same([...statuses], [200], `all ${total} requests are served`);
  t.equal(drained.seen.length, 0, 'the drained endpoint (weight 5) never receives a request');
  t.equal(light.seen.length + heavy.seen.length, total, 'the two undrained endpoints served everything');
  const lightShare = (light.seen.length * 100) / total;
  // 200 sequential requests at p=0.25: one standard deviation is about 3 points.
  t.ok(Math.abs(lightShare - 25) <= 12, `one request at a time, weights 1 and 3: the weight-1 endpoint served ${lightShare}% (want 25 ± 12)`);
});

t.test('latency steering orders regions by measured response time', async (t) => {
  const london: Origin = { key: 'node', region: null, location: LONDON };
  const doc = {
    regions: regions(),
    services: {
      web: {
        steering: 'latency',
        versions: {
          stable: {
            endpoints: {
              'ap-south': ['127.0.0.1:1001'],
              'us-east': ['127.0.0.1:1002'],
              'eu-west': ['127.0.0.1:1003', '127.0.0.1:1004'],
            },
          },
        },
      },
    },
  };
  /** A fresh compile (fresh upstreams), with `latency` set per region; null leaves a region unmeasured. */
  const steer = (latency: Partial<Record<RegionName, number | [number, number]>>) => {
    const version = versionOf(compileClean(doc, london), 'web');
    for (const [region, ms] of Object.entries(latency)) {
      const eps = groupOf(version, region).endpoints;
      eps.forEach((ep, i) => (ep.upstream.latencyMs = Array.isArray(ms) ? (ms[i] as number) : ms));
    }
    return { version, order: (origin: Origin = london) => version.steering.candidates(origin).map((g) => g.region.name) };
  };
  const far: Origin = { key: 'sg', region: null, location: SINGAPORE };

  t.same(steer({}).order(), ['eu-west', 'us-east', 'ap-south'], 'nothing measured: nearest to the node first');
  t.same(steer({ 'ap-south': 5, 'us-east': 50 }).order(), ['ap-south', 'us-east', 'eu-west'], 'measured regions by latency, the unmeasured one after them');
  t.same(steer({ 'us-east': 30 }).order(), ['us-east', 'eu-west', 'ap-south'], 'unmeasured regions keep their nearest-first order behind the measured one');
  t.same(steer({ 'us-east': 30 }).order(far), ['us-east', 'eu-west', 'ap-south'], 'the client origin does not matter to latency steering');
  const live = steer({ 'eu-west': [100, 2], 'us-east': 10, 'ap-south': 40 });
  t.same(live.order(), ['eu-west', 'us-east', 'ap-south'], "a region's latency is its fastest endpoint's");
  t.equal(live.version.steering.usesOrigin, false, 'latency steering does not need the client located');

  for (const ep of groupOf(live.version, 'eu-west').endpoints) ep.upstream.latencyMs = 200;
  const reordered = await waitFor(() => {
    const order = live.order();
    return order[0] === 'us-east' ? order : null;
  }, 'latency steering to notice eu-west slowed down', 3_000, 25);
  t.same(reordered, ['us-east', 'ap-south', 'eu-west'], 'new measurements reorder the regions');

  const built = buildSteering('latency', live.version.groups, { node: london, regions: new Map(live.version.groups.map((g) => [g.region.name, g.region])) }, {});
  t.same(
    built.candidates(london).map((g) => g.region.name),
    ['us-east', 'ap-south', 'eu-west'],
    'buildSteering("latency") on the same groups agrees',
  );
});
