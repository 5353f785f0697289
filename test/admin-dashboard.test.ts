import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { AdminServer } from '../src/admin/server.js';
import { trafficDocument, type MetricsJson, type TrafficDocument } from '../src/admin/traffic.js';
import { validateRoutingDocument } from '../src/config/routing-document.js';
import type { RoutingDocument } from '../src/config/routing-schema.js';
import { buildStaticConfig } from '../src/config/static-load.js';
import { UNKNOWN_ORIGIN } from '../src/geo/origin.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { servingRuntime } from '../src/proxy/runtime.js';
import { UpstreamRegistry } from '../src/proxy/upstream.js';
import { TableApplier } from '../src/store/applier.js';
import { ApplyHistory, HISTORY_LIMIT, type HistoryEntry } from '../src/store/history.js';
import { getJson, send, type TestResponse } from './helpers/client.js';
import { simpleRoutes, startTestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { spawnMeridian } from './helpers/process.js';
import { testHealthRegistry } from './helpers/table.js';
import { startUpstream } from './helpers/upstream.js';

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** A one-endpoint test Meridian; `admin` is merged into its admin section. */
async function node(t: Test, admin: Record<string, unknown> = {}) {
  const up = await startUpstream('a');
  t.teardown(() => up.kill());
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [up.address] }), { admin });
  t.teardown(() => m.close());
  return { m, up };
}

