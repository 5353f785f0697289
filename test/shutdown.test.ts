import { mkdtemp, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { send } from './helpers/client.js';
import { parseRawResponse, rawConnect, streamRequest } from './helpers/data-plane.js';
import { dig } from './helpers/dig.js';
import { simpleRoutes, startTestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { spawnMeridian } from './helpers/process.js';
import { startTraffic, type TrafficSample } from './helpers/traffic.js';
import { startUpstream } from './helpers/upstream.js';

t.test('SIGTERM: readyz turns 503, a slow request in flight finishes, the process exits 0', async (t) => {
  const up = await startUpstream('slow');
  up.handle((req, res) => {
    const delay = req.url === '/slow' ? 1_500 : 0;
    setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end(`done ${req.url}`), delay);
  });
  t.teardown(() => up.kill());
  const dir = await mkdtemp(join(tmpdir(), 'meridian-shutdown-'));
  const routes = join(dir, 'routes.yaml');
  await writeFile(routes, stringify(simpleRoutes({ 'eu-west': [up.address] })));
  const conf = join(dir, 'meridian.yaml');
  await writeFile(conf, stringify({ proxy: { listen: '127.0.0.1:0', shutdownTimeout: '10s' }, admin: { listen: '127.0.0.1:0' }, store: { file: routes, snapshot: join(dir, 'snap.json') } }));
  const proc = await spawnMeridian(['start', '--config', conf, '--log-level', 'info']);
  t.teardown(() => proc.stop('SIGKILL'));

  t.equal((await send(proc.adminPort, { path: '/readyz' })).status, 200);
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => keepAlive.destroy());
  t.equal((await send(proc.proxyPort, { path: '/warm', agent: keepAlive })).status, 200, 'a keep-alive connection is open');

  const slow = send(proc.proxyPort, { path: '/slow' });
  await waitFor(() => up.seen.some((r) => r.url === '/slow'), 'the slow request to reach the upstream');
  const exit = proc.stop('SIGTERM');
  const readyz = await waitFor(async () => {
    const r = await send(proc.adminPort, { path: '/readyz' });
    return r.status === 503 ? r : null;
  }, 'readyz to turn 503');
  t.equal(readyz.status, 503, 'readyz is 503 while draining');

  const res = await slow;
  t.equal(res.status, 200, 'the request in flight completes');
  t.equal(res.text, 'done /slow');
  t.equal(await exit, 0, 'the process exits 0');
  const messages = proc.logs.map((l) => l.msg);
  t.ok(messages.includes('shutting down: draining requests in flight'));
  t.ok(messages.includes('meridian stopped'));
  await t.rejects(send(proc.proxyPort, { path: '/after' }), 'the listener is closed after shutdown');
});

/** Client errors that mean a connection was cut under a request: what graceful shutdown must never cause. */
const RESETS = new Set(['ECONNRESET', 'EPIPE']);
const RUNS = 10;
/** Runs go five at a time (most of a run is the idle shutdown delay); each has its own Meridian process. */
const LANES = 5;
/** Load before SIGTERM: at least this long, and at least 100 answers. */
const LOAD_MS = 1_000;

/** What one SIGTERM run under load saw. */
interface DrainRun {
  readonly run: number;
  readonly samples: TrafficSample[];
  /** Date.now() when the watcher first saw readyz 503. */
  readonly noticedAt: number;
  readonly exitCode: number | null;
  readonly logs: Record<string, unknown>[];
}

/**
 * One run: 8 keep-alive clients send back to back; a watcher polls readyz
 * every 150 ms like a load balancer's health check; SIGTERM; once the watcher
 * sees 503 the clients are told, and stop after a few more requests (well
 * within 1 s), as traffic does when a load balancer takes a node out.
 */
