import { fileURLToPath } from 'node:url';
import t from 'tap';
import { routingIssues } from '../src/cli/validate.js';
import { compileTable } from '../src/routing/compile.js';
import { readConfigFile } from '../src/config/document.js';
import { formatIssue } from '../src/config/issues.js';
import { validateRoutingObjects } from '../src/config/routing-validate.js';
import { UNKNOWN_ORIGIN } from '../src/geo/origin.js';
import { servingRuntime } from '../src/proxy/runtime.js';
import { UpstreamRegistry } from '../src/proxy/upstream.js';
import type { Service, Version } from '../src/routing/table.js';
import { compileClean, groupOf, serviceOf, testHealthRegistry } from './helpers/table.js';

const EU = { 'eu-west': { location: { lat: 53.35, lon: -6.26 } } };
const TWO_REGIONS = { ...EU, 'us-east': { location: { lat: 38.9, lon: -77.04 } } };

/** A one-version service in eu-west with extra settings. */
function svc(extra: Record<string, unknown> = {}, endpoints: unknown[] = ['10.0.0.1:8080']): Record<string, unknown> {
  return { ...extra, versions: { stable: { endpoints: { 'eu-west': endpoints } } } };
}

/** Every object and reference problem of a document, as `meridian validate` prints them, sorted (whether it is a table at all is tested on its own). */
function problems(raw: unknown): string[] {
  return routingIssues(raw)
    .issues.filter((i) => i.reason !== 'empty')
    .map(formatIssue)
    .sort();
}

const DURATION_HINT = 'is not a duration such as "250ms", "5s" or "2m"';
const HOST_HINT = 'expected a host name such as api.example.com or *.example.net';

t.test('clean tables have no problems', async (t) => {
  const bundled = await readConfigFile(fileURLToPath(new URL('../config/routes.yaml', import.meta.url)));
  const result = routingIssues(bundled);
  t.same(result.issues, [], 'the bundled config/routes.yaml is valid');
  t.equal(result.counts, '3 regions, 2 services, 3 routes');

  const full = {
    regions: {
      'eu-west': { location: { lat: 53.35, lon: -6.26 }, countries: ['IE', 'GB'], drain: false, edge: { ipv4: ['203.0.113.10'], ipv6: ['2001:db8::10'] } },
      'us-east': { location: { lat: 38.9, lon: -77.04 } },
    },
    services: {
      api: {
        steering: 'weighted',
        failover: ['eu-west', 'us-east'],
        regionWeights: { 'eu-west': 70, 'us-east': 30 },
        healthCheck: { path: '/healthz', interval: '5s', timeout: '2s', healthyThreshold: 2, unhealthyThreshold: 3 },
        retries: { attempts: 2, perTryTimeout: '5s' },
        timeouts: { connect: '1.5s', request: '2m' },
        whenAllDown: 'fail',
        split: { weights: { stable: 99, canary: 1 }, sticky: { cookie: 'mrd-bucket' }, override: { header: 'X-Meridian-Version' } },
        versions: {
          stable: {
            endpoints: {
              'eu-west': ['10.0.1.10:8080', { address: '10.0.1.11:8080', weight: 2, drain: false }],
              'us-east': ['10.0.2.10:8080', '[2001:db8::1]:8080', 'api-1.internal:8080'],
            },
          },
          canary: { endpoints: { 'eu-west': ['10.0.1.20:8080'] } },
        },
      },
    },
    routes: {
      api: { hosts: ['api.example.com', '*.example.net'], pathPrefix: '/', service: 'api' },
      apiV2: { hosts: ['API.Example.com.'], pathPrefix: '/v2/', service: 'api' },
      any: { service: 'api' },
    },
  };
  t.same(problems(full), [], 'every field of the contract example, in use at once, is accepted');
  const api = serviceOf(compileClean(full), 'api');
  t.equal(api.connectTimeoutMs, 1_500, '"1.5s" compiles to 1500 ms');
  t.equal(api.requestTimeoutMs, 120_000, '"2m" compiles to 120000 ms');
  t.equal(api.failWhenAllDown, true);
});

t.test('a document is a routing table only when it is not empty and has a routes section', async (t) => {
  for (const empty of [null, undefined, {}]) {
    t.same(routingIssues(empty).issues.map(formatIssue), ['the routing table is empty (an empty file, or one still being written?)'], `${JSON.stringify(empty)} is refused`);
  }
  const noRoutes = routingIssues({ regions: EU, services: { web: svc() } }).issues;
  t.same(noRoutes.map((i) => [i.path, i.reason]), [['routes', 'empty']], 'a table without a routes section is refused');
  t.same(routingIssues({ regions: EU, services: { web: svc() }, routes: {} }).issues, [], '"routes: {}" serves nothing on purpose and is accepted');
});

