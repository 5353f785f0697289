import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { AdminServer } from '../src/admin/server.js';
import { ConfigError, formatIssue } from '../src/config/issues.js';
import { buildStaticConfig, type StaticFlags } from '../src/config/static-load.js';
import { Locator } from '../src/geo/locator.js';
import { HealthRegistry } from '../src/health/registry.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { servingRuntime } from '../src/proxy/runtime.js';
import { UpstreamRegistry } from '../src/proxy/upstream.js';
import { TableApplier } from '../src/store/applier.js';
import { getJson, send, type TestResponse } from './helpers/client.js';
import { simpleRoutes, startTestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { runCli } from './helpers/process.js';
import { startUpstream } from './helpers/upstream.js';

interface EndpointView {
  address: string;
  weight: number;
  drain: boolean;
  health: string;
  up: boolean;
  reason: string;
  since: string;
  outstanding: number;
  latencyMs: number | null;
  checkRttMs: number | null;
  lastCheck: string | null;
}

interface State {
  node: { name: string };
  revision: number;
  source: string;
  stale: boolean;
  ready: boolean;
  errors: unknown[];
  regions: Record<string, { drain: boolean }>;
  routes: Record<string, { service: string; pathPrefix: string }>;
  services: Record<string, { steering: string; versions: Record<string, { weight: number; regions: Record<string, { endpoints: EndpointView[] }> }> }>;
}

t.test('healthz, readyz, state and metrics', async (t) => {
  const up = await startUpstream('a');
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [up.address], 'us-east': [{ address: '127.0.0.1:1', weight: 3, drain: true }] }));
  t.teardown(async () => {
    await m.close();
    await up.kill();
  });
  t.equal((await send(m.adminPort, { path: '/healthz' })).status, 200);
  t.equal((await send(m.adminPort, { path: '/readyz' })).status, 200);

  for (let i = 0; i < 3; i++) t.equal((await send(m.port, { path: '/x' })).status, 200);
  t.equal((await send(m.port, { path: '/x', headers: { host: 'nothing.test' } })).status, 200, 'the any-host route serves every host');

  // The first active check runs at once; a passing one makes the endpoint healthy.
  await waitFor(() => up.healthChecks > 0 && m.meridian.applier.current?.services.get('web')?.versions.get('stable')?.groups[0]?.all[0]?.health.state === 'healthy', 'the first health check');
  const state = await getJson<State>(m.adminPort, '/api/v1/state');
  t.equal(state.node.name, 'test-node');
  t.equal(state.revision, 1);
  t.equal(state.source, 'file');
  t.equal(state.stale, false);
  t.same(state.errors, []);
  t.same(state.routes.web, { hosts: [], pathPrefix: '/', service: 'web' });
  const stable = state.services.web?.versions.stable;
  t.equal(stable?.weight, 1);
  const eu = stable?.regions['eu-west']?.endpoints[0];
  t.match(eu, { address: up.address, weight: 1, drain: false, health: 'healthy', up: true, ejected: false, reason: 'ok', outstanding: 0 });
  t.type(eu?.checkRttMs, 'number', 'the last check round trip is shown');
  t.type(eu?.lastCheck, 'string');
  t.type(eu?.latencyMs, 'number', 'a measured endpoint shows its response time');
  const us = stable?.regions['us-east']?.endpoints[0];
  t.match(us, { address: '127.0.0.1:1', weight: 3, drain: true, latencyMs: null }, 'drained endpoints are listed too');

  const metrics = await send(m.adminPort, { path: '/metrics' });
  t.equal(metrics.status, 200);
  t.match(metrics.headers['content-type'], /^text\/plain/);
  t.match(metrics.text, /meridian_requests_total\{route="web",service="web",version="stable",region="eu-west",status_class="2xx"\} 4/);
  t.match(metrics.text, /meridian_request_duration_seconds_bucket\{le="0\.1",route="web",service="web",version="stable",region="eu-west",status_class="2xx"\} \d/);
  t.match(metrics.text, /meridian_config_revision 1/);
  t.match(metrics.text, /meridian_open_connections \d/);
  t.match(metrics.text, /meridian_config_reloads_total\{source="file",result="applied"\} 1/);

  const notFound = await send(m.adminPort, { path: '/nope' });
  t.equal(notFound.status, 404);
  t.equal((await send(m.adminPort, { path: '/metrics', method: 'DELETE' })).status, 405);
});

