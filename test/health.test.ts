import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import t, { type Test } from 'tap';
import { send } from './helpers/client.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

const REGIONS = {
  'eu-west': { location: { lat: 53.35, lon: -6.26 } },
  'us-east': { location: { lat: 38.9, lon: -77.04 } },
};

function doc(endpoints: Record<string, unknown[]>, service: Record<string, unknown> = {}, extraRoutes: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    regions: REGIONS,
    services: { web: { healthCheck: { interval: '100ms', timeout: '80ms' }, slowStart: '0s', ...service, versions: { stable: { endpoints } } } },
    routes: { web: { pathPrefix: '/', service: 'web' }, ...extraRoutes },
  };
}

async function upstreams(t: Test, ...labels: string[]): Promise<TestUpstream[]> {
  const ups = await Promise.all(labels.map((l) => startUpstream(l)));
  t.teardown(async () => {
    for (const up of ups) await up.kill();
  });
  return ups;
}

async function meridian(t: Test, routes: Record<string, unknown>): Promise<TestMeridian> {
  const m = await startTestMeridian(routes, { node: { region: 'eu-west' }, proxy: { debugHeaders: true } });
  t.teardown(() => m.close());
  return m;
}

function health(m: TestMeridian, address: string): { state: string; reason: string; rank: number; changedAt: number; checkRttMs: number | null } {
  for (const service of m.meridian.applier.current?.services.values() ?? []) {
    for (const version of service.versions.values()) {
      for (const group of version.groups) for (const ep of group.all) {
        const h = ep.health;
        if (ep.key === address) return { state: h.state, reason: h.reason, rank: h.rank, changedAt: h.changedAt, checkRttMs: h.lastCheckRttMs };
      }
    }
  }
  throw new Error(`no endpoint ${address}`);
}

async function metric(m: TestMeridian, name: string): Promise<string[]> {
  const res = await send(m.adminPort, { path: '/metrics' });
  return res.text.split('\n').filter((line) => line.startsWith(name));
}

t.test('thresholds: down after unhealthyThreshold failed checks, up after healthyThreshold passes, with reason codes', async (t) => {
  const [a, b] = await upstreams(t, 'a', 'b');
  const m = await meridian(t, doc({ 'eu-west': [a!.address, b!.address] }, { healthCheck: { interval: '50ms', timeout: '40ms', healthyThreshold: 2, unhealthyThreshold: 3 } }));
  await waitFor(() => health(m, a!.address).state === 'healthy', 'the first passing check to make a healthy');
  const checksBefore = a!.healthChecks;
  a!.healthStatus = 503;
  await waitFor(() => health(m, a!.address).state === 'unhealthy', 'a to go down');
  t.ok(a!.healthChecks - checksBefore >= 3, `it took at least 3 failed checks (${a!.healthChecks - checksBefore})`);
  t.match(health(m, a!.address), { reason: 'status-503', rank: 2 });
  for (let i = 0; i < 20; i++) t.equal((await send(m.port)).headers['x-upstream'], 'b', 'the down endpoint takes no traffic');
  a!.healthStatus = 200;
  await waitFor(() => health(m, a!.address).state === 'healthy', 'a to come back');
  t.match(health(m, a!.address), { reason: 'ok', rank: 0 });
  t.type(health(m, a!.address).checkRttMs, 'number');
  const up = await metric(m, 'meridian_endpoint_up{');
  t.same(up.sort(), [`meridian_endpoint_up{service="web",version="stable",region="eu-west",endpoint="${a!.address}"} 1`, `meridian_endpoint_up{service="web",version="stable",region="eu-west",endpoint="${b!.address}"} 1`].sort(), 'one meridian_endpoint_up series per service, version, region and endpoint');
  t.ok((await metric(m, 'meridian_health_checks_total{result="status-503"}')).length === 1, 'failed checks are counted by reason');
});

t.test('expected statuses and the Host header of a check are configurable', async (t) => {
  const [a] = await upstreams(t, 'a');
  a!.healthStatus = 404;
  const m = await meridian(t, doc({ 'eu-west': [a!.address] }, { healthCheck: { interval: '50ms', timeout: '40ms', expectedStatus: [200, '400-404'], host: 'health.internal', path: '/ready' } }));
  await waitFor(() => health(m, a!.address).state === 'healthy', '404 to count as healthy');
  a!.healthStatus = 500;
  await waitFor(() => health(m, a!.address).state === 'unhealthy', '500 to count as a failure');
  t.equal(health(m, a!.address).reason, 'status-500');
});

