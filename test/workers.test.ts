import { mkdtemp, rename, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { getJson, send } from './helpers/client.js';
import { dig } from './helpers/dig.js';
import { simpleRoutes } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { spawnMeridian, type MeridianProcess } from './helpers/process.js';
import { startTraffic } from './helpers/traffic.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

interface WorkerView {
  id: number;
  pid: number;
  revision: number;
  appliedAt: string | null;
  listening: boolean;
}

interface NodeUnderTest {
  readonly proc: MeridianProcess;
  readonly routes: string;
  readonly dnsPort: number | null;
  writeRoutes(doc: unknown): Promise<void>;
  workers(): Promise<WorkerView[]>;
}

/** Starts `meridian start --workers 2` on a one-service table in front of `up`, with debug headers and optional GeoDNS. */
async function startNode(t: Test, up: TestUpstream, options: { dns?: boolean; service?: Record<string, unknown>; proxy?: Record<string, unknown> } = {}): Promise<NodeUnderTest> {
  const dir = await mkdtemp(join(tmpdir(), 'meridian-workers-'));
  const routes = join(dir, 'routes.yaml');
  const writeRoutes = async (doc: unknown): Promise<void> => {
    await writeFile(`${routes}.tmp`, stringify(doc));
    await rename(`${routes}.tmp`, routes);
  };
  const table = simpleRoutes({ 'eu-west': [up.address] }, options.service ?? {}) as { regions: Record<string, Record<string, unknown>>; routes: Record<string, unknown> };
  (table.regions['eu-west'] as Record<string, unknown>).edge = { ipv4: ['203.0.113.10'] };
  table.routes.www = { hosts: ['www.example.com'], pathPrefix: '/', service: 'web' };
  await writeRoutes(table);
  const conf = join(dir, 'meridian.yaml');
  const config: Record<string, unknown> = {
    node: { name: 'workers-test' },
    proxy: { listen: '127.0.0.1:0', debugHeaders: true, shutdownTimeout: '5s', ...(options.proxy ?? {}) },
    admin: { listen: '127.0.0.1:0' },
    store: { file: routes, snapshot: join(dir, 'snap.json') },
  };
  if (options.dns === true) config.dns = { listen: '127.0.0.1:0', zones: [{ name: 'example.com', nameservers: ['ns1.example.com'] }] };
  await writeFile(conf, stringify(config));
  const proc = await spawnMeridian(['start', '--config', conf, '--workers', '2', '--log-level', 'info']);
  t.teardown(() => proc.stop('SIGKILL'));
  const started = proc.logs.find((l) => l.msg === 'meridian started') as { workers: number };
  t.equal(started.workers, 2, 'the node started with two workers listening');
  const dnsLine = proc.logs.find((l) => l.msg === 'dns listening') as { address?: { port: number } } | undefined;
  return {
    proc,
    routes,
    dnsPort: dnsLine?.address?.port ?? null,
    writeRoutes,
    workers: async () => (await getJson<{ workers: WorkerView[] }>(proc.adminPort, '/api/v1/state')).workers,
  };
}

/** Which workers answered `count` requests, each on a new connection (a failed request throws). */
async function workersSeen(port: number, count: number, path = '/'): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const res = await send(port, { path });
    if (res.status !== 200) throw new Error(`${path} answered ${res.status}: ${res.text}`);
    const worker = String(res.headers['x-meridian-worker']);
    seen.set(worker, (seen.get(worker) ?? 0) + 1);
  }
  return seen;
}

