import t from 'tap';
import { getJson, send } from './helpers/client.js';
import { simpleRoutes, startTestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
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
  t.equal((await send(m.adminPort, { path: '/api/v1/state' })).status, 200, 'reading needs no token');
});
