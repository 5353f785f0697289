import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { cells, CLEAN_ENV, etcdWithRoutesFile, ROUTES, runOnTty } from './helpers/cli.js';
import { runCli } from './helpers/process.js';

t.test('get: kinds singular, plural and short; -o json|yaml|table; invalid objects; a table on a terminal; weights -o json', async (t) => {
  const { etcd, client, file } = await etcdWithRoutesFile(t);
  t.equal((await runCli(['apply', '-f', file, '--etcd', etcd.url], 15_000, CLEAN_ENV)).code, 0);
  const e = ['--etcd', etcd.url];
  const run = (args: string[]) => runCli([...args, ...e], 15_000, CLEAN_ENV);
  const plural = await run(['get', 'services']);
  t.same(JSON.parse(plural.stdout), { web: ROUTES.services.web }, 'piped, get prints JSON as it always did');
  t.same(JSON.parse((await run(['get', 'svc'])).stdout), JSON.parse(plural.stdout), 'svc is services');
  t.same(JSON.parse((await run(['get', 'service'])).stdout), JSON.parse(plural.stdout), 'service is services');
  t.same(JSON.parse((await run(['get', 'region', 'eu-west'])).stdout), ROUTES.regions['eu-west'], 'get region NAME');
  t.same(JSON.parse((await run(['get', 'regions', 'eu-west'])).stdout), ROUTES.regions['eu-west'], 'get regions NAME');
  t.same(JSON.parse((await run(['get', 'route', 'shop'])).stdout), ROUTES.routes.shop);
  const missing = await run(['get', 'route', 'nope']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /no route "nope" under \/meridian\/routes\//);
  const unknown = await run(['get', 'widget']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown kind "widget" \(expected region\(s\), service\(s\) or svc, route\(s\)\)/);

  const json = JSON.parse((await run(['get', '-o', 'json'])).stdout) as unknown;
  t.same(json, ROUTES, 'all kinds as one document');
  t.same(parseYaml((await run(['get', '-o', 'yaml'])).stdout), json, 'YAML holds the same document');
  t.same(parseYaml((await run(['get', 'service', 'web', '--output', 'yaml'])).stdout), ROUTES.services.web);

  const services = (await run(['get', 'services', '-o', 'table'])).stdout.trimEnd().split('\n');
  t.same(cells(services[0]), ['NAME', 'VERSIONS', 'REGIONS', 'STEERING', 'ENDPOINTS', 'DRAINED']);
  t.same(cells(services[1]), ['web', 'stable=100,canary=0', 'eu-west,us-east', 'nearest', '4', '0']);
  t.equal(services[1]?.indexOf('stable='), services[0]?.indexOf('VERSIONS'), 'columns are aligned');
  const regions = (await run(['get', 'regions', '-o', 'table'])).stdout.trimEnd().split('\n');
  t.same(cells(regions[0]), ['NAME', 'LOCATION', 'COUNTRIES', 'DRAINED', 'ENDPOINTS']);
  t.same(cells(regions[1]), ['eu-west', '53.35,-6.26', '-', 'false', '3']);
  const routes = (await run(['get', 'routes', '-o', 'table'])).stdout.trimEnd().split('\n');
  t.same(cells(routes[0]), ['NAME', 'HOSTS', 'PATH', 'SERVICE', 'REDIRECT-HTTPS']);
  t.same(routes.slice(1).map(cells).sort(), [['shop', 'shop.test', '/cart', 'web', 'false'], ['web', '*', '/', 'web', 'false']]);
  const all = (await run(['get', '-o', 'table'])).stdout;
  t.match(all, /^service\/web\s+stable=100/m, 'all kinds: names are kind/name');
  t.match(all, /^route\/shop\s/m);

  await client.put('/meridian/routes/broken').value('{"service": 7}');
  await client.put('/meridian/regions/garbled').value('not json');
  const invalid = await run(['get', '-o', 'table']);
  t.equal(invalid.code, 0, 'objects that do not validate do not fail the table');
  t.match(invalid.stdout, /^route\/broken\s+<invalid>$/m);
  t.match(invalid.stdout, /^routes\/broken: invalid: service: /m, 'the reason under the table');
  t.match(invalid.stdout, /^regions\/garbled: invalid: not JSON$/m);
  t.same((JSON.parse((await run(['get', 'regions', 'garbled'])).stdout) as object), { invalidJson: 'not json' }, 'JSON shows the stored text');
  await client.delete().prefix('/meridian/routes/broken');
  await client.delete().prefix('/meridian/regions/garbled');

  const tty = await runOnTty(['get', 'services', ...e]);
  t.match(tty, /^NAME\s+VERSIONS\s+REGIONS/m, 'on a terminal the default is a table');
  const empty = await runOnTty(['get', 'routes', '--etcd', etcd.url, '--etcd-prefix', '/empty/']);
  t.match(empty, /No routes found under \/empty\//);

  const weights = await run(['weights', 'web', 'stable=90', 'canary=10', '-o', 'json']);
  t.equal(weights.code, 0, weights.stderr);
  t.match(JSON.parse(weights.stdout), { service: 'web', weights: { stable: 90, canary: 10 }, changed: true });
  t.match((await run(['weights', 'web', 'stable=90'])).stdout, /^services\/web weights: stable=90 canary=10 \(unchanged\)\n$/, 'without -o, the one line');
});
