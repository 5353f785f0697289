import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { makeCa, makeCert } from './helpers/certs.js';
import { send } from './helpers/client.js';
import { etcdFixture } from './helpers/etcd.js';
import { startTestMeridian, type StaticOverrides, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

/** Prefixes of series that only some nodes run: etcd mode, GeoDNS, TLS, ACME. */
const OPTIONAL = ['meridian_etcd_', 'meridian_dns_', 'meridian_tls_', 'meridian_acme_'];

async function meridian(t: Test, routes: unknown, overrides: StaticOverrides = {}): Promise<TestMeridian> {
  const m = await startTestMeridian(routes, overrides);
  t.teardown(() => m.close());
  return m;
}

async function scrape(m: TestMeridian): Promise<string> {
  const res = await send(m.adminPort, { path: '/metrics' });
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return res.text;
}

/** Sample lines of one metric (`name{...} value`), sorted. */
function samples(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).sort();
}

/** Metric families a scrape names (in HELP, TYPE or sample lines) with one of these prefixes. */
function familiesWith(text: string, prefixes: readonly string[]): string[] {
  const names = new Set<string>();
  const histograms = new Set([...text.matchAll(/^# TYPE (\S+) histogram$/gm)].map((m) => m[1]));
  for (const line of text.split('\n')) {
    let name = (line.startsWith('# ') ? line.split(' ')[2] : line.split(/[{ ]/)[0]) ?? '';
    const base = name.replace(/_(bucket|sum|count)$/, '');
    if (histograms.has(base)) name = base;
    if (prefixes.some((p) => name.startsWith(p))) names.add(name);
  }
  return [...names].sort();
}

async function upstreams(t: Test, ...labels: string[]): Promise<TestUpstream[]> {
  const ups = await Promise.all(labels.map((l) => startUpstream(l)));
  t.teardown(async () => {
    for (const up of ups) await up.kill();
  });
  return ups;
}

const REGIONS = { 'eu-west': { location: { lat: 53.35, lon: -6.26 } }, 'us-east': { location: { lat: 38.9, lon: -77.04 } } };

t.test('a file-mode node without GeoDNS or TLS exports no etcd, DNS, TLS or ACME series; build info says which Meridian and Node', async (t) => {
  const [a] = await upstreams(t, 'a');
  const m = await meridian(t, { regions: REGIONS, services: { web: { versions: { stable: { endpoints: { 'eu-west': [a!.address] } } } } }, routes: { web: { service: 'web' } } });
  t.equal((await send(m.port)).status, 200);
  const text = await scrape(m);
  t.same(familiesWith(text, OPTIONAL), [], 'no optional series at all, not even their HELP lines');
  t.match(text, /^meridian_requests_total\{/m, 'while its own series are there');
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  t.same(samples(text, 'meridian_build_info'), [`meridian_build_info{version="${version}",node="${process.version}"} 1`]);
});

t.test('meridian_endpoint_up and _drained: one series per service, version, region and endpoint as written; drains; endpoints that leave the table leave no series', async (t) => {
  const [a, b, c] = await upstreams(t, 'a', 'b', 'c');
  const check = { interval: '200ms', timeout: '150ms', healthyThreshold: 1, unhealthyThreshold: 3 };
  const table = (versions: Record<string, unknown>, split: Record<string, number>, drainUs = false): Record<string, unknown> => ({
    regions: { ...REGIONS, 'us-east': { ...REGIONS['us-east'], drain: drainUs } },
    services: { web: { healthCheck: check, split: { weights: split }, versions } },
    routes: { web: { service: 'web' } },
  });
  const refused = 'https://127.0.0.1:1';
  const m = await meridian(
    t,
    table({ stable: { endpoints: { 'eu-west': [a!.address, refused], 'us-east': [b!.address] } }, canary: { endpoints: { 'eu-west': [{ address: c!.address, drain: true }] } } }, { stable: 90, canary: 10 }),
  );
  const labels = (version: string, region: string, endpoint: string): string => `{service="web",version="${version}",region="${region}",endpoint="${endpoint}"}`;
  const text = await waitFor(async () => {
    const text = await scrape(m);
    return text.includes(`meridian_endpoint_up${labels('stable', 'eu-west', refused)} 0`) ? text : null;
  }, 'the refused https endpoint to be down');
  t.same(samples(text, 'meridian_endpoint_up'), [
    `meridian_endpoint_up${labels('canary', 'eu-west', c!.address)} 1`,
    `meridian_endpoint_up${labels('stable', 'eu-west', a!.address)} 1`,
    `meridian_endpoint_up${labels('stable', 'eu-west', refused)} 0`,
    `meridian_endpoint_up${labels('stable', 'us-east', b!.address)} 1`,
  ], 'every endpoint by service, version, region and address (https:// kept): 1 up, 0 down');
  t.same(samples(text, 'meridian_endpoint_drained'), [
    `meridian_endpoint_drained${labels('canary', 'eu-west', c!.address)} 1`,
    `meridian_endpoint_drained${labels('stable', 'eu-west', a!.address)} 0`,
    `meridian_endpoint_drained${labels('stable', 'eu-west', refused)} 0`,
    `meridian_endpoint_drained${labels('stable', 'us-east', b!.address)} 0`,
  ], 'a drained endpoint is up by its health and drained');
  t.same(samples(text, 'meridian_version_weight'), ['meridian_version_weight{service="web",version="canary"} 10', 'meridian_version_weight{service="web",version="stable"} 90']);

  // The canary goes, the refused endpoint goes, us-east is drained as a region, weights move.
  await m.writeRoutes(table({ stable: { endpoints: { 'eu-west': [a!.address], 'us-east': [b!.address] } } }, { stable: 100 }, true));
  const after = await waitFor(async () => {
    const text = await scrape(m);
    return text.includes(`meridian_endpoint_drained${labels('stable', 'us-east', b!.address)} 1`) ? text : null;
  }, 'the new table to be in force');
  t.same(samples(after, 'meridian_endpoint_up'), [`meridian_endpoint_up${labels('stable', 'eu-west', a!.address)} 1`, `meridian_endpoint_up${labels('stable', 'us-east', b!.address)} 1`], 'endpoints no longer in the table have no series');
  t.same(samples(after, 'meridian_endpoint_drained'), [`meridian_endpoint_drained${labels('stable', 'eu-west', a!.address)} 0`, `meridian_endpoint_drained${labels('stable', 'us-east', b!.address)} 1`], "a drained region's endpoints are drained");
  t.same(samples(after, 'meridian_version_weight'), ['meridian_version_weight{service="web",version="stable"} 100'], 'a version no longer in the table has no weight series');
});

t.test('an etcd-mode node with GeoDNS exports the etcd and DNS series, and no TLS or ACME ones', async (t) => {
  const { etcd, client, up } = await etcdFixture(t, 'eu');
  const prefix = '/meridian/';
  await client.put(`${prefix}regions/eu-west`).value(JSON.stringify({ location: { lat: 53.35, lon: -6.26 }, edge: { ipv4: ['203.0.113.10'] } }));
  await client.put(`${prefix}services/web`).value(JSON.stringify({ versions: { stable: { endpoints: { 'eu-west': [up.address] } } } }));
  await client.put(`${prefix}routes/web`).value(JSON.stringify({ hosts: ['www.example.com'], service: 'web' }));
  const m = await meridian(t, {}, {
    store: { file: undefined, etcd: { endpoints: [etcd.url], prefix } },
    dns: { listen: '127.0.0.1:0', zones: [{ name: 'example.com', nameservers: ['ns1.example.com'] }] },
  });
  const text = await waitFor(async () => {
    const text = await scrape(m);
    return /^meridian_etcd_connected 1$/m.test(text) ? text : null;
  }, 'etcd to be connected');
  t.same(familiesWith(text, ['meridian_etcd_']), ['meridian_etcd_connected', 'meridian_etcd_keys_rejected']);
  t.same(familiesWith(text, ['meridian_dns_']), ['meridian_dns_answer_seconds', 'meridian_dns_forward_dropped_total', 'meridian_dns_forwarded_total', 'meridian_dns_queries_total', 'meridian_dns_truncated_total']);
  t.same(familiesWith(text, ['meridian_tls_', 'meridian_acme_']), [], 'no TLS or ACME series without proxy.tls');
});

t.test('certificate files: expiry seconds by the first name of each, and the TLS series with them', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-metrics-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = makeCa(dir);
  const a = makeCert(dir, ca, 'a', ['a.example.test', 'www.a.example.test'], 2);
  const soon = makeCert(dir, ca, 'soon', ['soon.example.test'], 1);
  const [up] = await upstreams(t, 'a');
  const m = await meridian(t, { regions: REGIONS, services: { web: { versions: { stable: { endpoints: { 'eu-west': [up!.address] } } } } }, routes: { web: { service: 'web' } } }, {
    proxy: { tls: { listen: '127.0.0.1:0', certificates: [a, soon] } },
  });
  const text = await scrape(m);
  const expiry = (name: string): number => Number(samples(text, `meridian_tls_certificate_expiry_seconds{name="${name}"}`)[0]?.split(' ')[1]);
  const left = expiry('a.example.test');
  t.ok(left > 86_400 && left <= 2 * 86_400, `a certificate valid 2 days has between 1 and 2 days left (${left} s)`);
  const soonLeft = expiry('soon.example.test');
  t.ok(soonLeft > 0 && soonLeft <= 86_400, `one valid a day has under a day left (${soonLeft} s)`);
  t.equal(samples(text, 'meridian_tls_certificate_expiry_seconds').length, 2, 'one series per certificate, by its first name');
  t.same(familiesWith(text, ['meridian_tls_']), ['meridian_tls_certificate_expiry_seconds', 'meridian_tls_certificate_reloads_total', 'meridian_tls_handshake_errors_total']);
  t.same(familiesWith(text, ['meridian_etcd_', 'meridian_dns_', 'meridian_acme_']), [], 'nothing of etcd, GeoDNS or ACME');
});