t.test('unknown fields are rejected at their path', async (t) => {
  t.same(
    problems({
      servics: {},
      regions: { 'eu-west': { location: { lat: 53, lon: -6 }, lcation: 1 } },
      services: { api: svc({ retries: { atempts: 2 }, healthcheck: {} }, ['10.0.0.1:80', { address: '10.0.0.2:80', wieght: 2 }]) },
      routes: { r: { service: 'api', path: '/' } },
    }),
    [
      'regions.eu-west.lcation: unknown field',
      'routes.r.path: unknown field',
      'services.api.healthcheck: unknown field',
      'services.api.retries.atempts: unknown field',
      'services.api.versions.stable.endpoints.eu-west[1].wieght: unknown field',
      'servics: unknown field (expected regions, services or routes)',
    ].sort(),
  );
});

t.test('durations must be strings like 250ms, 5s, 2m', async (t) => {
  t.same(
    problems({
      regions: EU,
      services: {
        a: svc({ timeouts: { connect: '5 s', request: '5' } }),
        b: svc({ healthCheck: { interval: '-1s', timeout: 5 } }),
        c: svc({ timeouts: { connect: '0s' }, retries: { perTryTimeout: '1.5x' } }),
        ok: svc({ timeouts: { connect: '250ms', request: '0ms' }, healthCheck: { interval: '2m', timeout: '1.5s' }, retries: { perTryTimeout: '1h' } }),
      },
    }),
    [
      `services.a.timeouts.connect: "5 s" ${DURATION_HINT}`,
      `services.a.timeouts.request: "5" ${DURATION_HINT}`,
      `services.b.healthCheck.interval: "-1s" ${DURATION_HINT}`,
      'services.b.healthCheck.timeout: expected a duration string such as "250ms", "5s" or "2m"',
      `services.c.retries.perTryTimeout: "1.5x" ${DURATION_HINT}`,
      'services.c.timeouts.connect: must be greater than 0',
    ].sort(),
  );
});

t.test('endpoint addresses are host:port or [v6]:port with a port in 1-65535, optionally http:// or https://', async (t) => {
  const eps = ['10.0.0.1', '10.0.0.1:99999', 'bad host:80', '::1:80', ':8080', { address: 'x:0' }, { address: '10.0.0.2:80', weight: 0 }, 42, '[::1]:80', 'api.internal:8080', 'ftp://x:80', 'http://x:80', 'https://[::1]:443/'];
  const found = problems({ regions: EU, services: { a: svc({}, eps) } });
  const at = (i: number, rest = ''): string => `services.a.versions.stable.endpoints.eu-west[${i}]${rest}`;
  t.same(
    found.filter((p) => !p.startsWith(at(10))),
    [
      `${at(0)}: "10.0.0.1" has no port (expected host:port)`,
      `${at(1)}: port 99999 is out of range 1-65535`,
      `${at(2)}: "bad host" is not a valid host name or IP address`,
      `${at(3)}: "::1:80": write IPv6 addresses in brackets, as [::1]:8080`,
      `${at(4)}: ":8080" has no host`,
      `${at(5, '.address')}: port 0 is out of range 1-65535`,
      `${at(6, '.weight')}: Too small: expected number to be >=1`,
      `${at(7)}: Invalid input: expected string, received number`,
    ].sort(),
    'each bad address is reported at its index; [::1]:80, api.internal:8080, http:// and https:// URLs are fine',
  );
  t.same(found.filter((p) => p.startsWith(`${at(10)}:`)), [`${at(10)}: "ftp://x:80": an endpoint is host:port, http://host:port or https://host:port`], 'only http and https URLs are endpoints');
});

t.test('references to regions, services and versions must resolve', async (t) => {
  t.same(
    problems({
      regions: EU,
      services: {
        a: {
          steering: 'failover',
          failover: ['eu-west', 'mars'],
          regionWeights: { venus: 1 },
          versions: { stable: { endpoints: { 'eu-west': ['10.0.0.1:80'], pluto: ['10.0.0.2:80'] } } },
        },
        b: svc({ split: { weights: { stable: 1, beta: 2 } } }),
      },
      routes: { r: { service: 'nope' } },
    }),
    [
      'routes.r.service: unknown service "nope"',
      'services.a.failover[1]: unknown region "mars"',
      'services.a.regionWeights.venus: unknown region "venus"',
      'services.a.versions.stable.endpoints.pluto: unknown region "pluto"',
      'services.b.split.weights.beta: unknown version "beta"',
    ].sort(),
  );
});

