import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { send } from './helpers/client.js';
import { simpleRoutes } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { runCli, spawnMeridian, type MeridianProcess } from './helpers/process.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

type Line = Record<string, unknown>;

/** The lines of an access log file, each parsed; a partial or unparsable line fails the test. */
function fileLines(file: string): Line[] {
  let text: string;
  try {
    text = readFileSync(file, 'latin1');
  } catch {
    return [];
  }
  if (text !== '' && !text.endsWith('\n')) throw new Error(`${file} ends in a partial line`);
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);
}


/** A config file for `meridian start` in front of `up` (in a new temp dir), and the dir. */
async function configFor(up: TestUpstream, proxy: Record<string, unknown> = {}): Promise<{ dir: string; conf: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'meridian-access-proc-'));
  const routes = join(dir, 'routes.yaml');
  await writeFile(routes, stringify(simpleRoutes({ 'eu-west': [up.address] })));
  const conf = join(dir, 'meridian.yaml');
  await writeFile(conf, stringify({ node: { name: 'access-test' }, proxy: { listen: '127.0.0.1:0', shutdownTimeout: '10s', ...proxy }, admin: { listen: '127.0.0.1:0' }, store: { file: routes, snapshot: join(dir, 'snap.json') } }));
  return { dir, conf };
}

async function upstream(t: Test): Promise<TestUpstream> {
  const up = await startUpstream('a');
  t.teardown(() => up.kill());
  return up;
}

async function spawn(t: Test, args: string[]): Promise<MeridianProcess> {
  const proc = await spawnMeridian(args);
  t.teardown(() => proc.stop('SIGKILL'));
  return proc;
}

/** `count` GETs, `concurrency` at a time, each on its own connection; resolves with how many answered 200. */
async function load(port: number, count: number, concurrency: number): Promise<number> {
  let next = 0;
  let ok = 0;
  const one = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      if ((await send(port, { path: `/load/${i}` })).status === 200) ok++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, one));
  return ok;
}

t.test('meridian start writes no access log by default; SIGUSR1 then opens no inspector either', async (t) => {
  const up = await upstream(t);
  const { conf } = await configFor(up);
  const proc = await spawn(t, ['start', '--config', conf]);
  t.equal((await send(proc.proxyPort, { path: '/' })).status, 200);
  t.equal((await send(proc.proxyPort, { path: '/', headers: { host: 'x' } })).status, 200);
  proc.child.kill('SIGUSR1');
  t.equal((await send(proc.proxyPort, { path: '/after-signal' })).status, 200, 'SIGUSR1 does not stop the node');
  t.equal(await proc.stop('SIGTERM'), 0);
  t.same(proc.logs.filter((l) => l.type !== undefined), [], 'stdout holds only the process log');
  t.ok(proc.logs.length > 0, 'the process log was read');
});

t.test('rotation: moved and signalled (SIGUSR1), moved alone (noticed within about a second); SIGTERM writes every line', async (t) => {
  const up = await upstream(t);
  const { dir, conf } = await configFor(up);
  const file = join(dir, 'access.log');
  const proc = await spawn(t, ['start', '--config', conf, '--access-log', file]);
  for (let i = 0; i < 5; i++) await send(proc.proxyPort, { path: `/a${i}` });
  await waitFor(() => fileLines(file).length === 5, 'five lines');
  await rename(file, `${file}.1`);
  proc.child.kill('SIGUSR1');
  await waitFor(() => existsSync(file), 'the file opened anew');
  for (let i = 0; i < 3; i++) await send(proc.proxyPort, { path: `/b${i}` });
  await waitFor(() => fileLines(file).length === 3, 'three lines in the new file');
  await rename(file, `${file}.2`);
  await waitFor(() => existsSync(file), 'a new file without a signal', 5_000);
  // Requests in flight at SIGTERM finish, and their lines are written before the process exits.
  up.handle((_req, res) => setTimeout(() => res.end('slow\n'), 300));
  const inFlight = Array.from({ length: 20 }, (_, i) => send(proc.proxyPort, { path: `/c${i}` }));
  await waitFor(() => up.started >= 28, 'twenty requests in flight');
  const code = proc.stop('SIGTERM');
  t.same((await Promise.all(inFlight)).map((r) => r.status), Array(20).fill(200));
  t.equal(await code, 0);
  t.same(fileLines(`${file}.1`).map((l) => l.path), ['/a0', '/a1', '/a2', '/a3', '/a4'], 'lines before the first move');
  t.same(fileLines(`${file}.2`).map((l) => l.path), ['/b0', '/b1', '/b2'], 'lines between the moves');
  t.same(fileLines(file).map((l) => l.path).sort(), Array.from({ length: 20 }, (_, i) => `/c${i}`).sort(), 'every request in flight at SIGTERM is logged');
  t.notMatch(proc.logs.map((l) => String(l.msg)).join('\n'), /[Dd]ebugger/, 'no inspector was opened');
});

