import type { ServerResponse } from 'node:http';
import t, { type Test } from 'tap';
import { send } from './helpers/client.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

const REGIONS = {
  'eu-west': { location: { lat: 53.35, lon: -6.26 } },
  'us-east': { location: { lat: 38.9, lon: -77.04 } },
};

function doc(endpoints: Record<string, unknown[]>, service: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    regions: REGIONS,
    services: { web: { healthCheck: { interval: '5s', timeout: '1s' }, slowStart: '0s', ...service, versions: { stable: { endpoints } } } },
    routes: { web: { pathPrefix: '/', service: 'web' } },
  };
}

async function upstreams(t: Test, ...labels: string[]): Promise<TestUpstream[]> {
  const ups = await Promise.all(labels.map((l) => startUpstream(l)));
  t.teardown(async () => {
    for (const up of ups) await up.kill();
  });
  return ups;
}

/** Meridian in eu-west with debug headers, once every endpoint has passed its first check. */
async function meridian(t: Test, routes: Record<string, unknown>, ups: TestUpstream[]): Promise<TestMeridian> {
  const m = await startTestMeridian(routes, { node: { region: 'eu-west' }, proxy: { debugHeaders: true } });
  t.teardown(() => m.close());
  await waitFor(() => ups.every((u) => u.healthChecks > 0), 'first health checks');
  await waitFor(() => {
    for (const s of m.meridian.applier.current?.services.values() ?? []) for (const v of s.versions.values()) for (const g of v.groups) for (const ep of g.all) if (ep.health.state !== 'healthy') return false;
    return true;
  }, 'every endpoint healthy');
  return m;
}

function answer(status: number, delayMs = 0) {
  return (_req: unknown, res: ServerResponse): void => {
    setTimeout(() => res.writeHead(status, { 'content-type': 'text/plain' }).end(`status ${status}\n`), delayMs);
  };
}

async function metricValue(m: TestMeridian, line: string): Promise<number> {
  const res = await send(m.adminPort, { path: '/metrics' });
  const found = res.text.split('\n').find((l) => l.startsWith(line));
  return found === undefined ? 0 : Number(found.slice(found.lastIndexOf(' ') + 1));
}

t.test('a 503 is tried again on the other endpoint of the region, then in the next region', async (t) => {
  const [a, b, c] = await upstreams(t, 'a', 'b', 'c');
  a!.handle(answer(503));
  b!.handle(answer(503));
  const m = await meridian(t, doc({ 'eu-west': [a!.address, b!.address], 'us-east': [c!.address] }), [a!, b!, c!]);
  const res = await send(m.port, { path: '/x' });
  t.equal(res.status, 200, 'the client never sees the 503s');
  t.equal(res.headers['x-upstream'], 'c');
  t.equal(a!.started + b!.started, 2, 'both eu-west endpoints were tried first');
  t.equal(await metricValue(m, 'meridian_retries_total{service="web",reason="status-503"}'), 2);
  t.equal(await metricValue(m, 'meridian_failovers_total{service="web",from="eu-west",to="us-east"}'), 1);
});

t.test('request bodies: up to 64 KiB replayed for idempotent methods; POST and larger bodies are not sent twice', async (t) => {
  const [a, b] = await upstreams(t, 'a', 'b');
  a!.handle(answer(503));
  const m = await meridian(t, doc({ 'eu-west': [a!.address], 'us-east': [b!.address] }), [a!, b!]);
  const small = Buffer.alloc(10 * 1024, 'p');
  const put = await send(m.port, { method: 'PUT', path: '/small', body: small });
  t.equal(put.status, 200, 'a PUT with a small body is retried');
  t.equal(b!.seen.at(-1)?.body.length, small.length, 'with the whole body');
  t.equal(a!.seen.at(-1)?.body.length, small.length, 'the first try had it too');

  const post = await send(m.port, { method: 'POST', path: '/post', body: small });
  t.equal(post.status, 503, 'a POST that reached an upstream is not sent again');
  t.equal(b!.seen.filter((s) => s.url === '/post').length, 0);

  const large = Buffer.alloc(200 * 1024, 'L');
  const bigPut = await send(m.port, { method: 'PUT', path: '/large', body: large });
  t.equal(bigPut.status, 503, 'a body past 64 KiB that was sent is not sent again');
  t.equal(a!.seen.at(-1)?.body.length, large.length, 'the one try got the whole streamed body');
  t.equal(b!.seen.filter((s) => s.url === '/large').length, 0);
});

