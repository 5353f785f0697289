import { execFile } from 'node:child_process';
import t from 'tap';
import { getJson } from './helpers/client.js';
import { dig } from './helpers/dig.js';
import { startTestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';
import { chooseAnswerRegion } from '../src/routing/select.js';
import type { Origin } from '../src/geo/origin.js';
import { compileClean, serviceOf } from './helpers/table.js';

const EDGE_REGION: Record<string, string> = { '203.0.113.10': 'eu-west', '203.0.113.20': 'us-east', '203.0.113.30': 'ap-south' };
// Healthy at the first check; slow to call an endpoint down, so a loaded machine does not move answers mid-test.
const CHECKS = { interval: '1s', timeout: '1s', healthyThreshold: 1, unhealthyThreshold: 5 };
/** The quick start's networks, and a client none of them holds (the node, in London, decides). */
const CLIENTS = ['10.1.0.7', '10.2.0.7', '10.3.0.7', '192.0.2.7'];

/** The quick start's table: stable in three regions, the canary in eu-west only. */
function routes(ups: Record<string, TestUpstream>, weights: { stable: number; canary: number }): Record<string, unknown> {
  return {
    regions: {
      'eu-west': { location: { lat: 53.35, lon: -6.26 }, countries: ['IE', 'GB'], edge: { ipv4: ['203.0.113.10'] } },
      'us-east': { location: { lat: 38.9, lon: -77.04 }, countries: ['US', 'CA'], edge: { ipv4: ['203.0.113.20'] } },
      'ap-south': { location: { lat: 19.08, lon: 72.88 }, countries: ['IN'], edge: { ipv4: ['203.0.113.30'] } },
    },
    services: {
      web: {
        steering: 'nearest',
        healthCheck: CHECKS,
        split: { weights, sticky: { cookie: 'mrd-bucket' }, override: { header: 'x-meridian-version' } },
        versions: {
          stable: { endpoints: { 'eu-west': [ups['stable-eu']?.address], 'us-east': [ups['stable-us']?.address], 'ap-south': [ups['stable-ap']?.address] } },
          canary: { endpoints: { 'eu-west': [ups['canary-eu']?.address] } },
        },
      },
    },
    routes: { www: { hosts: ['www.example.com'], pathPrefix: '/', service: 'web' } },
  };
}

/** The region curl's request was served from, as a trusted proxy (127.0.0.1) forwarding for `client`. */
function curlRegion(port: number, client: string, version: string | null): Promise<string> {
  const headers = ['-H', 'Host: www.example.com', '-H', `X-Forwarded-For: ${client}`, ...(version === null ? [] : ['-H', `x-meridian-version: ${version}`])];
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', '5', '-o', '/dev/null', '-D', '-', ...headers, `http://127.0.0.1:${port}/`], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`curl failed: ${stderr || err.message}`));
      else resolve(/^x-meridian-region: (\S+)/im.exec(stdout)?.[1] ?? 'none');
    });
  });
}

