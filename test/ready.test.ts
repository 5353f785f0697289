import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { probeAddress } from '../src/cli/ready.js';
import { loadStaticConfig } from '../src/config/static-load.js';
import { ConfigError } from '../src/config/issues.js';
import { send } from './helpers/client.js';
import { startEtcd } from './helpers/etcd.js';
import { simpleRoutes } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { runCli, spawnMeridian } from './helpers/process.js';

/** A temp dir (removed at the end of `t`) holding `routes.yaml` and the node's snapshot. */
function workDir(t: Test): { dir: string; routes: string; write(name: string, doc: unknown): string } {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-ready-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, doc: unknown): string => {
    const file = join(dir, name);
    writeFileSync(file, stringify(doc));
    return file;
  };
  return { dir, routes: write('routes.yaml', simpleRoutes({ 'eu-west': ['127.0.0.1:9'] })), write };
}

t.test('a wildcard admin listener is probed on loopback of its family', async (t) => {
  t.same(probeAddress({ host: '0.0.0.0', port: 9901 }), { host: '127.0.0.1', port: 9901 });
  t.same(probeAddress({ host: '::', port: 9901 }), { host: '::1', port: 9901 });
  t.same(probeAddress({ host: '10.0.0.5', port: 9901 }), { host: '10.0.0.5', port: 9901 });
});

t.test('ready answers 0 for a ready node, 1 while it drains and once it is gone', async (t) => {
  const work = workDir(t);
  const config = work.write('node.yaml', {
    node: { name: 'ready-test' },
    proxy: { listen: '127.0.0.1:0', shutdownDelay: '30s' },
    admin: { listen: '127.0.0.1:0' },
    store: { file: work.routes, snapshot: join(work.dir, 'last-good.json') },
  });
  const node = await spawnMeridian(['start', '--config', config], { cwd: work.dir });
  t.teardown(() => node.stop('SIGKILL'));
  // What the probe reads: the configured admin.listen, a wildcard (with the token it then needs) reached on 127.0.0.1.
  const probeConfig = work.write('probe.yaml', { admin: { listen: `0.0.0.0:${node.adminPort}`, token: 'secret' }, store: { file: work.routes } });
  const ready = await runCli(['ready', '--config', probeConfig]);
  t.equal(ready.code, 0, ready.stderr);
  t.equal(ready.stdout, `ready (127.0.0.1:${node.adminPort})\n`);
  t.equal((await runCli(['ready', '--admin', `127.0.0.1:${node.adminPort}`])).code, 0, '--admin names the address directly');

  node.child.kill('SIGTERM');
  // Through proxy.shutdownDelay the node still runs but says it is shutting down.
  const draining = await waitFor(async () => {
    const r = await runCli(['ready', '--config', probeConfig]);
    return r.code === 1 ? r : null;
  }, 'ready to fail while draining', 10_000, 100);
  t.equal(draining.stderr, `meridian ready: not ready: shutting down (503 from 127.0.0.1:${node.adminPort}/readyz)\n`, 'one line: why, and who said so');
  t.equal(draining.stdout, '');

  await node.stop('SIGKILL');
  const gone = await runCli(['ready', '--admin', `127.0.0.1:${node.adminPort}`]);
  t.equal(gone.code, 1);
  t.match(gone.stderr, new RegExp(`^meridian ready: cannot reach the admin listener at 127\\.0\\.0\\.1:${node.adminPort}: .*ECONNREFUSED.*\\n$`));
});