t.test('TCP checks: a listening port is healthy, a closed one is down with reason connect-refused', async (t) => {
  const tcp: TcpServer = createTcpServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  const port = (tcp.address() as { port: number }).port;
  t.teardown(() => new Promise<void>((resolve) => tcp.close(() => resolve())));
  const m = await meridian(t, doc({ 'eu-west': [`127.0.0.1:${port}`, '127.0.0.1:1'] }, { healthCheck: { mode: 'tcp', interval: '50ms', timeout: '40ms' } }));
  await waitFor(() => health(m, `127.0.0.1:${port}`).state === 'healthy', 'the listening port to be healthy');
  await waitFor(() => health(m, '127.0.0.1:1').state === 'unhealthy', 'the closed port to be down');
  t.equal(health(m, '127.0.0.1:1').reason, 'connect-refused');
});

t.test('health survives a routes-file edit; a new endpoint is checked at once and serves only after passing', async (t) => {
  const [a, b, c] = await upstreams(t, 'a', 'b', 'c');
  const m = await meridian(t, doc({ 'eu-west': [a!.address, b!.address] }, { healthCheck: { interval: '100ms', timeout: '80ms', unhealthyThreshold: 1 } }));
  b!.healthStatus = 503;
  await waitFor(() => health(m, b!.address).state === 'unhealthy' && health(m, a!.address).state === 'healthy', 'b down, a up');
  const before = health(m, b!.address);

  c!.healthStatus = 503;
  await m.writeRoutes(doc({ 'eu-west': [a!.address, b!.address, c!.address] }, { healthCheck: { interval: '100ms', timeout: '80ms', unhealthyThreshold: 1 } }, { extra: { hosts: ['extra.test'], service: 'web' } }));
  await waitFor(() => m.meridian.applier.current?.routes.has('extra') === true, 'the edit to apply');
  const after = health(m, b!.address);
  t.equal(after.state, 'unhealthy', 'b is still down after the edit');
  t.equal(after.changedAt, before.changedAt, 'its state was not reset');
  await waitFor(() => c!.healthChecks > 0, 'the new endpoint to be checked');
  for (let i = 0; i < 30; i++) t.equal((await send(m.port)).headers['x-upstream'], 'a', 'only the healthy endpoint serves');

  await m.writeRoutes(doc({ 'eu-west': [a!.address] }, { healthCheck: { interval: '100ms', timeout: '80ms', unhealthyThreshold: 1 } }));
  await waitFor(() => m.meridian.applier.current?.routes.has('extra') === false, 'the second edit to apply');
  const checked = b!.healthChecks + c!.healthChecks;
  await new Promise((resolve) => setTimeout(resolve, 400));
  t.equal(b!.healthChecks + c!.healthChecks, checked, 'endpoints removed from the table are no longer checked');
});

t.test('an unchecked region still serves when nothing else is healthy, and whenAllDown decides about a dead one', async (t) => {
  const [a] = await upstreams(t, 'a');
  a!.healthStatus = 503;
  const routes = (whenAllDown: string): Record<string, unknown> => doc({ 'eu-west': [a!.address] }, { whenAllDown, healthCheck: { interval: '50ms', timeout: '40ms', unhealthyThreshold: 1 } });
  const m = await meridian(t, routes('try-all'));
  await waitFor(() => health(m, a!.address).state === 'unhealthy', 'a down');
  const tried = await send(m.port);
  t.equal(tried.status, 200, 'try-all: sent to the nearest region anyway');
  await m.writeRoutes(routes('fail'));
  await waitFor(() => m.meridian.applier.current?.services.get('web')?.failWhenAllDown === true, 'whenAllDown: fail to apply');
  const failed = await send(m.port);
  t.equal(failed.status, 503);
  t.equal(failed.headers['x-meridian-error'], 'no-healthy-upstream');
  t.equal(failed.headers['retry-after'], '1');
});

t.test('drain: the drained region takes no new requests while its 2 s request in flight finishes', async (t) => {
  const [d, o] = await upstreams(t, 'd', 'o');
  d!.handle((req, res) => {
    const delay = req.url === '/slow' ? 2_000 : 0;
    setTimeout(() => res.writeHead(200, { 'x-upstream': 'd' }).end('d'), delay);
  });
  const routes = (drain: boolean): Record<string, unknown> => ({ ...doc({ 'eu-west': [d!.address], 'us-east': [o!.address] }), regions: { ...REGIONS, 'eu-west': { ...REGIONS['eu-west'], drain } } });
  const m = await meridian(t, routes(false));
  await waitFor(() => health(m, d!.address).state === 'healthy', 'd healthy');
  const slow = send(m.port, { path: '/slow' });
  await waitFor(() => d!.started === 1, 'the slow request to reach d');
  await m.writeRoutes(routes(true));
  await waitFor(() => m.meridian.applier.current?.regions.get('eu-west')?.drain === true, 'the drain to apply');
  for (let i = 0; i < 10; i++) t.equal((await send(m.port)).headers['x-upstream'], 'o', 'new requests go to the next region');
  const res = await slow;
  t.equal(res.status, 200, 'the request in flight finished');
  t.equal(res.text, 'd');
});