t.test('two workers: both serve, metrics add up over both, health checks run once per node, an edit reaches both', async (t) => {
  const up = await startUpstream('a');
  up.healthStatus = 200;
  const b = await startUpstream('b');
  t.teardown(async () => {
    await up.kill();
    await b.kill();
  });
  const checksBefore = up.healthChecks;
  const startedAt = Date.now();
  const node = await startNode(t, up, { service: { healthCheck: { interval: '200ms', timeout: '150ms' } } });
  const seen = await workersSeen(node.proc.proxyPort, 40);
  t.equal(seen.size, 2, `requests were answered by both workers (${JSON.stringify([...seen])})`);

  const metrics = (await send(node.proc.adminPort, { path: '/metrics' })).text;
  t.match(metrics, /meridian_requests_total\{route="web",service="web",version="stable",region="eu-west",status_class="2xx"\} 40\n/, 'one /metrics counts the requests of every worker, once');
  t.match(metrics, /meridian_config_revision 1\n/, 'a revision every process holds is not summed');
  t.match(metrics, /^process_cpu_user_seconds_total \d/m, 'Node process metrics are there, under their standard names');
  t.notMatch(metrics, /meridian_process_|meridian_nodejs_/, 'and not under meridian_');
  t.match(metrics, /^process_start_time_seconds \d/m, "the node's start time is the primary's (prom-client would leave it out)");
  t.match(metrics, `meridian_endpoint_up{service="web",version="stable",region="eu-west",endpoint="${up.address}"} 1\n`, 'endpoint health comes from the control plane once, not summed over workers');

  await new Promise((resolve) => setTimeout(resolve, 2_000)); // ten check intervals
  const checks = up.healthChecks - checksBefore;
  const intervals = (Date.now() - startedAt) / 200;
  t.ok(checks <= intervals * 1.3 + 2, `health checks ran once per interval for the node, not per worker (${checks} over ${intervals.toFixed(1)} intervals)`);

  await node.writeRoutes(simpleRoutes({ 'eu-west': [b.address] }));
  const switched = await waitFor(async () => {
    const workers = await node.workers();
    return workers.every((w) => w.revision === 2) ? workers : null;
  }, 'both workers to apply the edit', 10_000);
  const times = switched.map((w) => Date.parse(w.appliedAt ?? ''));
  const skew = Math.max(...times) - Math.min(...times);
  t.ok(times.every(Number.isFinite) && skew <= 200, `the workers swapped the new table ${skew} ms apart (${switched.map((w) => w.appliedAt).join(', ')})`);
  const after = await workersSeen(node.proc.proxyPort, 20);
  t.equal(after.size, 2, 'both workers still serve');
  const upstreams = new Set<string>();
  for (let i = 0; i < 10; i++) upstreams.add(String((await send(node.proc.proxyPort)).headers['x-upstream']));
  t.same([...upstreams], ['b'], 'and both serve the new table');
});

t.test('a worker killed with SIGKILL loses only its own requests in flight; another takes its place', async (t) => {
  const up = await startUpstream('slow');
  up.handle((req, res) => {
    const delay = req.url === '/slow' ? 800 : 0;
    setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'slow' }).end(`done ${req.url}`), delay);
  });
  t.teardown(() => up.kill());
  const node = await startNode(t, up);
  // One keep-alive connection per client, each learning which worker holds it.
  const clients: { agent: Agent; worker: string }[] = [];
  while (new Set(clients.map((c) => c.worker)).size < 2 || clients.length < 6) {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    t.teardown(() => agent.destroy());
    const res = await send(node.proc.proxyPort, { path: '/warm', agent });
    clients.push({ agent, worker: String(res.headers['x-meridian-worker']) });
    if (clients.length > 40) break;
  }
  const workers = await node.workers();
  const victim = workers[0] as WorkerView;
  const pending = clients.map((c) => send(node.proc.proxyPort, { path: '/slow', agent: c.agent }).then((r) => r.status, () => 0));
  await waitFor(() => up.seen.filter((r) => r.url === '/slow').length === clients.length, 'every slow request to reach the upstream');
  process.kill(victim.pid, 'SIGKILL');
  const statuses = await Promise.all(pending);
  clients.forEach((c, i) => {
    if (c.worker === String(victim.id)) t.equal(statuses[i], 0, `a request on the killed worker ${c.worker} is lost`);
    else t.equal(statuses[i], 200, `a request on worker ${c.worker} completes`);
  });
  const replaced = await waitFor(async () => {
    const now = await node.workers();
    return now.length === 2 && now.every((w) => w.listening && w.pid !== victim.pid && w.revision === 1) ? now : null;
  }, 'a new worker to take the place of the killed one', 15_000);
  t.equal(replaced.length, 2);
  const seen = await workersSeen(node.proc.proxyPort, 30, '/after');
  t.equal(seen.size, 2, `both workers serve again (${JSON.stringify([...seen])})`);
  t.ok(node.proc.logs.some((l) => l.msg === 'worker exited; starting another'), 'the exit is logged');
});