t.test('errors Meridian produces are counted by code and in the request series', async (t) => {
  const m = await startTestMeridian({
    regions: { 'eu-west': { location: { lat: 0, lon: 0 } } },
    services: { web: { versions: { stable: { endpoints: { 'eu-west': ['127.0.0.1:1'] } } } } },
    routes: { web: { hosts: ['web.test'], service: 'web' } },
  });
  t.teardown(() => m.close());
  const refused = await send(m.port, { headers: { host: 'web.test' } });
  t.equal(refused.status, 502);
  t.equal(refused.headers['x-meridian-error'], 'upstream-connect-failed');
  t.match(refused.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'error responses carry the request id');
  t.equal((await send(m.port, { headers: { host: 'other.test' } })).status, 404);
  const text = (await send(m.adminPort, { path: '/metrics' })).text;
  t.match(text, /meridian_proxy_errors_total\{code="upstream-connect-failed"\} 1/);
  t.match(text, /meridian_proxy_errors_total\{code="no-route"\} 1/);
  t.match(text, /meridian_upstream_errors_total\{service="web",region="eu-west",code="upstream-connect-failed"\} 1/);
  t.match(text, /meridian_requests_total\{route="web",service="web",version="stable",region="eu-west",status_class="5xx"\} 1/);
  t.match(text, /meridian_requests_total\{route="",service="",version="",region="",status_class="4xx"\} 1/);
});

t.test('metric series of a removed route are deleted', async (t) => {
  const up = await startUpstream('a');
  const routes = simpleRoutes({ 'eu-west': [up.address] }) as { routes: Record<string, unknown> };
  const m = await startTestMeridian(routes);
  t.teardown(async () => {
    await m.close();
    await up.kill();
  });
  await send(m.port);
  t.match((await send(m.adminPort, { path: '/metrics' })).text, /route="web"/);
  routes.routes = { renamed: { pathPrefix: '/', service: 'web' } };
  await m.writeRoutes(routes);
  await waitFor(async () => (await getJson<State>(m.adminPort, '/api/v1/state')).routes.renamed !== undefined, 'the rename');
  await send(m.port);
  const text = (await send(m.adminPort, { path: '/metrics' })).text;
  t.notMatch(text, /route="web"/, 'no ghost series for the old route');
  t.match(text, /route="renamed"/);
});

t.test('reload needs the bearer token when one is set', async (t) => {
  const up = await startUpstream('a');
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [up.address] }), { admin: { token: 's3cret' } });
  t.teardown(async () => {
    await m.close();
    await up.kill();
  });
  t.equal((await send(m.adminPort, { path: '/api/v1/reload', method: 'POST' })).status, 401);
  t.equal((await send(m.adminPort, { path: '/api/v1/reload', method: 'POST', headers: { authorization: 'Bearer wrong!' } })).status, 401);
  const ok = await send(m.adminPort, { path: '/api/v1/reload', method: 'POST', headers: { authorization: 'Bearer s3cret' } });
  t.equal(ok.status, 200);
  t.same(JSON.parse(ok.text), { result: 'unchanged', errors: [] });
  t.equal((await send(m.adminPort, { path: '/api/v1/state' })).status, 401, 'the state needs the token too');
});

t.test('with a token: state and reload need it, metrics stay open, health never needs it; Bearer is case-insensitive', async (t) => {
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': ['127.0.0.1:1'] }), { admin: { token: 's3cret' } });
  t.teardown(() => m.close());
  const state = (authorization?: string): Promise<TestResponse> => send(m.adminPort, { path: '/api/v1/state', headers: authorization === undefined ? {} : { authorization } });
  const refused = await state();
  t.equal(refused.status, 401, 'no token: 401');
  t.equal(refused.headers['www-authenticate'], 'Bearer realm="meridian-admin"', 'the 401 names the scheme');
  t.match(JSON.parse(refused.text), { error: 'unauthorised' });
  for (const wrong of ['Bearer s3cre', 'Bearer s3cretX', 'Bearer S3CRET', 'Bearer', 'Bearer  ', 's3cret', 'Basic czNjcmV0', 'Bearers3cret']) {
    t.equal((await state(wrong)).status, 401, `"${wrong}" is refused`);
  }
  for (const right of ['Bearer s3cret', 'bearer s3cret', 'BEARER s3cret', 'Bearer   s3cret  ', ' bearer\ts3cret']) {
    t.equal((await state(right)).status, 200, `"${right}" is accepted`);
  }
  t.equal((await send(m.adminPort, { path: '/metrics' })).status, 200, 'metrics stay open without admin.protectMetrics');
  t.equal((await send(m.adminPort, { path: '/healthz' })).status, 200, 'healthz is open');
  t.equal((await send(m.adminPort, { path: '/readyz' })).status, 200, 'readyz is open');
  t.equal((await send(m.adminPort, { path: '/api/v1/reload', method: 'POST', headers: { authorization: 'bearer s3cret' } })).status, 200, 'reload takes the same token');
});

t.test('admin.protectMetrics: /metrics needs the token', async (t) => {
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': ['127.0.0.1:1'] }), { admin: { token: 's3cret', protectMetrics: true } });
  t.teardown(() => m.close());
  t.equal((await send(m.adminPort, { path: '/metrics' })).status, 401);
  t.equal((await send(m.adminPort, { path: '/metrics', headers: { authorization: 'Bearer wrong' } })).status, 401);
  const ok = await send(m.adminPort, { path: '/metrics', headers: { authorization: 'Bearer s3cret' } });
  t.equal(ok.status, 200);
  t.match(ok.text, /meridian_config_revision 1/);
  t.equal((await send(m.adminPort, { path: '/readyz' })).status, 200, 'readyz stays open');
});

