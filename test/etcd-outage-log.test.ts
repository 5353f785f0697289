import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { experimental, logVerbosity } from '@grpc/grpc-js';
import t from 'tap';
import { stringify } from 'yaml';
import { createLogger } from '../src/observability/logger.js';
import { routeGrpcLogs } from '../src/store/grpc-log.js';
import { OutageLog } from '../src/observability/outage-log.js';
import { Writable } from 'node:stream';
import { etcdFixture } from './helpers/etcd.js';
import { waitFor } from './helpers/poll.js';
import { spawnMeridian } from './helpers/process.js';

t.test('a node whose etcd goes away for several retry periods: one line when it goes, one when it is back, nothing on stderr', async (t) => {
  const { etcd, client, up } = await etcdFixture(t, 'a');
  await client.put('/meridian/regions/eu-west').value(JSON.stringify({ location: { lat: 53.35, lon: -6.26 } }));
  await client.put('/meridian/services/web').value(JSON.stringify({ versions: { stable: { endpoints: { 'eu-west': [up.address] } } } }));
  await client.put('/meridian/routes/web').value(JSON.stringify({ pathPrefix: '/', service: 'web' }));
  const dir = await mkdtemp(join(tmpdir(), 'meridian-etcd-outage-'));
  const conf = join(dir, 'meridian.yaml');
  await writeFile(conf, stringify({ node: { name: 'outage' }, proxy: { listen: '127.0.0.1:0' }, admin: { listen: '127.0.0.1:0' }, store: { etcd: { endpoints: [etcd.url], keepaliveTime: '1s', keepaliveTimeout: '1s', dialTimeout: '1s' }, snapshot: join(dir, 'snap.json') } }));
  const proc = await spawnMeridian(['start', '--config', conf]);
  t.teardown(() => proc.stop('SIGKILL'));
  t.equal(proc.logs.filter((l) => String(l.msg).startsWith('etcd connected')).length, 1, 'the first connection is logged');
  const from = proc.logs.length;
  await etcd.kill();
  // Long enough for the store's backoff to reach its 5 s cap and retry at it (a fixed outage is what is under test).
  await new Promise((resolve) => setTimeout(resolve, 12_000));
  await etcd.restart();
  const back = await waitFor(() => proc.logs.slice(from).find((l) => String(l.msg).startsWith('etcd reachable again')), 'the line saying etcd is back', 40_000);
  await waitFor(() => proc.logs.slice(from).find((l) => String(l.msg).startsWith('fleet view published again')), 'the fleet view published again', 40_000);
  const lines = proc.logs.slice(from).filter((l) => !String(l.msg).startsWith('endpoint'));
  const msgs = lines.map((l) => String(l.msg));
  t.equal(msgs.filter((m) => m.startsWith('etcd unreachable')).length, 1, `one down line: ${JSON.stringify(msgs)}`);
  t.equal(msgs.filter((m) => m.startsWith('etcd reachable again')).length, 1, 'one up line');
  t.match(lines.find((l) => String(l.msg).startsWith('etcd unreachable')), { level: 'warn', err: /UNAVAILABLE|ECONNREFUSED|dropped/ }, 'the down line says why');
  t.ok((back.retries as number) >= 3 && (back.downMs as number) >= 10_000, `the up line says how long and how many retries: ${String(back.msg)}`);
  t.match(back.msg, /^etcd reachable again after \d+ retries, \d+\.\ds$/);
  t.equal(msgs.filter((m) => m.startsWith('cannot publish the fleet view')).length, 1, 'the fleet publisher: one down line (lease lost and failed writes together)');
  t.equal(msgs.filter((m) => m.startsWith('fleet view published again')).length, 1, 'and one up line');
  t.ok(lines.length <= 6, `nothing else repeats (gRPC's complaints at most once a minute): ${JSON.stringify(msgs)}`);
  t.equal(proc.stderr(), '', 'nothing from gRPC on stderr');
});

t.test("gRPC's own complaints are routed into the log, each once a minute; left alone when GRPC_VERBOSITY/GRPC_TRACE is set", async (t) => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger(
    'debug',
    new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    }),
  );
  t.equal(routeGrpcLogs(logger, { GRPC_TRACE: 'all' }), false, 'GRPC_TRACE set: gRPC keeps its own output');
  t.equal(routeGrpcLogs(logger, {}), true);
  const complaint = 'Connection to dns:127.0.0.1:2379 at 127.0.0.1:2379 rejected by server because of excess pings. Increasing ping interval to 2000 ms';
  for (let i = 0; i < 5; i++) experimental.log(logVerbosity.ERROR, complaint);
  await waitFor(() => lines.length >= 1, 'the routed line');
  const warnings = lines.filter((l) => l.level === 'warn');
  t.equal(warnings.length, 1, 'five of the same complaint: one line');
  t.match(warnings[0], { component: 'grpc', detail: complaint, msg: /^gRPC \(etcd client\): Connection to/ });
});

t.test('OutageLog: one line when trouble starts, one when it ends, retries counted between', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger(
    'info',
    new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    }),
  );
  const outage = new OutageLog(logger, 'thing down', 'thing back');
  t.equal(outage.recovered(), false, 'nothing to recover from');
  for (let i = 0; i < 4; i++) outage.failed({ err: `attempt ${i}` });
  t.equal(outage.failing, true);
  t.equal(outage.recovered({ extra: 1 }), true);
  t.equal(outage.recovered(), false, 'only once');
  outage.failed({ err: 'again' });
  outage.recovered();
  await waitFor(() => lines.length >= 4, 'four lines');
  t.match(lines[0], { level: 'warn', err: 'attempt 0', msg: 'thing down' }, 'the first failure, with its error');
  t.match(lines[1], { level: 'info', retries: 3, extra: 1, msg: /^thing back after 3 retries, \d+\.\ds$/ });
  t.match(lines[3], { retries: 0, msg: /after 0 retries/ });
  t.equal(lines.length, 4, 'nothing per retry');
});