t.test('split rules', async (t) => {
  const two = (split: unknown, canary: Record<string, unknown[]> = { 'eu-west': ['10.0.0.2:80'] }): Record<string, unknown> => ({
    ...(split === undefined ? {} : { split }),
    versions: { stable: { endpoints: { 'eu-west': ['10.0.0.1:80'] } }, canary: { endpoints: canary } },
  });
  t.same(
    problems({
      regions: EU,
      services: {
        noSplit: two(undefined),
        allZero: two({ weights: { stable: 0, canary: 0 } }),
        emptyCanary: two({ weights: { stable: 50, canary: 50 } }, {}),
        bothSticky: two({ weights: { stable: 1, canary: 1 }, sticky: { cookie: 'a', header: 'b' } }),
        badCookie: two({ weights: { stable: 1, canary: 1 }, sticky: { cookie: 'a b' } }),
        negative: two({ weights: { stable: -1, canary: 1 } }),
        okZeroCanary: two({ weights: { stable: 1, canary: 0 } }, {}),
        okMissingWeight: two({ weights: { stable: 1 } }),
      },
    }),
    [
      'services.allZero.split.weights: at least one weight must be above 0',
      'services.badCookie.split.sticky.cookie: expected a cookie name',
      'services.bothSticky.split.sticky.header: unknown field',
      'services.emptyCanary.versions.canary: has weight above 0 but no endpoints',
      'services.negative.split.weights.stable: Too small: expected number to be >=0',
      'services.noSplit.split: split.weights is required when a service has more than one version',
    ].sort(),
    'a canary at weight 0 may have no endpoints; a version left out of the weights has weight 0',
  );
});

t.test('duplicates: one route per host and path prefix, one endpoint per address', async (t) => {
  t.same(
    problems({
      regions: EU,
      services: { a: svc(), b: svc({}, ['10.0.0.1:80', { address: '10.0.0.1:80', weight: 2 }, '10.0.0.2:80']) },
      routes: {
        a1: { hosts: ['api.example.com'], service: 'a' },
        a2: { hosts: ['API.example.com.'], pathPrefix: '/', service: 'a' },
        b1: { service: 'a', pathPrefix: '/x' },
        b2: { service: 'a', pathPrefix: '/x' },
        c1: { service: 'a', hosts: ['x.test', 'y.test'], pathPrefix: '/y' },
        c2: { service: 'a', hosts: ['y.test'], pathPrefix: '/y' },
        w1: { service: 'a', hosts: ['*.example.net'] },
        w2: { service: 'a', hosts: ['*.EXAMPLE.net'] },
        okOtherPrefix: { service: 'a', hosts: ['y.test'], pathPrefix: '/z' },
        okHostless: { service: 'a', pathPrefix: '/y' },
      },
    }),
    [
      'routes.a2: host and path prefix "api.example.com /" already belong to route "a1"',
      'routes.b2: host and path prefix "* /x" already belong to route "b1"',
      'routes.c2: host and path prefix "y.test /y" already belong to route "c1"',
      'routes.w2: host and path prefix "*.example.net /" already belong to route "w1"',
      'services.b.versions.stable.endpoints.eu-west[1]: duplicate endpoint 10.0.0.1:80',
    ].sort(),
    'hosts compare case-insensitively and without a trailing dot; other prefixes and host-less routes do not clash',
  );
});

t.test('steering settings', async (t) => {
  t.same(
    problems({
      regions: TWO_REGIONS,
      services: {
        noList: svc({ steering: 'failover' }),
        emptyList: svc({ steering: 'failover', failover: [] }),
        noWeights: svc({ steering: 'weighted' }),
        zeroWeights: svc({ steering: 'weighted', regionWeights: { 'eu-west': 0, 'us-east': 0 } }),
        unknownKind: svc({ steering: 'closest' }),
        ok: svc({ steering: 'failover', failover: ['us-east'] }),
      },
    }),
    [
      'services.emptyList.failover: steering: failover needs a failover list of regions',
      'services.noList.failover: steering: failover needs a failover list of regions',
      'services.noWeights.regionWeights: steering: weighted needs regionWeights with a weight above 0',
      'services.unknownKind.steering: Invalid option: expected one of "nearest"|"latency"|"failover"|"weighted"',
      'services.zeroWeights.regionWeights: steering: weighted needs regionWeights with a weight above 0',
    ].sort(),
    'a failover list may name a region where the service has no endpoints',
  );
});