t.test('two workers to one stdout pipe: only whole lines, one per request', async (t) => {
  const up = await upstream(t);
  const { conf } = await configFor(up);
  // spawnMeridian parses every stdout line as JSON: a line torn by another process fails it.
  const proc = await spawn(t, ['start', '--config', conf, '--workers', '2', '--access-log', 'stdout']);
  const ok = await load(proc.proxyPort, 600, 12);
  t.equal(ok, 600);
  const lines = await waitFor(() => {
    const found = proc.logs.filter((l) => l.type === 'request');
    return found.length >= 600 ? found : null;
  }, 'a line per request', 10_000);
  t.equal(lines.length, 600, 'no line lost, none doubled');
  t.equal(new Set(lines.map((l) => l.path)).size, 600, 'each request once');
  t.equal(await proc.stop('SIGTERM'), 0);
});

t.test('two workers to a file: SIGUSR1 to the primary reopens it in every worker', async (t) => {
  const up = await upstream(t);
  const { dir, conf } = await configFor(up);
  const file = join(dir, 'access.log');
  const proc = await spawn(t, ['start', '--config', conf, '--workers', '2', '--access-log', file]);
  t.equal(await load(proc.proxyPort, 200, 8), 200);
  await waitFor(() => fileLines(file).length === 200, 'two hundred lines');
  await rename(file, `${file}.1`);
  // To the primary alone, as logrotate's postrotate does with a pid file.
  proc.child.kill('SIGUSR1');
  await waitFor(() => existsSync(file), 'the file opened anew');
  const reopened = await waitFor(() => {
    const found = proc.logs.filter((l) => l.msg === 'access log reopened');
    return found.length >= 2 ? found : null;
  }, 'both workers to reopen');
  t.same(reopened.map((l) => l.reason), ['signal', 'signal'], 'each worker reopened on the signal forwarded to it');
  t.same(new Set(reopened.map((l) => l.worker)).size, 2, 'two different workers');
  // Lines a worker writes before it hears of the signal still land whole in the old file.
  t.equal(await load(proc.proxyPort, 200, 8), 200);
  t.equal(await proc.stop('SIGTERM'), 0);
  const before = fileLines(`${file}.1`);
  const after = fileLines(file);
  t.equal(before.length + after.length, 400, 'every line, whole, in one of the files');
  t.ok(after.length >= 190, `the new file took the later lines (${after.length})`);
});

t.test('an access log path that cannot be opened stops the node before it serves, naming the field', async (t) => {
  const up = await upstream(t);
  const { conf } = await configFor(up);
  for (const workers of ['1', '2']) {
    const res = await runCli(['start', '--config', conf, '--workers', workers, '--access-log', '/nonexistent-dir/access.log']);
    t.not(res.code, 0, `refused (workers ${workers})`);
    t.match(res.stderr, /log\.access: cannot open "\/nonexistent-dir\/access\.log" for appending \(ENOENT/, res.stderr);
    t.notMatch(res.stdout, /meridian started/, 'it never served');
  }
  const bad = await runCli(['start', '--config', conf, '--access-log', '']);
  t.not(bad.code, 0, 'an empty value is refused too');
});
