import t, { type Test } from 'tap';
import { send } from './helpers/client.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startTraffic } from './helpers/traffic.js';
import { startUpstreamProcess, type UpstreamProcess } from './helpers/upstream-process.js';

const REGIONS = {
  'eu-west': { location: { lat: 53.35, lon: -6.26 } },
  'us-east': { location: { lat: 38.9, lon: -77.04 } },
};

/** Fast checks so that recovery is observable within a test's time. */
const SERVICE = {
  steering: 'nearest',
  healthCheck: { interval: '200ms', timeout: '150ms' },
  retries: { attempts: 2, perTryTimeout: '400ms' },
  timeouts: { connect: '250ms', request: '5s' },
  slowStart: '0s',
};

function routes(endpoints: Record<string, string[]>, service: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    regions: REGIONS,
    services: { web: { ...SERVICE, ...service, versions: { stable: { endpoints } } } },
    routes: { web: { pathPrefix: '/', service: 'web' } },
  };
}

/** Meridian in eu-west (so eu-west is nearest for clients without X-Forwarded-For) with debug headers. */
async function meridianIn(t: Test, doc: Record<string, unknown>): Promise<TestMeridian> {
  const m = await startTestMeridian(doc, { node: { region: 'eu-west' }, proxy: { debugHeaders: true } });
  t.teardown(() => m.close());
  return m;
}

async function processes(t: Test, ...labels: string[]): Promise<UpstreamProcess[]> {
  const started = await Promise.all(labels.map((label) => startUpstreamProcess(label)));
  t.teardown(async () => {
    for (const p of started) {
      p.thaw();
      await p.kill();
    }
  });
  return started;
}

function endpointState(m: TestMeridian, address: string): { rank: number; reason: string; state: string } {
  for (const service of m.meridian.applier.current?.services.values() ?? []) {
    for (const version of service.versions.values()) {
      for (const group of version.groups) {
        for (const ep of group.all) if (ep.key === address) return { rank: ep.health.rank, reason: ep.health.reason, state: ep.health.state };
      }
    }
  }
  throw new Error(`no endpoint ${address}`);
}

t.test('killing an endpoint, then its whole region: GETs never fail, and traffic comes back after recovery', async (t) => {
  const [e1, e2, u1] = await processes(t, 'e1', 'e2', 'u1');
  const m = await meridianIn(t, routes({ 'eu-west': [e1!.address, e2!.address], 'us-east': [u1!.address] }));
  await waitFor(() => endpointState(m, e1!.address).state === 'healthy' && endpointState(m, e2!.address).state === 'healthy', 'eu-west to be checked healthy');

  const traffic = startTraffic(m.port, { workers: 4 });
  t.teardown(() => traffic.stop());
  await waitFor(() => traffic.samples.length > 50, 'steady traffic');
  t.ok(traffic.samples.every((s) => s.region === 'eu-west'), 'steady: the nearest region serves');

  await e1!.kill();
  const afterFirstKill = traffic.samples.length;
  await waitFor(() => traffic.samples.length > afterFirstKill + 100, 'traffic after one endpoint died');
  await waitFor(() => endpointState(m, e1!.address).rank === 2, 'the dead endpoint to be taken out');

  await e2!.kill();
  const killedAt = Date.now();
  await waitFor(() => traffic.samples.some((s) => s.at > killedAt && s.region === 'us-east'), 'traffic to move to us-east');
  const afterRegionKill = traffic.samples.length;
  await waitFor(() => traffic.samples.length > afterRegionKill + 100, 'traffic served by us-east');

  const e1again = await startUpstreamProcess('e1', e1!.port);
  t.teardown(() => e1again.kill());
  const restartedAt = Date.now();
  await waitFor(() => traffic.samples.some((s) => s.at > restartedAt && s.region === 'eu-west'), 'traffic to return to eu-west', 10_000);
  await waitFor(() => {
    const last = traffic.samples.slice(-40);
    return last.length === 40 && last.every((s) => s.region === 'eu-west');
  }, 'every request to be served by eu-west again');
  const samples = await traffic.stop();
  t.same(traffic.failures(), [], `no client error in ${samples.length} requests`);
  t.ok(samples.some((s) => s.region === 'us-east'), 'us-east served while eu-west was down');
});