t.test('route paths and host patterns', async (t) => {
  t.same(
    problems({
      regions: EU,
      services: { a: svc() },
      routes: {
        p1: { pathPrefix: 'api', service: 'a' },
        p2: { pathPrefix: '/a?b', service: 'a' },
        p3: { pathPrefix: '/a#b', service: 'a' },
        h1: { hosts: ['a.*.com'], service: 'a' },
        h2: { hosts: ['ok.example.com', '*'], service: 'a' },
        h3: { hosts: ['exa mple.com', 'http://x.com', '**.x.com', 'x.com/'], service: 'a' },
        ok: { hosts: ['*.Example.NET', 'localhost', 'a-b.c_d.test'], pathPrefix: '/v1/', service: 'a' },
        'bad name': { service: 'a' },
      },
    }),
    [
      `routes.h1.hosts[0]: ${HOST_HINT}`,
      `routes.h2.hosts[1]: ${HOST_HINT}`,
      `routes.h3.hosts[0]: ${HOST_HINT}`,
      `routes.h3.hosts[1]: ${HOST_HINT}`,
      `routes.h3.hosts[2]: ${HOST_HINT}`,
      `routes.h3.hosts[3]: ${HOST_HINT}`,
      'routes.p1.pathPrefix: must start with "/"',
      'routes.p2.pathPrefix: a path prefix cannot contain "?" or "#"',
      'routes.p3.pathPrefix: a path prefix cannot contain "?" or "#"',
      'routes.bad name: invalid name: names use letters, digits, ".", "_" and "-", start with a letter or digit, at most 63 characters',
    ].sort(),
  );
});

t.test('region fields and document shape', async (t) => {
  t.same(
    problems({
      regions: { 'eu-west': { location: { lat: 91, lon: -6 }, countries: ['ie'], edge: { ipv4: ['::1'], ipv6: ['10.0.0.1'] } }, 'no-location': {} },
      services: { a: { versions: {} } },
    }),
    [
      'regions.eu-west.countries[0]: expected an ISO 3166-1 alpha-2 code such as IE',
      'regions.eu-west.edge.ipv4[0]: expected an IPv4 address',
      'regions.eu-west.edge.ipv6[0]: expected an IPv6 address',
      'regions.eu-west.location.lat: Too big: expected number to be <=90',
      'regions.no-location.location: Invalid input: expected object, received undefined',
      'services.a.versions: at least one version',
    ].sort(),
  );
  t.same(problems([1]), ['a routing table is a mapping with regions, services and routes'], 'a list is not a routing table (no path prefix)');
  t.same(problems({ regions: [], services: 'x' }), ['regions: expected a mapping of regions by name', 'services: expected a mapping of services by name']);
});

t.test('a document with many problems reports all of them at once', async (t) => {
  const doc = {
    regions: { ...EU, broken: { location: { lat: 0, lon: 0 }, colour: 'red' } },
    services: {
      api: svc({ retries: { atempts: 3 }, timeouts: { connect: '5 s' } }),
      web: svc({}, ['10.0.0.1']),
      geo: { steering: 'failover', versions: { stable: { endpoints: { 'eu-west': ['10.0.0.4:80'], mars: ['10.0.0.2:80'] } } } },
      shop: { split: { weights: { stable: 1, beta: 1 } }, versions: { stable: { endpoints: { 'eu-west': ['10.0.0.3:80', '10.0.0.3:80'] } }, canary: { endpoints: {} } } },
      fine: svc(),
    },
    routes: {
      r1: { hosts: ['a.*.com'], service: 'fine' },
      r2: { pathPrefix: 'x', service: 'fine' },
      r3: { service: 'missing' },
      r4: { service: 'api' },
      dup1: { hosts: ['fine.test'], service: 'fine' },
      dup2: { hosts: ['fine.test'], service: 'fine' },
    },
  };
  const { issues, counts } = routingIssues(doc);
  t.same(
    issues.map(formatIssue).sort(),
    [
      'regions.broken.colour: unknown field',
      'routes.dup2: host and path prefix "fine.test /" already belong to route "dup1"',
      `routes.r1.hosts[0]: ${HOST_HINT}`,
      'routes.r2.pathPrefix: must start with "/"',
      'routes.r3.service: unknown service "missing"',
      'routes.r4.service: service "api" is disabled by its own errors',
      'services.geo.failover: steering: failover needs a failover list of regions',
      'services.geo.versions.stable.endpoints.mars: unknown region "mars"',
      'services.api.retries.atempts: unknown field',
      `services.api.timeouts.connect: "5 s" ${DURATION_HINT}`,
      'services.shop.split.weights.beta: unknown version "beta"',
      'services.shop.versions.stable.endpoints.eu-west[1]: duplicate endpoint 10.0.0.3:80',
      'services.web.versions.stable.endpoints.eu-west[0]: "10.0.0.1" has no port (expected host:port)',
    ].sort(),
    'schema problems of every object and the cross-reference problems of the valid ones, together',
  );
  t.equal(counts, '1 regions, 1 services, 1 routes', 'only what is valid would be in the table');
});