t.test('ready answers 1 while no routing table is in force (etcd mode, empty prefix), then 0 once one is applied', async (t) => {
  const work = workDir(t);
  const etcd = await startEtcd();
  t.teardown(() => etcd.destroy());
  const node = await spawnMeridian(['start', '--etcd', etcd.url, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--node-name', 'ready-etcd'], { cwd: work.dir });
  t.teardown(() => node.stop('SIGKILL'));
  const empty = await runCli(['ready', '--admin', `127.0.0.1:${node.adminPort}`]);
  t.equal(empty.code, 1);
  t.match(empty.stderr, new RegExp(`^meridian ready: not ready: no routing table in force: .*\\(503 from 127\\.0\\.0\\.1:${node.adminPort}/readyz\\)\\n$`));
  const applied = await runCli(['apply', '-f', work.routes, '--etcd', etcd.url]);
  t.equal(applied.code, 0, applied.stderr);
  await waitFor(async () => (await runCli(['ready', '--admin', `127.0.0.1:${node.adminPort}`])).code === 0, 'ready once a table is in etcd', 10_000, 100);
  t.equal(await node.stop('SIGTERM'), 0);
});

t.test('ready gives up after --timeout on a listener that never answers, and says so', async (t) => {
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const { port } = silent.address() as { port: number };
  const r = await runCli(['ready', '--admin', `127.0.0.1:${port}`, '--timeout', '300ms']);
  t.equal(r.code, 1);
  t.equal(r.stderr, `meridian ready: cannot reach the admin listener at 127.0.0.1:${port}: no answer within 300ms\n`);
});

t.test('ready: configuration it cannot use is 1 with one line; flag mistakes are usage errors', async (t) => {
  const work = workDir(t);
  const missing = await runCli(['ready', '--config', join(work.dir, 'nope.yaml')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^meridian ready: .*nope\.yaml: cannot read: ENOENT\n$/);
  const bad = work.write('bad.yaml', { admin: { listen: 'nowhere' } });
  const badListen = await runCli(['ready', '--config', bad]);
  t.equal(badListen.code, 1);
  t.equal(badListen.stderr, `meridian ready: ${bad}: admin.listen: "nowhere" has no port (expected host:port)\n`);
  const zero = await runCli(['ready', '--admin', '127.0.0.1:0']);
  t.equal(zero.code, 1);
  t.match(zero.stderr, /--admin: port 0 is picked by the system/);
  for (const args of [['--timeout', 'soon'], ['--timeout', '0s'], ['--admin', 'x'], ['extra']]) {
    const r = await runCli(['ready', ...args]);
    t.equal(r.code, 2, `ready ${args.join(' ')} is a usage error`);
  }
  const help = await runCli(['ready', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: meridian ready/);
  t.match((await runCli(['--help'])).stdout, /\n {2}ready {6}/, 'listed in the main help');
});

t.test('MERIDIAN_ADMIN_TOKEN sets admin.token from the environment', async (t) => {
  const work = workDir(t);
  const open = work.write('open.yaml', { admin: { listen: '0.0.0.0:9901' }, store: { file: work.routes } });
  const refused = await runCli(['validate', open]);
  t.equal(refused.code, 1, 'a non-loopback admin listener without a token is refused');
  t.match(refused.stderr, /admin\.token: required when the admin listener/);
  const accepted = await runCli(['validate', open], 15_000, { MERIDIAN_ADMIN_TOKEN: 's3cret' });
  t.equal(accepted.code, 0, accepted.stderr);
  const blank = await runCli(['validate', open], 15_000, { MERIDIAN_ADMIN_TOKEN: '' });
  t.equal(blank.code, 1, 'an empty variable is no token');
  const spaced = await runCli(['validate', open], 15_000, { MERIDIAN_ADMIN_TOKEN: ' s3cret' });
  t.equal(spaced.code, 1);
  t.match(spaced.stderr, /^MERIDIAN_ADMIN_TOKEN: must not start or end with white space/m, 'the problem names the variable, not the file');

  const fromFile = await loadStaticConfig(undefined, { admin: '127.0.0.1:0', routes: work.routes }, { MERIDIAN_ADMIN_TOKEN: 'env-token' });
  t.equal(fromFile.admin.token, 'env-token');
  const withFileToken = work.write('tokened.yaml', { admin: { listen: '127.0.0.1:0', token: 'file-token' }, store: { file: work.routes } });
  t.equal((await loadStaticConfig(withFileToken, {}, { MERIDIAN_ADMIN_TOKEN: 'env-token' })).admin.token, 'env-token', 'the environment wins over the file');
  t.equal((await loadStaticConfig(withFileToken, {}, {})).admin.token, 'file-token');
  await t.rejects(loadStaticConfig(withFileToken, {}, { MERIDIAN_ADMIN_TOKEN: 'a b ' }), ConfigError);

  const node = await spawnMeridian(['start', '--routes', work.routes, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--node-name', 'token-env'], { cwd: work.dir, env: { MERIDIAN_ADMIN_TOKEN: 'env-token' } });
  t.teardown(() => node.stop('SIGKILL'));
  t.equal((await send(node.adminPort, { path: '/api/v1/state' })).status, 401, 'state needs the token from the environment');
  t.equal((await send(node.adminPort, { path: '/api/v1/state', headers: { authorization: 'Bearer env-token' } })).status, 200);
  t.equal((await runCli(['ready', '--admin', `127.0.0.1:${node.adminPort}`])).code, 0, 'readyz needs no token');
  t.equal(await node.stop('SIGTERM'), 0);
});