t.test('per-try timeout: a slow endpoint is left for another; 504 when every try times out', async (t) => {
  const [slow, fast] = await upstreams(t, 'slow', 'fast');
  slow!.handle(answer(200, 1_500));
  const m = await meridian(t, doc({ 'eu-west': [slow!.address], 'us-east': [fast!.address] }, { retries: { attempts: 2, perTryTimeout: '200ms' } }), [slow!, fast!]);
  const res = await send(m.port, { path: '/t' });
  t.equal(res.status, 200);
  t.equal(res.headers['x-upstream'], 'fast');
  fast!.handle(answer(200, 1_500));
  const timedOut = await send(m.port, { path: '/t2' });
  t.equal(timedOut.status, 504);
  t.equal(timedOut.headers['x-meridian-error'], 'upstream-timeout');
});

t.test('the retry budget caps retries when everything answers 503', async (t) => {
  const ups = await upstreams(t, 'a', 'b', 'c');
  for (const up of ups) up.handle(answer(503, 20));
  const m = await meridian(t, doc({ 'eu-west': [ups[0]!.address, ups[1]!.address], 'us-east': [ups[2]!.address] }, { retries: { attempts: 2, budget: { percent: 20, minConcurrent: 3 } } }), ups);
  const requests = 200;
  const results = await Promise.all(Array.from({ length: requests }, (_, i) => send(m.port, { path: `/r${i}` })));
  t.ok(results.every((r) => r.status === 503), 'the upstreams\u2019 503 is relayed');
  const tries = ups.reduce((sum, up) => sum + up.started, 0);
  const retries = tries - requests;
  // 20% of requests, plus what the 3 always-allowed concurrent retries add while they
  // last (more on a loaded machine, where requests overlap less); without a budget: 400.
  t.ok(retries <= requests * 0.5, `${retries} retries for ${requests} requests (budget: 20%, 3 concurrent always allowed; without it: ${requests * 2})`);
  t.ok(retries > 0, 'some retries were still made');
  t.ok((await metricValue(m, 'meridian_retries_denied_total{service="web"}')) > 0, 'denied retries are counted');
});

t.test('concurrency limit per endpoint: spill to the next region, then 503 with Retry-After', async (t) => {
  const [a, b] = await upstreams(t, 'a', 'b');
  const release: (() => void)[] = [];
  for (const up of [a!, b!]) {
    up.handle((_req, res) => release.push(() => res.writeHead(200, { 'x-upstream': 'held' }).end('ok')));
  }
  const m = await meridian(t, doc({ 'eu-west': [a!.address], 'us-east': [b!.address] }, { limits: { maxConcurrentPerEndpoint: 1 } }), [a!, b!]);
  const first = send(m.port, { path: '/1' });
  await waitFor(() => a!.started === 1, 'the first request to hold eu-west');
  const second = send(m.port, { path: '/2' });
  await waitFor(() => b!.started === 1, 'the second to spill to us-east');
  const third = await send(m.port, { path: '/3' });
  t.equal(third.status, 503);
  t.equal(third.headers['x-meridian-error'], 'upstream-overloaded');
  t.equal(third.headers['retry-after'], '1');
  for (const r of release) r();
  t.equal((await first).status, 200);
  t.equal((await second).status, 200);
});

t.test('consecutive 5xx eject an endpoint, never more than half of its region', async (t) => {
  const [a, b, c] = await upstreams(t, 'a', 'b', 'c');
  a!.handle(answer(500));
  b!.handle(answer(500));
  const m = await meridian(t, doc({ 'eu-west': [a!.address, b!.address], 'us-east': [c!.address] }, { outlier: { consecutive5xx: 3 } }), [a!, b!, c!]);
  for (let i = 0; i < 20; i++) await send(m.port, { path: `/e${i}` });
  const eps = m.meridian.applier.current?.services.get('web')?.versions.get('stable')?.groups[0]?.all ?? [];
  const ejected = eps.filter((ep) => ep.health.ejected);
  t.equal(ejected.length, 1, 'one of the two eu-west endpoints is ejected');
  t.equal(ejected[0]?.health.reason, 'ejected-5xx');
  t.equal(await metricValue(m, 'meridian_ejections_total{reason="ejected-5xx"}'), 1);
  // An active check success re-admits it (the checks themselves pass).
  ejected[0]!.health.checkPassed(1);
  t.equal(ejected[0]?.health.ejected, false, 'a passing check re-admits the ejected endpoint');
});