async function drainRun(run: number, conf: string): Promise<DrainRun> {
  const proc = await spawnMeridian(['start', '--config', conf, '--log-level', 'info']);
  const traffic = startTraffic(proc.proxyPort, { workers: 8 });
  const loadFrom = Date.now();
  try {
    await waitFor(() => Date.now() - loadFrom >= LOAD_MS && traffic.samples.length >= 100, 'load before SIGTERM', 10_000);
    // A failed check counts as not ready too, as it does for a load balancer.
    const notReady = (): Promise<boolean> => send(proc.adminPort, { path: '/readyz', timeoutMs: 1_000 }).then((r) => r.status === 503, () => true);
    const watcher = waitFor(async () => ((await notReady()) ? Date.now() : 0), 'readyz to turn 503', 5_000, 150);
    const exit = proc.stop('SIGTERM');
    const noticedAt = await watcher;
    await waitFor(() => traffic.samples.filter((s) => s.sentAt > noticedAt).length >= 16, 'requests after the notice', 1_000).catch(() => undefined);
    const samples = await traffic.stop();
    return { run, samples, noticedAt, exitCode: await exit, logs: proc.logs };
  } finally {
    await traffic.stop();
    await proc.stop('SIGKILL');
  }
}

t.test('SIGTERM with proxy.shutdownDelay under keep-alive load: no reset, no refused connection, every answer complete, exit 0', async (t) => {
  const up = await startUpstream('drain');
  t.teardown(() => up.kill());
  const dir = await mkdtemp(join(tmpdir(), 'meridian-drain-'));
  const routes = join(dir, 'routes.yaml');
  await writeFile(routes, stringify(simpleRoutes({ 'eu-west': [up.address] })));
  const conf = join(dir, 'meridian.yaml');
  await writeFile(
    conf,
    stringify({ proxy: { listen: '127.0.0.1:0', shutdownDelay: '2s', shutdownTimeout: '5s' }, admin: { listen: '127.0.0.1:0' }, store: { file: routes, snapshot: join(dir, 'snap.json') } }),
  );
  const runs: DrainRun[] = [];
  await Promise.all(
    Array.from({ length: LANES }, async (_, lane) => {
      for (let run = lane + 1; run <= RUNS; run += LANES) runs.push(await drainRun(run, conf));
    }),
  );
  runs.sort((a, b) => a.run - b.run);
  let afterNotice = 0;
  for (const { run, samples, noticedAt, exitCode, logs } of runs) {
    const failed = samples.filter((s) => s.status === 0);
    t.same(failed.filter((s) => RESETS.has(s.code)).map((s) => s.failure), [], `run ${run}: no connection reset (${samples.length} requests)`);
    t.same(failed.filter((s) => s.code === 'ECONNREFUSED').length, 0, `run ${run}: no refused connection`);
    t.same(samples.filter((s) => s.status !== 200).map((s) => s.failure ?? String(s.status)), [], `run ${run}: every request answered 200, complete`);
    // Sent after the watcher saw 503, so handled while draining.
    const late = samples.filter((s) => s.sentAt > noticedAt && s.status !== 0);
    afterNotice += late.length;
    t.same(late.filter((s) => s.connection !== 'close').length, 0, `run ${run}: the ${late.length} answers while draining carry connection: close`);
    t.equal(exitCode, 0, `run ${run}: exit 0`);
    const draining = logs.find((l) => l.msg === 'shutting down: draining requests in flight');
    t.equal(draining?.delayMs, 2_000, `run ${run}: the drain is logged with its delay`);
    t.ok(logs.some((l) => l.msg === 'proxy listener closed'), `run ${run}: the listener closing is logged`);
  }
  t.ok(afterNotice > 0, `answers while draining were seen (${afterNotice})`);
});

