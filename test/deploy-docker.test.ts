import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parse, stringify } from 'yaml';
import { buildStaticConfig } from '../src/config/static-load.js';
import { parseDurationMs } from '../src/config/duration.js';
import { parseDockerfile, type Instruction } from './helpers/dockerfile.js';
import { freePort } from './helpers/etcd.js';
import { waitFor } from './helpers/poll.js';
import { CLI, ROOT, spawnMeridian } from './helpers/process.js';

const run = promisify(execFile);
const steps = parseDockerfile(join(ROOT, 'Dockerfile'));
const finalStage = Math.max(...steps.map((s) => s.stage));
const runtime = steps.filter((s) => s.stage === finalStage);
const only = (keyword: string, from: readonly Instruction[] = runtime): Instruction => {
  const found = from.filter((s) => s.keyword === keyword);
  if (found.length !== 1) throw new Error(`expected one ${keyword} in the runtime stage, found ${found.length}`);
  return found[0] as Instruction;
};
/** Where the runtime stage copies each build-context file to (destination -> source). */
const copied = new Map(runtime.filter((s) => s.keyword === 'COPY' && s.flags.from === undefined).flatMap((s) => s.args.slice(0, -1).map((src) => [s.args.at(-1) as string, src] as const)));
const dockerConfig = (): Record<string, Record<string, unknown>> => parse(readFileSync(join(ROOT, 'config/docker.yaml'), 'utf8')) as Record<string, Record<string, unknown>>;
const healthcheck = only('HEALTHCHECK');
const configPath = healthcheck.args[healthcheck.args.indexOf('--config') + 1] ?? '';

t.test('every COPY source of the build context exists', async (t) => {
  for (const step of steps.filter((s) => s.keyword === 'COPY' && s.flags.from === undefined)) {
    for (const source of step.args.slice(0, -1)) {
      const exists = existsSync(join(ROOT, source));
      // The dashboard's files arrive with the dashboard; until then the build would stop here.
      t.ok(exists, `COPY ${source}`, source === 'assets' && !exists ? { todo: 'assets/ comes with the admin dashboard' } : {});
    }
  }
  t.ok(runtime.some((s) => s.keyword === 'COPY' && s.flags.from === undefined && s.args[0] === 'assets' && s.args[1] === './assets'), 'the runtime stage copies assets/ from the build context');
});

t.test('the HEALTHCHECK runs meridian ready on the configuration the image starts with', async (t) => {
  t.ok(healthcheck.execForm, 'exec form: no shell needed');
  t.same(healthcheck.args.slice(0, 3), ['node', '/app/dist/cli.js', 'ready']);
  const entry = only('ENTRYPOINT');
  t.same(entry.args, ['node', '/app/dist/cli.js'], 'the same program as the entrypoint');
  t.equal(only('WORKDIR').args[0], '/app');
  t.equal((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: { meridian: string } }).bin.meridian, 'dist/cli.js', '/app/dist/cli.js is the meridian bin');
  t.same(only('CMD').args, ['start', '--config', configPath], 'it starts on the configuration the health check reads');
  t.equal(copied.get(configPath), 'config/docker.yaml', 'which the image copies from config/docker.yaml');
  const timeoutMs = parseDurationMs(healthcheck.flags.timeout ?? '30s') ?? 0;
  t.ok(timeoutMs > 2000, 'the check has longer than meridian ready\'s own 2 s timeout');
});

t.test('EXPOSE covers the ports of config/docker.yaml; DNS is above 1024 for the unprivileged user', async (t) => {
  const config = buildStaticConfig(dockerConfig());
  const exposed = runtime.filter((s) => s.keyword === 'EXPOSE').flatMap((s) => s.args.map((p) => (p.includes('/') ? p : `${p}/tcp`)));
  const wanted = [`${config.proxy.listen.port}/tcp`, `${config.admin.listen.port}/tcp`];
  if (config.dns !== undefined) wanted.push(`${config.dns.listen.port}/udp`, `${config.dns.listen.port}/tcp`);
  if (config.proxy.tls !== undefined) wanted.push(`${config.proxy.tls.listen.port}/tcp`);
  t.ok(config.dns !== undefined, 'the image answers GeoDNS');
  for (const port of wanted) t.ok(exposed.includes(port), `EXPOSE ${port}`);
  t.equal(only('USER').args[0], 'node');
  for (const listen of [config.proxy.listen, config.admin.listen, ...(config.dns === undefined ? [] : [config.dns.listen])]) t.ok(listen.port >= 1024, `${listen.port}: the node user can bind it`);
  t.ok(['127.0.0.1', '::1'].includes(config.admin.listen.host) || config.admin.token !== '', 'admin is on loopback or has a token');
  t.equal(config.admin.token, '', 'no secret in the image\'s configuration');
  t.equal(copied.get(config.store.file as string), 'config/routes.yaml', 'the routes file the config names is in the image');
  t.ok(config.store.snapshot.startsWith('/var/lib/meridian/'), 'the snapshot goes to the directory the node user owns');
});

t.test('the HEALTHCHECK command against a node on config/docker.yaml (free loopback ports): 0 when ready, 1 while draining', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-docker-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const raw = dockerConfig();
  const adminPort = await freePort();
  // Only addresses and paths change: the same file otherwise, shutdownDelay included.
  raw.proxy = { ...raw.proxy, listen: '127.0.0.1:0' };
  raw.admin = { ...raw.admin, listen: `127.0.0.1:${adminPort}` };
  raw.dns = { ...raw.dns, listen: '127.0.0.1:0' };
  raw.store = { ...raw.store, file: join(ROOT, copied.get(raw.store?.file as string) ?? ''), snapshot: join(dir, 'last-good.json') };
  const configFile = join(dir, 'meridian.yaml');
  writeFileSync(configFile, stringify(raw));
  const inImage = (args: readonly string[]): string[] => args.map((a) => (a === '/app/dist/cli.js' ? CLI : a === configPath ? configFile : a));
  const node = await spawnMeridian(inImage(only('CMD').args), { cwd: dir });
  t.teardown(() => node.stop('SIGKILL'));
  t.equal(node.adminPort, adminPort);
  const [program = '', ...args] = inImage(healthcheck.args);
  t.equal(program, 'node');
  const check = (): Promise<{ code: number; stdout: string; stderr: string }> =>
    run(process.execPath, args, { timeout: 10_000 }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
    );
  const healthy = await check();
  t.equal(healthy.code, 0, healthy.stderr);
  t.equal(healthy.stdout, `ready (127.0.0.1:${adminPort})\n`);
  node.child.kill('SIGTERM');
  const draining = await waitFor(async () => {
    const r = await check();
    return r.code === 1 ? r : null;
  }, 'the health check to fail during proxy.shutdownDelay', 10_000, 100);
  t.match(draining.stderr, /not ready: shutting down/);
  // No second signal: that one would mean "stop now".
  await waitFor(() => node.child.exitCode !== null, 'the node to exit after its shutdown delay', 30_000, 100);
  t.equal(node.child.exitCode, 0, 'then the node stops cleanly');
});
