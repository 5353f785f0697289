import { writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import t from 'tap';
import { runCli } from './helpers/process.js';

t.test('validate: exit 0 for the bundled files, 1 with every problem as path: message', async (t) => {
  const ok = await runCli(['validate', 'config/routes.yaml']);
  t.equal(ok.code, 0);
  t.match(ok.stdout, /config\/routes\.yaml: valid \(routing table: 3 regions, 2 services, 3 routes\)/);
  const config = await runCli(['validate', 'config/meridian.yaml']);
  t.equal(config.code, 0, 'a static config is detected and its routes file checked too');
  t.match(config.stdout, /static configuration; routing table/);

  const dir = await mkdtemp(join(tmpdir(), 'meridian-cli-'));
  const bad = join(dir, 'bad.yaml');
  await writeFile(bad, 'regions:\n  eu: {location: {lat: 1, lon: 2}, drian: true}\nservices:\n  api:\n    timeouts: {connect: 1}\n    versions: {v1: {endpoints: {eu: ["10.0.0.1"]}}}\nroutes:\n  r: {service: api}\n');
  const res = await runCli(['validate', bad]);
  t.equal(res.code, 1);
  t.equal(res.stdout, '');
  t.same(res.stderr.trim().split('\n'), [
    'regions.eu.drian: unknown field',
    'services.api.timeouts.connect: expected a duration string such as "250ms", "5s" or "2m"',
    'services.api.versions.v1.endpoints.eu[0]: "10.0.0.1" has no port (expected host:port)',
    'routes.r.service: service "api" is disabled by its own errors',
    `${bad}: 4 problems`,
  ]);

  const staticBad = join(dir, 'meridian.yaml');
  await writeFile(staticBad, `proxy: {listen: "x"}\nstore: {file: ${bad}}\n`);
  const s = await runCli(['validate', staticBad]);
  t.equal(s.code, 1);
  t.match(s.stderr, /^proxy\.listen: "x" has no port/m);

  const json = join(dir, 'r.json');
  await writeFile(json, '{"regions": {');
  const j = await runCli(['validate', json]);
  t.equal(j.code, 1);
  t.match(j.stderr, /r\.json: invalid JSON/);
  const missing = await runCli(['validate', join(dir, 'nope.yaml')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /nope\.yaml: cannot read: ENOENT/);
});

t.test('usage errors exit 2 on stderr; --help exits 0 on stdout', async (t) => {
  for (const args of [['frobnicate'], ['validate'], ['validate', 'a', 'b'], ['start', '--bogus'], ['start', '--listen'], ['validate', 'x', '--kind', 'other'], ['start', '--log-level', 'loud']]) {
    const res = await runCli(args);
    t.equal(res.code, 2, `meridian ${args.join(' ')} exits 2`);
    t.match(res.stderr, /^meridian: /, 'with the problem on stderr');
    t.equal(res.stdout, '');
  }
  const none = await runCli([]);
  t.equal(none.code, 2, 'no command is a usage error');
  t.match(none.stdout, /Usage: meridian <command>/);
  for (const command of ['start', 'demo', 'validate']) {
    const res = await runCli([command, '--help']);
    t.equal(res.code, 0);
    t.match(res.stdout, new RegExp(`Usage: meridian ${command}`));
  }
  t.equal((await runCli(['--help'])).code, 0);
});

t.test('start: configuration errors exit 1 with every problem; a busy port exits 1 with a clear message', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meridian-cli-'));
  const conf = join(dir, 'm.yaml');
  await writeFile(conf, 'proxy: {listen: ":0", trustedProxies: [bad]}\nadmin: {listen: ":0"}\nstore: {file: nowhere.yaml}\ngeo: {networks: [{cidr: "10.0.0.0/8"}]}\n');
  const res = await runCli(['start', '--config', conf]);
  t.equal(res.code, 1);
  t.same(res.stderr.trim().split('\n').sort(), [
    'admin.token: required when the admin listener (0.0.0.0:0) is not on loopback: set a token, or listen on 127.0.0.1',
    'geo.networks[0]: give exactly one of region or location',
    'proxy.trustedProxies[0]: "bad" is not an IP address or CIDR block',
  ]);

  const routes = join(dir, 'routes.yaml');
  await writeFile(routes, 'regions: {}\nroutes: {}\n');
  const absentConf = join(dir, 'absent.yaml.conf.yaml');
  await writeFile(absentConf, `store: {file: ${join(dir, 'absent.yaml')}, snapshot: ${join(dir, 'snap.json')}}\n`);
  const noRoutes = await runCli(['start', '--config', absentConf, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--log-level', 'silent']);
  t.equal(noRoutes.code, 1, 'an unreadable routes file with no snapshot stops the start');
  t.match(noRoutes.stderr, /absent\.yaml: cannot read: ENOENT/);

  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => busy.close());
  const port = (busy.address() as { port: number }).port;
  const inUse = await runCli(['start', '--routes', routes, '--listen', `127.0.0.1:${port}`, '--admin', '127.0.0.1:0', '--log-level', 'silent']);
  t.equal(inUse.code, 1);
  t.match(inUse.stderr, /address already in use/);
});
