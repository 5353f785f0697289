import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CLEAN_ENV } from './helpers/cli.js';
import { runCli } from './helpers/process.js';

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

/** A loopback port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

t.test('an etcd that refuses: one line on stderr, exit 1; --debug (before or after the command) and MERIDIAN_DEBUG add the stack', async (t) => {
  const port = await closedPort();
  const url = `http://127.0.0.1:${port}`;
  for (const command of [['get', 'services'], ['status'], ['weights', 'web', 'v1=1'], ['undrain', 'endpoint', '127.0.0.1:1']]) {
    const res = await runCli([...command, '--etcd', url], 12_000, CLEAN_ENV);
    t.equal(res.code, 1, `${command.join(' ')} exits 1`);
    t.equal(res.stderr, `meridian: cannot reach etcd at ${url}: connect ECONNREFUSED (set --etcd or MERIDIAN_ETCD_ENDPOINTS)\n`, `${command.join(' ')}: exactly one line`);
    t.equal(res.stdout, '');
  }
  const defaulted = await runCli(['get'], 12_000, { ...CLEAN_ENV, MERIDIAN_ETCD_ENDPOINTS: `127.0.0.1:${port}` });
  t.equal(defaulted.stderr.split('\n').length, 2, 'one line with the endpoint from the environment too');
  t.match(defaulted.stderr, `cannot reach etcd at http://127.0.0.1:${port}:`, 'host:port from the environment means http://');

  for (const [args, env] of [
    [['--debug', 'get', '--etcd', url], CLEAN_ENV],
    [['get', '--etcd', url, '--debug'], CLEAN_ENV],
    [['get', '--etcd', url], { ...CLEAN_ENV, MERIDIAN_DEBUG: '1' }],
  ] as const) {
    const res = await runCli([...args], 12_000, env);
    t.equal(res.code, 1);
    const lines = res.stderr.trim().split('\n');
    t.match(lines[0], /^meridian: cannot reach etcd at /, 'the line comes first');
    t.ok(lines.some((l) => /^\s+at /.test(l)), `then a stack (${args.join(' ')})`);
    t.match(res.stderr, /Caused by: GRPCUnavailableError/, 'with the client error that caused it');
  }
});

t.test('an etcd that accepts but never answers: one line once the deadline passes', async (t) => {
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => sockets.add(socket));
  const port = await listen(silent);
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const url = `http://127.0.0.1:${port}`;
  const res = await runCli(['get', '--etcd', url], 12_000, CLEAN_ENV);
  t.equal(res.code, 1);
  t.equal(res.stderr, `meridian: cannot reach etcd at ${url}: no answer within 3s (set --etcd or MERIDIAN_ETCD_ENDPOINTS)\n`);
  const short = await runCli(['status', '--etcd', url, '--timeout', '500ms'], 12_000, CLEAN_ENV);
  t.match(short.stderr, /no answer within 500ms/, '--timeout sets the deadline');
  t.equal((await runCli(['get', '--etcd', url, '--timeout', 'soon'], 12_000, CLEAN_ENV)).code, 2, 'a malformed --timeout is a usage error');
});

t.test('endpoints that are no URL are usage errors naming where they came from', async (t) => {
  const flag = await runCli(['get', '--etcd', 'ftp://x:1'], 12_000, CLEAN_ENV);
  t.equal(flag.code, 2);
  t.match(flag.stderr, /--etcd: "ftp:\/\/x:1" is not an http:\/\/ or https:\/\/ URL/);
  const env = await runCli(['get'], 12_000, { ...CLEAN_ENV, ETCDCTL_ENDPOINTS: 'ftp://x:1' });
  t.equal(env.code, 2);
  t.match(env.stderr, /ETCDCTL_ENDPOINTS: "ftp:\/\/x:1"/);
  t.equal((await runCli(['get', '-o', 'xml'], 12_000, CLEAN_ENV)).code, 2, 'an unknown output format is a usage error');
  t.equal((await runCli(['status', '--json', '-o', 'yaml'], 12_000, CLEAN_ENV)).code, 2, '--json and another -o disagree');
  t.equal((await runCli(['drain', 'zone', 'eu'], 12_000, CLEAN_ENV)).code, 2, 'drain takes region(s) or endpoint(s) only');
});

t.test('an unexpected error is one line without --debug', async (t) => {
  // A CA file that is not there fails while the client is made, below the CLI's own checks.
  const dir = await mkdtemp(join(tmpdir(), 'meridian-cli-'));
  const config = join(dir, 'm.yaml');
  await writeFile(config, `store:\n  etcd:\n    endpoints: ["http://127.0.0.1:${await closedPort()}"]\n    tls: {ca: ${join(dir, 'missing-ca.pem')}}\n`);
  const res = await runCli(['get', '--config', config], 12_000, CLEAN_ENV);
  t.equal(res.code, 1);
  t.equal(res.stderr, `meridian: ENOENT: no such file or directory, open '${join(dir, 'missing-ca.pem')}'\n`);
  const debug = await runCli(['get', '--config', config, '--debug'], 12_000, CLEAN_ENV);
  t.match(debug.stderr, /^\s+at /m, 'the stack with --debug');
});
