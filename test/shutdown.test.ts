import { mkdtemp, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { send } from './helpers/client.js';
import { simpleRoutes } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { spawnMeridian } from './helpers/process.js';
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