t.test('while draining, GeoDNS and admin answer and every proxy answer closes its connection: proxied, 100-continue, early hints, errors, refused upgrades', async (t) => {
  const up = await startUpstream('a');
  up.handle((req, res) => {
    if (req.url === '/hints') res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`ok ${req.url}`);
  });
  const m = await startTestMeridian(
    {
      regions: { 'eu-west': { location: { lat: 53.35, lon: -6.26 } } },
      services: {
        web: { versions: { stable: { endpoints: { 'eu-west': [up.address] } } } },
        dead: { retries: { attempts: 0 }, versions: { stable: { endpoints: { 'eu-west': ['127.0.0.1:1'] } } } },
      },
      routes: { web: { hosts: ['web.test'], service: 'web' }, dead: { hosts: ['dead.test'], service: 'dead' } },
    },
    { proxy: { shutdownDelay: '2s' }, dns: { listen: '127.0.0.1:0', zones: [{ name: 'example.com', nameservers: ['ns1.example.com'] }] } },
  );
  t.teardown(async () => {
    await m.close();
    await up.kill();
  });
  // Clients that ask to keep their connections, so that `connection: close` is Meridian's doing.
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  t.teardown(() => agent.destroy());
  const before = await send(m.port, { headers: { host: 'web.test' }, agent });
  t.equal(before.headers.connection, 'keep-alive', 'before shutdown connections are kept alive');

  const closed = m.close();
  t.equal((await send(m.adminPort, { path: '/readyz' })).text, 'not ready: shutting down\n', 'readyz says why at once');
  t.equal((await dig(m.dnsPort as number, ['example.com', 'SOA'])).status, 'NOERROR', 'GeoDNS still answers');
  const proxied = await send(m.port, { headers: { host: 'web.test' }, agent });
  t.match(proxied, { status: 200, headers: { connection: 'close' } }, 'a proxied answer; new connections are still accepted');
  const body = 'hello';
  const continued = await streamRequest(m.port, {
    method: 'POST',
    headers: { host: 'web.test', connection: 'keep-alive', expect: '100-continue', 'content-length': String(body.length) },
    onContinue: (req) => req.end(body),
  });
  t.ok(continued.continued, '100 Continue is still sent');
  t.match(continued, { status: 200, complete: true, headers: { connection: 'close' } }, 'the final answer after 100 Continue');
  const hints = await send(m.port, { path: '/hints', headers: { host: 'web.test' }, agent });
  t.match(hints, { status: 200, text: 'ok /hints', headers: { connection: 'close' } }, 'the final answer after 103 Early Hints');
  const failed = await send(m.port, { headers: { host: 'dead.test' }, agent });
  t.match(failed, { status: 502, headers: { connection: 'close', 'x-meridian-error': 'upstream-connect-failed' } }, 'an upstream failure');
  const noRoute = await send(m.port, { headers: { host: 'nothing.test' }, agent });
  t.match(noRoute, { status: 404, headers: { connection: 'close' } }, 'a request with no route');
  const raw = await rawConnect(m.port);
  raw.socket.write('GET /chat HTTP/1.1\r\nHost: web.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
  await raw.closed();
  const refused = parseRawResponse(raw.received());
  t.equal(refused?.status, 503, 'an upgrade is refused');
  t.same(refused?.headers.get('x-meridian-error'), ['shutting-down']);
  t.same(refused?.headers.get('connection'), ['close']);
  await closed;
  await t.rejects(send(m.port, { headers: { host: 'web.test' } }), { code: 'ECONNREFUSED' }, 'the listener is closed after the delay');
});

t.test('a keep-alive connection idle when the listener closes is not cut: its next request is answered', async (t) => {
  const up = await startUpstream('idle');
  t.teardown(() => up.kill());
  const dir = await mkdtemp(join(tmpdir(), 'meridian-idle-'));
  const routes = join(dir, 'routes.yaml');
  await writeFile(routes, stringify(simpleRoutes({ 'eu-west': [up.address] })));
  const conf = join(dir, 'meridian.yaml');
  await writeFile(
    conf,
    stringify({ proxy: { listen: '127.0.0.1:0', shutdownDelay: '300ms', keepAliveTimeout: '5s' }, admin: { listen: '127.0.0.1:0' }, store: { file: routes, snapshot: join(dir, 'snap.json') } }),
  );
  const proc = await spawnMeridian(['start', '--config', conf, '--log-level', 'info']);
  t.teardown(() => proc.stop('SIGKILL'));
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => keepAlive.destroy());
  t.equal((await send(proc.proxyPort, { path: '/warm', agent: keepAlive })).headers.connection, 'keep-alive');

  const exit = proc.stop('SIGTERM');
  await waitFor(() => proc.logs.some((l) => l.msg === 'proxy listener closed'), 'the listener to close');
  await t.rejects(send(proc.proxyPort, { path: '/fresh' }), { code: 'ECONNREFUSED' }, 'new connections are refused');
  const late = await send(proc.proxyPort, { path: '/late', agent: keepAlive });
  t.match(late, { status: 200, headers: { connection: 'close' } }, 'the idle connection still carries a request, answered with connection: close');
  t.equal(await exit, 0, 'the process exits 0 once that connection has closed');
});