t.test('a frozen endpoint (SIGSTOP): GETs still succeed; checks mark it down with reason timeout', async (t) => {
  const [e1, e2, u1] = await processes(t, 'e1', 'e2', 'u1');
  const m = await meridianIn(t, routes({ 'eu-west': [e1!.address, e2!.address], 'us-east': [u1!.address] }));
  await waitFor(() => endpointState(m, e1!.address).state === 'healthy', 'e1 healthy');
  const traffic = startTraffic(m.port, { workers: 4 });
  t.teardown(() => traffic.stop());
  await waitFor(() => traffic.samples.length > 20, 'steady traffic');
  e1!.freeze();
  await waitFor(() => endpointState(m, e1!.address).rank === 2, 'the frozen endpoint to be taken out', 5_000);
  const downAt = traffic.samples.length;
  await waitFor(() => traffic.samples.length > downAt + 100, 'traffic after the freeze');
  e1!.thaw();
  await waitFor(() => endpointState(m, e1!.address).rank === 0, 'the thawed endpoint to be healthy again', 5_000);
  await traffic.stop();
  t.same(traffic.failures(), [], `no client error in ${traffic.samples.length} requests`);
  t.match(endpointState(m, e1!.address), { state: 'healthy' });
});

t.test('POST: retried when the connection failed, not when the upstream died after taking it', async (t) => {
  const [k, b] = await processes(t, 'k', 'b');
  // Checks far apart and no per-try timeout: only passive signals and retries act here.
  const m = await meridianIn(t, routes({ 'eu-west': [k!.address], 'us-east': [b!.address] }, { healthCheck: { interval: '60s', timeout: '1s' }, retries: { attempts: 2 } }));
  await waitFor(() => endpointState(m, k!.address).state === 'healthy', 'k healthy');

  // The upstream dies while it holds the request: the POST may have had an effect; not retried.
  const post = send(m.port, { method: 'POST', path: '/slow?ms=3000', body: 'payload', headers: { 'content-type': 'text/plain' } });
  await waitFor(() => m.meridian.applier.current?.services.get('web')?.versions.get('stable')?.groups[0]?.all[0]?.upstream.outstanding === 1, 'the POST to reach eu-west');
  await k!.kill();
  const res = await post;
  t.equal(res.status, 502, 'the client learns the POST failed');
  t.equal(res.headers['x-meridian-error'], 'upstream-reset');

  // A reset alone does not eject the only endpoint of a region (the passive cap);
  // the next POST finds the port closed, which ejects it, and is sent to us-east.
  t.match(endpointState(m, k!.address), { rank: 0 }, 'not ejected by the reset alone');
  const next = await send(m.port, { method: 'POST', path: '/', body: 'payload' });
  t.equal(next.status, 200);
  t.equal(next.headers['x-meridian-region'], 'us-east');
  t.equal(endpointState(m, k!.address).reason, 'connect-refused');
});

t.test('POST to a dead port is retried on the next region; an idempotent GET is retried after the upstream died holding it', async (t) => {
  const [k, b] = await processes(t, 'k', 'b');
  const m = await meridianIn(t, routes({ 'eu-west': [k!.address], 'us-east': [b!.address] }, { healthCheck: { interval: '60s', timeout: '1s' }, retries: { attempts: 2 } }));
  await waitFor(() => endpointState(m, k!.address).state === 'healthy', 'k healthy');

  const get = send(m.port, { path: '/slow?ms=1000' });
  await waitFor(() => m.meridian.applier.current?.services.get('web')?.versions.get('stable')?.groups[0]?.all[0]?.upstream.outstanding === 1, 'the GET to reach eu-west');
  await k!.kill();
  const got = await get;
  t.equal(got.status, 200, 'the GET was sent again to us-east');
  t.equal(JSON.parse(got.text).label, 'b');

  // Passive ejection of a reset is capped per region (a single endpoint is 100%); the
  // refused connection of the next request ejects it outright and the POST moves on.
  const post = await send(m.port, { method: 'POST', path: '/', body: 'x'.repeat(1000) });
  t.equal(post.status, 200, 'a connect failure is retried for any method');
  t.equal(post.headers['x-meridian-region'], 'us-east');
  t.equal(endpointState(m, k!.address).reason, 'connect-refused');
});