t.test('GeoDNS answers from every worker', async (t) => {
  const up = await startUpstream('dns');
  t.teardown(() => up.kill());
  const node = await startNode(t, up, { dns: true });
  const port = node.dnsPort as number;
  t.ok(port > 0, 'GeoDNS listens');
  for (const round of [1, 2]) {
    const workers = await node.workers();
    const victim = workers[0] as WorkerView;
    process.kill(victim.pid, 'SIGKILL');
    // With one worker left, every answer is that worker's, over UDP and TCP.
    for (const transport of [[], ['+tcp']]) {
      const answer = await waitFor(async () => {
        const res = await dig(port, ['www.example.com', ...transport]);
        return res.status === 'NOERROR' && res.answers.length > 0 ? res : null;
      }, `round ${round}: an answer with one worker`, 10_000);
      t.equal(answer.answers[0]?.data, '203.0.113.10', `round ${round}${transport.join('')}: the surviving worker answers`);
    }
    await waitFor(async () => (await node.workers()).filter((w) => w.listening).length === 2, 'the killed worker to be replaced', 15_000);
  }
});

t.test('a worker starts with the health the primary holds when it starts, not the health of the last table swap', async (t) => {
  const up = await startUpstream('fresh-health');
  t.teardown(() => up.kill());
  // Healthy after the first check, made as the table applies while the workers boot; no later check flips anything.
  const node = await startNode(t, up, { dns: true, service: { healthCheck: { interval: '1m', timeout: '2s', healthyThreshold: 1 } } });
  const port = node.dnsPort as number;
  await waitFor(async () => {
    const state = await getJson<{ services: { web: { versions: { stable: { regions: Record<string, { endpoints: { health: string }[] }> } } } } }>(node.proc.adminPort, '/api/v1/state');
    return state.services.web.versions.stable.regions['eu-west']?.endpoints[0]?.health === 'healthy';
  }, 'the primary to see the endpoint healthy');
  // A region with every endpoint healthy gets the full TTL (30s); one a worker still holds unchecked gets half.
  const ttls = async (): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < 16; i++) out.push((await dig(port, ['www.example.com'])).answers[0]?.ttl ?? -1);
    return out;
  };
  const full = (seen: readonly number[]): boolean => seen.every((ttl) => ttl === 30);
  let seen: number[] = [];
  await waitFor(async () => full((seen = await ttls())), 'every worker to answer with the full TTL', 5_000).catch(() => undefined);
  t.same(seen, Array.from({ length: 16 }, () => 30), 'both workers started knowing the endpoint healthy');
  const victim = (await node.workers())[0] as WorkerView;
  process.kill(victim.pid, 'SIGKILL');
  await waitFor(async () => {
    const now = await node.workers();
    return now.length === 2 && now.every((w) => w.listening && w.pid !== victim.pid);
  }, 'the killed worker to be replaced', 15_000);
  await waitFor(async () => full((seen = await ttls())), 'the new worker to answer with the full TTL', 5_000).catch(() => undefined);
  t.same(seen, Array.from({ length: 16 }, () => 30), 'a worker started after the health flipped knows it too');
});

t.test('SIGTERM with two workers under keep-alive load and proxy.shutdownDelay: no reset, no refused connection, exit 0', async (t) => {
  const up = await startUpstream('drain');
  t.teardown(() => up.kill());
  for (let run = 1; run <= 3; run++) {
    const node = await startNode(t, up, { proxy: { shutdownDelay: '2s' } });
    const traffic = startTraffic(node.proc.proxyPort, { workers: 8 });
    await waitFor(() => traffic.samples.length >= 200, 'load before SIGTERM', 10_000);
    const notReady = (): Promise<boolean> => send(node.proc.adminPort, { path: '/readyz', timeoutMs: 1_000 }).then((r) => r.status === 503, () => true);
    const watcher = waitFor(async () => ((await notReady()) ? Date.now() : 0), 'readyz to turn 503', 5_000, 150);
    const exit = node.proc.stop('SIGTERM');
    const noticedAt = await watcher;
    await waitFor(() => traffic.samples.filter((s) => s.sentAt > noticedAt).length >= 16, 'requests after the notice', 1_000).catch(() => undefined);
    const samples = await traffic.stop();
    const failed = samples.filter((s) => s.status !== 200);
    t.same(failed.map((s) => s.code || s.failure || `${s.status} ${s.error}`), [], `run ${run}: every one of ${samples.length} requests answered 200`);
    t.equal(await exit, 0, `run ${run}: the node exits 0`);
  }
});