t.test('DNS answers the region most of a client\'s HTTP requests go to, at every canary split', async (t) => {
  const names = ['stable-eu', 'stable-us', 'stable-ap', 'canary-eu'];
  const ups: Record<string, TestUpstream> = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await startUpstream(n)] as const)));
  t.teardown(async () => {
    for (const up of Object.values(ups)) await up.kill();
  });
  const m = await startTestMeridian(routes(ups, { stable: 100, canary: 0 }), {
    node: { region: 'eu-west', location: { lat: 51.51, lon: -0.13 } },
    proxy: { debugHeaders: true },
    dns: { listen: '127.0.0.1:0', ttl: '30s', zones: [{ name: 'example.com', nameservers: ['ns1.example.com'] }] },
    geo: {
      networks: [
        { cidr: '10.1.0.0/16', region: 'eu-west' },
        { cidr: '10.2.0.0/16', region: 'us-east' },
        { cidr: '10.3.0.0/16', location: { lat: 1.35, lon: 103.82 } },
      ],
    },
  });
  t.teardown(() => m.close());
  const port = m.dnsPort as number;
  await waitFor(() => names.every((n) => (ups[n]?.healthChecks ?? 0) > 0), 'every endpoint checked');
  await waitFor(async () => (await dig(port, ['www.example.com', '+subnet=10.2.0.0/24'])).answers[0]?.data === '203.0.113.20', 'us-east healthy');

  // At a tie (50/50) the region the client's steering ranks first: its nearest.
  const expected: [{ stable: number; canary: number }, string[]][] = [
    [{ stable: 100, canary: 0 }, ['eu-west', 'us-east', 'ap-south', 'eu-west']],
    [{ stable: 50, canary: 50 }, ['eu-west', 'us-east', 'ap-south', 'eu-west']],
    [{ stable: 10, canary: 90 }, ['eu-west', 'eu-west', 'eu-west', 'eu-west']],
    [{ stable: 0, canary: 100 }, ['eu-west', 'eu-west', 'eu-west', 'eu-west']],
    [{ stable: 90, canary: 10 }, ['eu-west', 'us-east', 'ap-south', 'eu-west']],
  ];
  for (const [weights, regions] of expected) {
    const label = `stable ${weights.stable} / canary ${weights.canary}`;
    const before = (await getJson<{ revision: number }>(m.adminPort, '/api/v1/state')).revision;
    if (weights.stable !== 100) {
      await m.writeRoutes(routes(ups, weights));
      await waitFor(async () => (await getJson<{ revision: number }>(m.adminPort, '/api/v1/state')).revision > before || null, `${label} applied`);
    }
    const viaDns: string[] = [];
    for (const client of CLIENTS) {
      const answer = await dig(port, ['www.example.com', `+subnet=${client}/32`]);
      const dnsRegion = EDGE_REGION[answer.answers[0]?.data ?? ''] ?? 'none';
      viaDns.push(dnsRegion);
      // HTTP per version (forced by the override header): the share of the client's requests each region serves.
      const shares = new Map<string, number>();
      for (const [version, weight] of Object.entries(weights)) {
        if (weight === 0) continue;
        const region = await curlRegion(m.port, client, version);
        shares.set(region, (shares.get(region) ?? 0) + weight);
      }
      const most = Math.max(...shares.values());
      t.equal(shares.get(dnsRegion), most, `${label}, ${client}: DNS answers ${dnsRegion}, the region serving most of its HTTP requests (${JSON.stringify(Object.fromEntries(shares))})`);
      if (shares.size === 1) {
        // One region serves everything: every request, whatever version it draws, goes where DNS points.
        for (let i = 0; i < 5; i++) t.equal(await curlRegion(m.port, client, null), dnsRegion, `${label}, ${client}: HTTP request ${i} goes to the DNS region`);
      }
    }
    t.same(viaDns, regions, `${label}: the regions DNS answers`);
  }
});

t.test('chooseAnswerRegion: shares add up per region, ties go to the steering order, then declaration order', async (t) => {
  const regions = {
    'eu-west': { location: { lat: 53.35, lon: -6.26 }, edge: { ipv4: ['203.0.113.10'] } },
    'us-east': { location: { lat: 38.9, lon: -77.04 }, edge: { ipv4: ['203.0.113.20'] } },
  };
  const service = (steering: Record<string, unknown>, weights: Record<string, number>, versions: Record<string, string[]>): Record<string, unknown> => ({
    ...steering,
    split: { weights },
    versions: Object.fromEntries(Object.entries(versions).map(([name, where]) => [name, { endpoints: Object.fromEntries(where.map((r, i) => [r, [`127.0.0.1:${7000 + i}`]])) }])),
  });
  const table = compileClean({
    regions,
    services: {
      three: service({}, { a: 40, b: 30, c: 30 }, { a: ['eu-west'], b: ['us-east'], c: ['us-east'] }),
      apart: service({}, { a: 50, b: 50 }, { a: ['us-east'], b: ['eu-west'] }),
      failover: service({ steering: 'failover', failover: ['us-east', 'eu-west'] }, { canary: 50, stable: 50 }, { canary: ['eu-west'], stable: ['eu-west', 'us-east'] }),
      idle: service({}, { stable: 100, canary: 0 }, { stable: ['us-east'], canary: ['eu-west'] }),
    },
    routes: {},
  });
  const dublin: Origin = { key: 'dublin', region: 'eu-west', location: null };
  const virginia: Origin = { key: 'virginia', region: 'us-east', location: null };
  const region = (name: string, origin: Origin): string | undefined =>
    chooseAnswerRegion(serviceOf(table, name).split.versions, origin, false, () => true)?.group.region.name;
  t.equal(region('three', dublin), 'us-east', 'two versions of 30 in us-east outweigh one of 40 in eu-west');
  t.equal(region('apart', virginia), 'eu-west', 'a tie no version can rank: declaration order');
  t.equal(region('failover', dublin), 'us-east', 'a tie: the failover order of the version serving both regions, whoever asks');
  t.equal(region('idle', dublin), 'us-east', 'a version with weight 0 takes no share');
  const degraded = chooseAnswerRegion(serviceOf(table, 'three').split.versions, dublin, false, () => true);
  t.equal(degraded?.degraded, true, 'unchecked endpoints: degraded (short TTL)');
  t.equal(chooseAnswerRegion(serviceOf(table, 'three').split.versions, dublin, true, (g) => g.region.name === 'nowhere'), null, 'no region accepted: null');
});
