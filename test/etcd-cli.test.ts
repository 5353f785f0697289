import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import t from 'tap';
import { runCli } from './helpers/process.js';
import { etcdWithRoutesFile } from './helpers/cli.js';

const ROUTES = {
  regions: { 'eu-west': { location: { lat: 53.35, lon: -6.26 } }, 'us-east': { location: { lat: 38.9, lon: -77.04 } } },
  services: {
    web: {
      split: { weights: { stable: 100, canary: 0 } },
      versions: { stable: { endpoints: { 'eu-west': ['127.0.0.1:7101'] } }, canary: { endpoints: { 'eu-west': ['127.0.0.1:7111', '127.0.0.1:7112'] } } },
    },
  },
  routes: { web: { pathPrefix: '/', service: 'web' } },
};

t.test('apply, get, weights, drain against a real etcd', async (t) => {
  const { etcd, client, file } = await etcdWithRoutesFile(t, ROUTES);
  const dir = dirname(file);
  const e = ['--etcd', etcd.url];

  const dry = await runCli(['apply', '-f', file, '--dry-run', ...e]);
  t.equal(dry.code, 0, dry.stderr);
  t.match(dry.stdout, /would create \/meridian\/services\/web/);
  t.equal((await client.getAll().prefix('/meridian/').keys()).length, 0, 'a dry run writes nothing');

  const applied = await runCli(['apply', '-f', file, ...e]);
  t.equal(applied.code, 0, applied.stderr);
  t.match(applied.stdout, /created \/meridian\/regions\/eu-west/);
  t.match(applied.stdout, /4 changed, 0 unchanged \(revision \d+\)/);
  t.same(JSON.parse((await client.get('/meridian/routes/web').string()) ?? 'null'), ROUTES.routes.web, 'values are the plain JSON of each object');
  const again = await runCli(['apply', '-f', file, ...e]);
  t.match(again.stdout, /0 changed, 4 unchanged/);

  await client.put('/meridian/routes/old').value(JSON.stringify({ hosts: ['old.test'], service: 'web' }));
  const pruned = await runCli(['apply', '-f', file, '--prune', ...e]);
  t.match(pruned.stdout, /deleted \/meridian\/routes\/old/);
  t.equal(await client.get('/meridian/routes/old').string(), null);

  const bad = join(dir, 'bad.json');
  await writeFile(bad, JSON.stringify({ ...ROUTES, routes: { web: { service: 'nope' } } }));
  const refused = await runCli(['apply', '-f', bad, ...e]);
  t.equal(refused.code, 1, 'an invalid file is refused whole');
  t.match(refused.stderr, /\/meridian\/routes\/web: service: unknown service "nope" \(refused: nothing was written\)/);

  const got = await runCli(['get', 'services', 'web', ...e]);
  t.equal(got.code, 0);
  t.same(JSON.parse(got.stdout), ROUTES.services.web);
  t.equal((await runCli(['get', 'routes', 'missing', ...e])).code, 1);
  t.equal((await runCli(['get', 'widgets', ...e])).code, 2, 'an unknown kind is a usage error');

  const flipped = await runCli(['weights', 'web', 'stable=90', 'canary=10', ...e]);
  t.equal(flipped.code, 0, flipped.stderr);
  t.match(flipped.stdout, /stable=90 canary=10/);
  t.equal((await runCli(['weights', 'web', 'blue=1', ...e])).code, 1, 'an unknown version is refused');
  t.equal((await runCli(['weights', 'web', 'stable=-1', ...e])).code, 2, 'a malformed weight is a usage error');

  // Concurrent edits of different versions: both land, neither overwrites the other.
  const [a, b] = await Promise.all([runCli(['weights', 'web', 'stable=70', ...e]), runCli(['weights', 'web', 'canary=30', ...e])]);
  t.equal(a.code, 0, a.stderr);
  t.equal(b.code, 0, b.stderr);
  const web = JSON.parse((await client.get('/meridian/services/web').string()) ?? '{}') as { split: { weights: Record<string, number> } };
  t.same(web.split.weights, { stable: 70, canary: 30 }, 'compare-and-swap kept both edits');

  t.equal((await runCli(['drain', 'region', 'us-east', ...e])).code, 0);
  t.match(JSON.parse((await client.get('/meridian/regions/us-east').string()) ?? '{}'), { drain: true });
  const ep = await runCli(['drain', 'endpoint', '127.0.0.1:7111', ...e]);
  t.equal(ep.code, 0, ep.stderr);
  const drained = JSON.parse((await client.get('/meridian/services/web').string()) ?? '{}') as { versions: { canary: { endpoints: { 'eu-west': unknown[] } } } };
  t.same(drained.versions.canary.endpoints['eu-west'], [{ address: '127.0.0.1:7111', drain: true }, '127.0.0.1:7112']);
  t.match((await runCli(['undrain', 'region', 'us-east', ...e])).stdout, /undrained/);
  t.equal((await runCli(['drain', 'endpoint', '10.9.9.9:1', ...e])).code, 1, 'an endpoint no service lists is an error');

  // An https:// endpoint is found by its host:port too, and keeps its scheme.
  await client.put('/meridian/services/secure').value(JSON.stringify({ versions: { stable: { endpoints: { 'eu-west': ['https://127.0.0.1:7443', '127.0.0.1:7444'] } } } }));
  const tlsDrain = await runCli(['drain', 'endpoint', '127.0.0.1:7443', ...e]);
  t.equal(tlsDrain.code, 0, tlsDrain.stderr);
  const secure = JSON.parse((await client.get('/meridian/services/secure').string()) ?? '{}') as { versions: { stable: { endpoints: { 'eu-west': unknown[] } } } };
  t.same(secure.versions.stable.endpoints['eu-west'], [{ address: 'https://127.0.0.1:7443', drain: true }, '127.0.0.1:7444'], 'drain endpoint HOST:PORT matches https://HOST:PORT and keeps the scheme');
  t.equal((await runCli(['undrain', 'endpoint', 'https://127.0.0.1:7443', ...e])).code, 0, 'and the full URL matches it exactly');
  t.equal((await runCli(['drain', 'endpoint', 'http://127.0.0.1:7443', ...e])).code, 1, 'a scheme given must match');
});
