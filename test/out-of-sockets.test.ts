import { readdirSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { getJson, send } from './helpers/client.js';
import { simpleRoutes } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { spawnMeridian } from './helpers/process.js';
import { startUpstream } from './helpers/upstream.js';

/** Idle client connections to `port`, kept open until the test ends. */
function openIdle(port: number, count: number, open: Set<Socket>): void {
  for (let i = 0; i < count; i++) {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.on('connect', () => open.add(socket));
    socket.on('close', () => open.delete(socket));
  }
}

t.test('out of file descriptors: 503 node-out-of-sockets, the endpoint is not blamed, one warning, and service resumes once descriptors free up', async (t) => {
  const up = await startUpstream('up');
  t.teardown(() => up.kill());
  const dir = await mkdtemp(join(tmpdir(), 'meridian-fds-'));
  const routes = join(dir, 'routes.yaml');
  await writeFile(routes, stringify(simpleRoutes({ 'eu-west': [up.address] }, { healthCheck: { mode: 'tcp', interval: '100ms', timeout: '100ms', unhealthyThreshold: 1 } })));
  const conf = join(dir, 'meridian.yaml');
  await writeFile(conf, stringify({ node: { name: 'fds' }, proxy: { listen: '127.0.0.1:0', keepAliveTimeout: '1m' }, admin: { listen: '127.0.0.1:0' }, store: { file: routes, snapshot: join(dir, 'snap.json') } }));
  // Start-up needs room: the module loader opens files concurrently (zod alone loads some 50 locales).
  const limit = 128;
  const proc = await spawnMeridian(['start', '--config', conf, '--log-level', 'info'], { openFiles: limit });
  t.teardown(() => proc.stop('SIGKILL'));
  const pid = proc.child.pid as number;
  await waitFor(async () => (await send(proc.adminPort, { path: '/readyz' })).status === 200, 'the node to be ready');

  // Fill Meridian's descriptors with idle client connections (the ones it cannot take are closed by it).
  const open = new Set<Socket>();
  t.teardown(() => {
    for (const s of open) s.destroy();
  });
  openIdle(proc.proxyPort, limit, open);
  await waitFor(() => readdirSync(`/proc/${pid}/fd`).length >= limit - 1, `Meridian to reach its limit of ${limit} descriptors`);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const client = [...open][0];
  if (client === undefined) throw new Error('no connection was accepted');

  // A request on a connection Meridian holds: the upstream connection it needs cannot be opened.
  const answers: string[] = [];
  client.on('data', (d: Buffer) => answers.push(d.toString('latin1')));
  for (let i = 0; i < 3; i++) client.write('GET / HTTP/1.1\r\nhost: example.com\r\n\r\n');
  const seen = await waitFor(() => {
    const text = answers.join('');
    return (text.match(/HTTP\/1\.1 /g) ?? []).length >= 3 ? text : null;
  }, 'three answers');
  t.match(seen, /^HTTP\/1\.1 503 /, 'answered 503');
  t.match(seen, /x-meridian-error: node-out-of-sockets/i, 'with node-out-of-sockets');
  t.match(seen, /retry-after: 1/i);
  t.equal(up.started, 0, 'nothing reached the upstream');

  // Active checks (a TCP connect each, every 100 ms) cannot run either. The admin listener cannot
  // accept meanwhile, so what they did is read once descriptors are free again.
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (const s of open) if (s !== client) s.destroy();
  await waitFor(() => readdirSync(`/proc/${pid}/fd`).length < limit - 20, 'descriptors to free up');
  t.match((await send(proc.adminPort, { path: '/metrics' })).text, /meridian_health_checks_total\{result="local-limit"\} [1-9]/, 'checks met the limit');
  const state = await getJson(proc.adminPort, '/api/v1/state');
  t.notMatch(JSON.stringify(state), /local-limit/, 'no endpoint is down for a check this node could not make');

  const warnings = proc.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('out of file descriptors'));
  t.equal(warnings.length, 1, 'one warning line for the burst, not one per request');
  t.equal(warnings[0]?.level, 'warn');

  const after = await waitFor(async () => {
    const res = await send(proc.proxyPort);
    return res.status === 200 ? res : null;
  }, 'the node to serve again');
  t.match(after.text, /"label":"up"/, 'the upstream serves once descriptors are free');
});