t.test('valid objects survive beside invalid ones in compileTable output', async (t) => {
  const raw = {
    regions: { ...EU, broken: { location: { lat: 100, lon: 0 } } },
    services: {
      good: svc(),
      bad: svc({ retries: { atempts: 1 } }),
      usesBroken: { versions: { stable: { endpoints: { broken: ['10.0.0.9:80'] } } } },
      alsoGood: svc({}, ['10.0.0.5:80']),
    },
    routes: {
      good: { hosts: ['api.example.com'], service: 'good' },
      alsoGood: { pathPrefix: '/also/', service: 'alsoGood' },
      toBad: { hosts: ['bad.example.com'], service: 'bad' },
      toBroken: { service: 'usesBroken' },
      toNothing: { service: 'nothing' },
    },
  };
  const { doc, issues, rejected } = validateRoutingObjects(raw);
  t.same([...rejected].sort(), ['regions.broken', 'services.bad'], 'schema failures reject just their own objects');
  t.same(Object.keys(doc.services).sort(), ['alsoGood', 'good', 'usesBroken']);
  const upstreams = new UpstreamRegistry();
  const health = testHealthRegistry();
  const compiled = compileTable(doc, {
    revision: 7,
    source: 'etcd',
    rejected,
    node: UNKNOWN_ORIGIN,
    bindings: servingRuntime(upstreams, health),
  });
  const table = compiled.table;
  t.same([...table.regions.keys()], ['eu-west']);
  t.same([...table.services.keys()].sort(), ['alsoGood', 'good'], 'a service referring to a rejected region is left out; the others compile');
  t.same([...table.routes.keys()].sort(), ['alsoGood', 'good'], 'routes to valid services compile');
  t.equal(table.matcher.match('api.example.com', '/x')?.name, 'good', 'and the surviving table routes');
  t.equal(table.matcher.match('other.test', '/also/1')?.name, 'alsoGood');
  t.equal(table.matcher.match('bad.example.com', '/'), null, 'the route to the rejected service is not in the table');
  t.same(
    [...issues, ...compiled.issues].map(formatIssue).sort(),
    [
      'regions.broken.location.lat: Too big: expected number to be <=90',
      'routes.toBad.service: service "bad" is disabled by its own errors',
      'routes.toBroken.service: service "usesBroken" is disabled by its own errors',
      'routes.toNothing.service: unknown service "nothing"',
      'services.bad.retries.atempts: unknown field',
      'services.usesBroken.versions.stable.endpoints.broken: region "broken" is disabled by its own errors',
    ].sort(),
    'every left-out object is explained, references to rejected objects say so',
  );
  t.same(table.issues.map(formatIssue).sort(), compiled.issues.map(formatIssue).sort(), 'the table carries its compile issues');
  t.equal(table.revision, 7);
  t.equal(table.source, 'etcd');
  t.ok(Object.isFrozen(table) && Object.isFrozen(table.issues), 'the compiled table is frozen');
});

t.test('per-node limits are divided among the processes serving the node', async (t) => {
  const raw = {
    regions: EU,
    services: { web: svc({ limits: { maxConcurrentPerEndpoint: 5 }, retries: { budget: { percent: 20, minConcurrent: 3 } } }) },
    routes: { web: { service: 'web' } },
  };
  const { doc } = validateRoutingObjects(raw);
  const compile = (processes: number): Service => {
    const upstreams = new UpstreamRegistry();
    const table = compileTable(doc, { revision: 1, source: 'file', node: UNKNOWN_ORIGIN, bindings: servingRuntime(upstreams, testHealthRegistry()), processes }).table;
    return serviceOf(table, 'web');
  };
  const one = compile(1);
  const two = compile(2);
  const endpointOf = (s: Service): number => groupOf(s.versions.get('stable') as Version, 'eu-west').endpoints[0]?.maxConcurrent ?? 0;
  t.equal(endpointOf(one), 5, 'one process applies the whole limit');
  t.equal(endpointOf(two), 3, 'each of two applies its share, rounded up');
  t.same(one.retryBudget, { percent: 20, minConcurrent: 3 });
  t.same(two.retryBudget, { percent: 20, minConcurrent: 2 }, 'the budget percentage holds in each; minConcurrent is shared');
});