t.test('readyz says why it is not ready', async (t) => {
  const logger = createLogger('silent');
  const metrics = new Metrics({ defaultMetrics: false });
  const health = new HealthRegistry({ activeChecks: false, logger, metrics });
  const applier = new TableApplier({ runtime: servingRuntime(new UpstreamRegistry(), health), metrics, logger, node: new Locator([], {}).node, snapshotPath: null, origin: 'test' });
  let draining = false;
  const config = buildStaticConfig({ admin: { listen: '127.0.0.1:0' }, store: { file: 'routes.yaml' } });
  const admin = new AdminServer({ listen: config.admin.listen, token: '', protectMetrics: false, config, applier, metrics, logger, isDraining: () => draining,
    reload: async () => ({ result: 'unchanged', errors: [] }), storeState: () => ({}), partsState: () => ({}),
  });
  const { port } = await admin.listen();
  t.teardown(() => admin.close());
  const empty = await send(port, { path: '/readyz' });
  t.equal(empty.status, 503);
  t.equal(empty.text, 'not ready: no routing table in force\n');
  draining = true;
  const stopping = await send(port, { path: '/readyz' });
  t.equal(stopping.status, 503);
  t.equal(stopping.text, 'not ready: shutting down\n');
  t.equal((await send(port, { path: '/readyz', method: 'HEAD' })).status, 503);
  t.equal((await send(port, { path: '/api/v1/state' })).status, 200, 'without a token (loopback only) the state is open');
});

/** `path: message` lines of a static configuration that does not validate; [] when it does. */
function staticProblems(raw: Record<string, unknown>, flags: StaticFlags = {}): string[] {
  try {
    buildStaticConfig({ store: { file: 'routes.yaml' }, ...raw }, flags);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map(formatIssue);
  }
}

t.test('a non-loopback admin listener needs a token', async (t) => {
  for (const listen of ['127.0.0.1:9901', '127.1.2.3:0', '[::1]:9901', 'localhost:9901', 'LocalHost.:9901', '[::ffff:127.0.0.1]:9901']) {
    t.same(staticProblems({ admin: { listen } }), [], `${listen} is loopback: no token needed`);
  }
  for (const [listen, shown] of [['0.0.0.0:9901', '0.0.0.0:9901'], [':9901', '0.0.0.0:9901'], ['[::]:9901', '[::]:9901'], ['10.0.0.5:9901', '10.0.0.5:9901'], ['128.0.0.1:9901', '128.0.0.1:9901'], ['[::2]:9901', '[::2]:9901'], ['admin.example.com:9901', 'admin.example.com:9901']]) {
    t.same(staticProblems({ admin: { listen } }), [`admin.token: required when the admin listener (${shown}) is not on loopback: set a token, or listen on 127.0.0.1`], `${listen} without a token is refused`);
    t.same(staticProblems({ admin: { listen, token: 's3cret' } }), [], `${listen} with a token is accepted`);
  }
  t.same(staticProblems({}, { admin: '0.0.0.0:9901' }), ['admin.token: required when the admin listener (0.0.0.0:9901) is not on loopback: set a token, or listen on 127.0.0.1'], 'the --admin flag too');
  t.same(staticProblems({ admin: { protectMetrics: true } }), ['admin.protectMetrics: needs admin.token: without one there is nothing to protect /metrics with']);
  t.same(staticProblems({ admin: { token: ' s3cret' } }), ['admin.token: must not start or end with white space (clients cannot send it)']);
  t.same(staticProblems({ admin: { protectMetrics: 'yes' } }).length, 1, 'protectMetrics is a boolean');
});

t.test('meridian validate and meridian start refuse a non-loopback admin listener without a token', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meridian-admin-'));
  const routes = join(dir, 'routes.yaml');
  await writeFile(routes, stringify(simpleRoutes({ 'eu-west': ['127.0.0.1:1'] })));
  const conf = join(dir, 'meridian.yaml');
  await writeFile(conf, stringify({ proxy: { listen: '127.0.0.1:0' }, admin: { listen: '0.0.0.0:0' }, store: { file: routes, snapshot: join(dir, 'snap.json') } }));
  const message = 'admin.token: required when the admin listener (0.0.0.0:0) is not on loopback: set a token, or listen on 127.0.0.1';
  const validate = await runCli(['validate', conf]);
  t.equal(validate.code, 1, 'validate exits 1');
  t.match(validate.stderr, message);
  const start = await runCli(['start', '--config', conf]);
  t.equal(start.code, 1, 'start exits 1 without listening');
  t.match(start.stderr, message);
  t.equal(start.stdout, '', 'nothing started, nothing logged');
});