t.test('the dashboard files: content types, CSP, nosniff, ETag, HEAD; 404 for anything else, no way out of the folder', async (t) => {
  const { m } = await node(t);
  const page = await send(m.adminPort, { path: '/' });
  t.equal(page.status, 200);
  t.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  const csp = String(page.headers['content-security-policy']);
  t.match(csp, /(^|; )default-src 'self'(;|$)/);
  t.match(csp, /(^|; )script-src 'self'(;|$)/, 'scripts from the listener only');
  t.notMatch(csp, /unsafe-inline|unsafe-eval/, 'nothing inline, nothing evaluated');
  t.match(csp, /frame-ancestors 'none'/);
  t.equal(page.headers['x-content-type-options'], 'nosniff');
  t.equal(page.headers['x-frame-options'], 'DENY');
  t.match(page.text, /<script type="module" src="\/dashboard\/dashboard\.js"><\/script>/);
  t.notMatch(page.text, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script in the page');
  t.notMatch(page.text, /\sstyle=|\son[a-z]+=/i, 'no inline style or handler attributes either');

  for (const [path, type] of [
    ['/dashboard/dashboard.js', 'text/javascript; charset=utf-8'],
    ['/dashboard/dashboard.css', 'text/css; charset=utf-8'],
  ] as const) {
    const res = await send(m.adminPort, { path });
    t.equal(res.status, 200, path);
    t.equal(res.headers['content-type'], type, `${path} is ${type}`);
    t.equal(res.headers['x-content-type-options'], 'nosniff');
    t.ok(res.body.length > 0);
  }
  const js = await send(m.adminPort, { path: '/dashboard/dashboard.js' });
  t.notMatch(js.text, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, 'the script never places markup from data');

  const etag = String(page.headers.etag);
  t.match(etag, /^"[\w-]+"$/);
  t.equal(page.headers['cache-control'], 'no-cache', 'revalidated each time: a new release shows at once');
  const again = await send(m.adminPort, { path: '/', headers: { 'if-none-match': etag } });
  t.equal(again.status, 304);
  t.equal(again.body.length, 0);
  const head = await send(m.adminPort, { path: '/', method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.headers['content-length'], String(page.body.length));
  t.equal(head.body.length, 0);
  t.equal((await send(m.adminPort, { path: '/', method: 'POST' })).status, 405);

  const outside = ['/dashboard/', '/dashboard/nope.js', '/dashboard/index.html', '/index.html', '/dashboard/../package.json', '/dashboard/%2e%2e/package.json', '/dashboard/..%2f..%2fpackage.json', '/dashboard/%2e%2e%2f%2e%2e%2fpackage.json', '/dashboard//etc/passwd', '/dashboard/dashboard.js/', '/dashboard/DASHBOARD.JS', '/../package.json', '/assets/dashboard/index.html'];
  for (const path of outside) {
    const res = await send(m.adminPort, { path });
    t.equal(res.status, 404, `${path} is not found`);
    t.notMatch(res.text, /"name": "meridian"|root:/, `and shows nothing of the disk`);
  }
});

/** The status and challenge of one admin call. */
async function call(port: number, path: string, authorization?: string, method = 'GET'): Promise<{ status: number; challenge: string | undefined }> {
  const res: TestResponse = await send(port, { path, method, headers: authorization === undefined ? {} : { authorization } });
  return { status: res.status, challenge: res.headers['www-authenticate'] as string | undefined };
}

t.test('admin.token: Basic credentials (any user, the token as password) work wherever the bearer token does; the page challenges with Basic, the API with Bearer', async (t) => {
  const token = 'tok-3n!:x';
  const { m } = await node(t, { token, protectMetrics: true });
  const port = m.adminPort;
  for (const path of ['/', '/dashboard/dashboard.js', '/dashboard/dashboard.css', '/dashboard/nope.js']) {
    t.same(await call(port, path), { status: 401, challenge: 'Basic realm="meridian-admin", charset="UTF-8"' }, `${path} without credentials: a Basic challenge`);
  }
  for (const [path, method] of [['/api/v1/state', 'GET'], ['/api/v1/traffic', 'GET'], ['/api/v1/reload', 'POST'], ['/metrics', 'GET']] as const) {
    t.same(await call(port, path, undefined, method), { status: 401, challenge: 'Bearer realm="meridian-admin"' }, `${method} ${path} without credentials: the Bearer challenge`);
    t.equal((await call(port, path, basic('ops', token), method)).status, 200, `${method} ${path} with Basic`);
    t.equal((await call(port, path, `Bearer ${token}`, method)).status, 200, `${method} ${path} with Bearer`);
  }
  t.equal((await call(port, '/', basic('ops', token))).status, 200, 'the page with Basic');
  t.equal((await call(port, '/', `Bearer ${token}`)).status, 200, 'and with Bearer');
  t.equal((await call(port, '/dashboard/dashboard.js', basic('', token))).status, 200, 'any user name, the empty one too');
  t.equal((await call(port, '/', `basic ${Buffer.from(`x:${token}`).toString('base64')}`)).status, 200, 'the scheme is case-insensitive');
  t.equal((await call(port, '/dashboard/nope.js', basic('ops', token))).status, 404, 'an unknown file is 404 once authorised');
  const refused = [basic('ops', 'wrong'), basic(token, ''), `Basic ${Buffer.from(token).toString('base64')}`, 'Basic !!!', `Basic ${token}`, `Digest ${token}`, token, ''];
  for (const authorization of refused) {
    t.equal((await call(port, '/', authorization)).status, 401, `/ refuses ${JSON.stringify(authorization)}`);
    t.equal((await call(port, '/api/v1/state', authorization)).status, 401, `state refuses ${JSON.stringify(authorization)}`);
  }
  t.equal((await call(port, '/healthz')).status, 200, 'liveness stays open');
  t.equal((await call(port, '/readyz')).status, 200, 'readiness stays open');
});

type TrafficView = TrafficDocument;

t.test('/api/v1/traffic: cumulative requests by route, service, version, region and status class, with latency buckets', async (t) => {
  const up = await startUpstream('a');
  t.teardown(() => up.kill());
  up.handle((req, res) => res.writeHead(req.url === '/missing' ? 404 : 200).end('x'));
  const routes = simpleRoutes({ 'eu-west': [up.address] }) as { routes: Record<string, Record<string, unknown>> };
  (routes.routes.web as Record<string, unknown>).hosts = ['web.test'];
  const m = await startTestMeridian(routes);
  t.teardown(() => m.close());
  const empty = await getJson<TrafficView>(m.adminPort, '/api/v1/traffic');
  t.same(empty.series, [], 'no series before any request');
  for (let i = 0; i < 5; i++) t.equal((await send(m.port, { path: '/', headers: { host: 'web.test' } })).status, 200);
  for (let i = 0; i < 3; i++) t.equal((await send(m.port, { path: '/missing', headers: { host: 'web.test' } })).status, 404);
  for (let i = 0; i < 2; i++) t.equal((await send(m.port, { path: '/', headers: { host: 'other.test' } })).status, 404);

  const before = Date.now();
  const doc = await getJson<TrafficView>(m.adminPort, '/api/v1/traffic');
  t.ok(Math.abs(doc.timeMs - before) < 60_000 && new Date(doc.at).getTime() === doc.timeMs, 'a timestamp, ISO and in ms');
  t.same(doc.bucketsSeconds, [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], 'the histogram bounds of /metrics');
  const web = doc.series.find((s) => s.route === 'web');
  t.match(web, { route: 'web', service: 'web', version: 'stable', region: 'eu-west', requests: { '1xx': 0, '2xx': 5, '3xx': 0, '4xx': 3, '5xx': 0 } });
  t.equal(web?.latency.count, 8, 'every request timed once');
  t.equal(web?.latency.buckets.length, doc.bucketsSeconds.length + 1, 'a count per bound, then +Inf');
  t.equal(web?.latency.buckets.at(-1), 8, 'the +Inf bucket holds them all');
  t.ok(web?.latency.buckets.every((n, i, all) => i === 0 || n >= (all[i - 1] as number)), 'buckets are cumulative');
  t.ok((web?.latency.sum ?? 0) > 0);
  const unrouted = doc.series.find((s) => s.route === '');
  t.match(unrouted, { service: '', version: '', region: '', requests: { '4xx': 2 } }, 'requests no route matched are the series of route ""');
  const metrics = (await send(m.adminPort, { path: '/metrics' })).text;
  t.match(metrics, /meridian_requests_total\{route="web",service="web",version="stable",region="eu-west",status_class="2xx"\} 5\n/, '/metrics says the same');
});

t.test('the traffic document is made from prom-client JSON, whatever it holds', async (t) => {
  const json = [
    { name: 'meridian_requests_total', help: '', type: 'counter', aggregator: 'sum', values: [
      { value: 4, labels: { route: 'r', service: 's', version: 'v', region: 'x', status_class: '5xx' } },
      { value: 9, labels: { route: 'r', service: 's', version: 'v', region: 'x', status_class: 'weird' } },
    ] },
    { name: 'meridian_other', help: '', type: 'gauge', aggregator: 'sum', values: [{ value: 1, labels: {} }] },
  ] as unknown as MetricsJson;
  const doc = trafficDocument(json, 1_000);
  t.equal(doc.at, '1970-01-01T00:00:01.000Z');
  t.same(doc.bucketsSeconds, [], 'no histogram: no bounds');
  t.same(doc.series, [{ route: 'r', service: 's', version: 'v', region: 'x', requests: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 4 }, latency: { buckets: [0], count: 0, sum: 0 } }], 'an unknown status class is not counted');
  const histogram = [
    { name: 'meridian_request_duration_seconds', help: '', type: 'histogram', aggregator: 'sum', values: [
      { metricName: 'meridian_request_duration_seconds_bucket', value: 1, labels: { le: 0.5, route: 'r', status_class: '2xx' } },
      { metricName: 'meridian_request_duration_seconds_bucket', value: 2, labels: { le: '1', route: 'r', status_class: '2xx' } },
      { metricName: 'meridian_request_duration_seconds_bucket', value: 2, labels: { le: '+Inf', route: 'r', status_class: '2xx' } },
      { metricName: 'meridian_request_duration_seconds_bucket', value: 1, labels: { le: 1, route: 'r', status_class: '5xx' } },
      { metricName: 'meridian_request_duration_seconds_bucket', value: 1, labels: { le: '+Inf', route: 'r', status_class: '5xx' } },
      { metricName: 'meridian_request_duration_seconds_sum', value: 1.5, labels: { route: 'r', status_class: '2xx' } },
      { metricName: 'meridian_request_duration_seconds_count', value: 2, labels: { route: 'r', status_class: '2xx' } },
      { metricName: 'meridian_request_duration_seconds_count', value: 1, labels: { route: 'r', status_class: '5xx' } },
    ] },
  ] as unknown as MetricsJson;
  const [series] = trafficDocument(histogram).series;
  t.same(series?.latency, { buckets: [1, 3, 3], count: 3, sum: 1.5 }, 'status classes add up; numeric and text bounds are one');
});

t.test('with two workers, the traffic document adds up both processes, as /metrics does', async (t) => {
  const up = await startUpstream('a');
  t.teardown(() => up.kill());
  const dir = await mkdtemp(join(tmpdir(), 'meridian-traffic-'));
  const routes = join(dir, 'routes.yaml');
  await writeFile(routes, stringify(simpleRoutes({ 'eu-west': [up.address] })));
  const conf = join(dir, 'meridian.yaml');
  await writeFile(conf, stringify({ node: { name: 'traffic-test' }, proxy: { listen: '127.0.0.1:0', debugHeaders: true, shutdownTimeout: '5s' }, admin: { listen: '127.0.0.1:0' }, store: { file: routes, snapshot: join(dir, 'snap.json') } }));
  const proc = await spawnMeridian(['start', '--config', conf, '--workers', '2']);
  t.teardown(() => proc.stop('SIGKILL'));
  const workers = new Map<string, number>();
  // New connections until both workers have answered some (the kernel spreads them); bounded.
  for (let i = 0; i < 200 && (workers.size < 2 || i < 40); i++) {
    const res = await send(proc.proxyPort, { path: '/' });
    t.equal(res.status, 200);
    const worker = String(res.headers['x-meridian-worker']);
    workers.set(worker, (workers.get(worker) ?? 0) + 1);
  }
  t.equal(workers.size, 2, `both workers served (${JSON.stringify([...workers])})`);
  const sent = [...workers.values()].reduce((a, b) => a + b, 0);
  const doc = await getJson<TrafficView>(proc.adminPort, '/api/v1/traffic');
  const web = doc.series.filter((s) => s.route === 'web');
  t.equal(web.length, 1, 'one series for the node, not one per worker');
  t.equal(web[0]?.requests['2xx'], sent, `the ${sent} requests of both workers`);
  t.equal(web[0]?.latency.count, sent);
  const metrics = (await send(proc.adminPort, { path: '/metrics' })).text;
  const line = new RegExp(`meridian_requests_total\\{route="web",service="web",version="stable",region="eu-west",status_class="2xx"\\} ${sent}\\n`);
  t.match(metrics, line, '/metrics counts the same');
  t.equal(await proc.stop('SIGTERM'), 0);
});

interface HistoryState {
  history: HistoryEntry[];
  errors: { key: string; message: string }[];
  startedAt: string;
  uptimeSeconds: number;
  revision: number;
}

t.test('the state lists recent applies and refusals, newest first, and the uptime', async (t) => {
  const { m, up } = await node(t);
  const first = await getJson<HistoryState>(m.adminPort, '/api/v1/state');
  t.match(first.history, [{ result: 'applied', source: 'file', revision: 1, errors: [], moreErrors: 0 }]);
  t.ok(Number.isFinite(Date.parse(first.startedAt)) && Date.parse(first.startedAt) <= Date.now());
  t.type(first.uptimeSeconds, 'number');
  t.ok(first.uptimeSeconds >= 0);
  await m.writeRoutes({ ...simpleRoutes({ 'eu-west': [up.address] }), routes: { web: { service: 'nope' } } });
  const refused = await waitFor(async () => {
    const state = await getJson<HistoryState>(m.adminPort, '/api/v1/state');
    return state.history[0]?.result === 'rejected' ? state : null;
  }, 'the refusal in the history');
  t.match(refused.history[0], { result: 'rejected', source: 'file', revision: 1, moreErrors: 0 }, 'the revision that stayed in force');
  t.match(refused.history[0]?.errors, [{ key: 'routes.web.service', message: /nope/ }]);
  t.same(refused.errors.map((e) => e.key), ['routes.web.service'], 'and standing in errors');
  await m.writeRoutes(simpleRoutes({ 'eu-west': [up.address], 'us-east': [up.address] }));
  const fixed = await waitFor(async () => {
    const state = await getJson<HistoryState>(m.adminPort, '/api/v1/state');
    return state.revision === 2 ? state : null;
  }, 'the fix');
  t.same(fixed.history.map((h) => `${h.result} ${h.revision}`), ['applied 2', 'rejected 1', 'applied 1']);
  t.same(fixed.errors, []);
});

function doc(address: string): RoutingDocument {
  const checked = validateRoutingDocument(simpleRoutes({ 'eu-west': [address] }));
  if (checked.issues.length > 0) throw new Error('the test document must be valid');
  return checked.doc;
}

t.test('the history: keys a store holds back are refusals of their own, once; bounded; long error lists cut', async (t) => {
  const metrics = new Metrics({ defaultMetrics: false });
  const a = new TableApplier({ runtime: servingRuntime(new UpstreamRegistry(), testHealthRegistry()), metrics, logger: createLogger('silent'), node: UNKNOWN_ORIGIN, snapshotPath: null, origin: 'test' });
  const good = doc('127.0.0.1:1001');
  const bad = { path: '/meridian/services/api', message: 'bad weight' };
  t.equal((await a.apply({ source: 'etcd', doc: good, rawJson: () => '{}', revision: 5, heldBack: [bad] })).result, 'applied');
  t.same(a.history.entries().map((h) => `${h.result} ${h.revision} ${h.errors.map((e) => e.key).join(',')}`), ['rejected 5 /meridian/services/api', 'applied 5 ']);
  t.equal((await a.apply({ source: 'etcd', doc: good, rawJson: () => '{}', revision: 5, heldBack: [bad] })).result, 'unchanged');
  t.equal(a.history.entries().length, 2, 'the same key held back again is not a new refusal');
  const worse = { path: '/meridian/routes/www', message: 'unknown service' };
  await a.apply({ source: 'etcd', doc: good, rawJson: () => '{}', revision: 5, heldBack: [bad, worse] });
  t.same(a.history.entries()[0]?.errors, [{ key: '/meridian/routes/www', message: 'unknown service' }], 'a newly held-back key is');

  const history = new ApplyHistory();
  for (let i = 1; i <= HISTORY_LIMIT + 5; i++) history.applied('file', i);
  t.equal(history.entries().length, HISTORY_LIMIT, `at most ${HISTORY_LIMIT} entries`);
  t.equal(history.entries()[0]?.revision, HISTORY_LIMIT + 5, 'newest first');
  history.rejected('file', 3, Array.from({ length: 13 }, (_, i) => ({ path: `k${i}`, message: 'm' })));
  t.equal(history.entries()[0]?.errors.length, 10);
  t.equal(history.entries()[0]?.moreErrors, 3);
});

t.test('without its files the dashboard answers 503; the admin API serves on', async (t) => {
  const logger = createLogger('silent');
  const metrics = new Metrics({ defaultMetrics: false });
  const applier = new TableApplier({ runtime: servingRuntime(new UpstreamRegistry(), testHealthRegistry()), metrics, logger, node: UNKNOWN_ORIGIN, snapshotPath: null, origin: 'test' });
  const config = buildStaticConfig({ admin: { listen: '127.0.0.1:0' }, store: { file: 'routes.yaml' } });
  const dashboardDir = new URL(`file://${await mkdtemp(join(tmpdir(), 'meridian-no-assets-'))}/`);
  const admin = new AdminServer({ listen: config.admin.listen, token: '', protectMetrics: false, config, applier, metrics, logger, isDraining: () => false, dashboardDir,
    reload: async () => ({ result: 'unchanged', errors: [] }), storeState: () => ({}), partsState: () => ({}),
  });
  const { port } = await admin.listen();
  t.teardown(() => admin.close());
  const page = await send(port, { path: '/' });
  t.equal(page.status, 503);
  t.match(page.text, /^dashboard files unreadable: .*(index\.html|dashboard\.js|dashboard\.css)/);
  t.equal((await send(port, { path: '/dashboard/dashboard.js' })).status, 503);
  t.equal((await send(port, { path: '/dashboard/other.js' })).status, 404);
  t.equal((await send(port, { path: '/api/v1/state' })).status, 200);
  t.same((await getJson<TrafficView>(port, '/api/v1/traffic')).series, []);
});
