import t from 'tap';
import { parseDurationMs, formatDuration } from '../src/config/duration.js';
import { ConfigError, formatIssue } from '../src/config/issues.js';
import { buildStaticConfig } from '../src/config/static-load.js';
import { startMeridian } from '../src/main.js';
import { createLogger } from '../src/observability/logger.js';

function problems(raw: unknown, flags = {}): string[] {
  try {
    buildStaticConfig(raw, flags);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map(formatIssue).sort();
  }
}

t.test('durations', async (t) => {
  t.equal(parseDurationMs('250ms'), 250);
  t.equal(parseDurationMs('5s'), 5000);
  t.equal(parseDurationMs('1.5s'), 1500);
  t.equal(parseDurationMs('2m'), 120_000);
  t.equal(parseDurationMs('1h'), 3_600_000);
  for (const bad of ['5', '5 s', '-1s', 's', '1d', '', '1e3ms', '5sec']) t.equal(parseDurationMs(bad), null, `"${bad}" is refused`);
  t.equal(formatDuration(5000), '5s');
  t.equal(formatDuration(1500), '1500ms');
  t.equal(formatDuration(120_000), '2m');
});

t.test('defaults fill a minimal configuration and the result is frozen', async (t) => {
  const config = buildStaticConfig({ store: { file: 'routes.yaml' } });
  t.same(config.proxy.listen, { host: '0.0.0.0', port: 8080 });
  t.same(config.admin.listen, { host: '127.0.0.1', port: 9901 });
  t.same(config.proxy.trustedProxies, [], 'nobody is trusted by default');
  t.equal(config.proxy.headersTimeout, 10_000);
  t.equal(config.store.snapshot, `.meridian/${config.node.name}/last-good.json`, 'the snapshot path is per node');
  t.equal(buildStaticConfig({ node: { name: 'edge-2' }, store: { file: 'r.yaml' } }).store.snapshot, '.meridian/edge-2/last-good.json');
  t.equal(buildStaticConfig({ store: { file: 'r.yaml', snapshot: '/var/lib/m.json' } }).store.snapshot, '/var/lib/m.json', 'an explicit path is kept');
  t.equal(config.admin.token, '');
  t.ok(config.node.name.length > 0, 'the node name defaults to the host name');
  t.ok(Object.isFrozen(config.proxy), 'validated config is frozen');
});

t.test('every problem is reported at once as path: message; unknown fields are errors', async (t) => {
  t.same(
    problems({
      node: { name: 'edge 1', location: { lat: 91, lon: 0 } },
      proxy: { listen: 'localhost', trustedProxies: ['10.0.0.0/33', 'nope'], debugHeader: true, headersTimeout: 5 },
      admin: { listen: ':99999' },
      store: { file: 'a.yaml', etcd: {} },
      geo: { networks: [{ cidr: '10.0.0.0/8', region: 'eu', location: { lat: 1, lon: 1 } }] },
      extra: 1,
    }),
    [
      'admin.listen: port 99999 is out of range 0-65535',
      'extra: unknown field',
      'geo.networks[0]: give exactly one of region or location',
      'node.location.lat: Too big: expected number to be <=90',
      'node.name: names use letters, digits, ".", "_" and "-", start with a letter or digit, at most 63 characters',
      'proxy.debugHeader: unknown field',
      'proxy.headersTimeout: expected a duration string such as "250ms", "5s" or "2m"',
      'proxy.listen: "localhost" has no port (expected host:port)',
      'proxy.trustedProxies[0]: "10.0.0.0/33" has a prefix length out of range 0-32',
      'proxy.trustedProxies[1]: "nope" is not an IP address or CIDR block',
      'store: set either store.file or store.etcd, not both',
    ],
  );
  t.same(problems({ proxy: { headersTimeout: '20s', requestTimeout: '10s' }, store: { file: 'r.yaml' } }), ['proxy.headersTimeout: headersTimeout cannot exceed requestTimeout']);
  t.same(problems({}), ['store: set store.file or store.etcd (or pass --routes FILE / --etcd URL)']);
  t.same(problems([1, 2]), ['the configuration must be a mapping of sections (node, proxy, admin, ...)']);
});

t.test('flags override the file and their errors name the flag', async (t) => {
  const config = buildStaticConfig(
    { proxy: { listen: '0.0.0.0:80' }, store: { file: 'a.yaml' } },
    { listen: '127.0.0.1:0', admin: '[::1]:9000', routes: 'b.yaml', nodeName: 'edge-2', region: 'us-east' },
  );
  t.same(config.proxy.listen, { host: '127.0.0.1', port: 0 });
  t.same(config.admin.listen, { host: '::1', port: 9000 });
  t.equal(config.store.file, 'b.yaml');
  t.equal(config.node.name, 'edge-2');
  t.equal(config.node.region, 'us-east');
  const viaEtcd = buildStaticConfig({ store: { file: 'a.yaml' } }, { etcd: 'http://127.0.0.1:2379,http://127.0.0.2:2379', etcdPrefix: '/edge/' });
  t.equal(viaEtcd.store.file, undefined, '--etcd replaces the file store');
  t.same(viaEtcd.store.etcd?.endpoints, ['http://127.0.0.1:2379', 'http://127.0.0.2:2379']);
  t.equal(viaEtcd.store.etcd?.prefix, '/edge/');
  t.same(problems({ store: { file: 'a.yaml' } }, { listen: 'nowhere' }), ['--listen: "nowhere" has no port (expected host:port)']);
  t.same(problems({ store: { file: 'a.yaml' } }, { etcdPrefix: '/x/' }), ['--etcd-prefix: needs an etcd store (--etcd or store.etcd)']);
  t.same(problems({ store: { file: 'a.yaml' } }, { dnsListen: ':53' }), ['--dns-listen: needs a dns section with zones in the config file']);
  t.same(problems({ store: { file: 'a.yaml' } }, { tlsListen: ':8443' }), ['--tls-listen: needs a proxy.tls section with certificates (or acme) in the config file']);
  t.same(problems({ store: { file: 'a.yaml' }, proxy: { tls: { certificates: [{ cert: 'c', key: 'k' }] } } }, { tlsListen: 'nowhere' }), ['--tls-listen: "nowhere" has no port (expected host:port)']);
  t.equal(buildStaticConfig({ store: { file: 'a.yaml' }, proxy: { tls: { certificates: [{ cert: 'c', key: 'k' }] } } }, { tlsListen: '127.0.0.1:9443' }).proxy.tls?.listen.port, 9443, '--tls-listen sets proxy.tls.listen');
  t.same(problems({}, { routes: 'a.yaml', etcd: 'http://x:1' }), ['--routes: cannot be combined with --etcd']);
  t.same(problems({ store: { file: 'a.yaml' } }, { etcd: 'ftp://x' }), ['--etcd[0]: expected an http:// or https:// URL']);
});

t.test('parts that cannot start are refused clearly, naming their field', async (t) => {
  const logger = createLogger('silent');
  const cases: [Record<string, unknown>, string][] = [
    [{ store: { etcd: { endpoints: ['http://127.0.0.1:1'], startupTimeout: '500ms' } } }, 'store.etcd'],
    [{ geo: { mmdb: 'no-such-GeoLite2-City.mmdb' } }, 'geo.mmdb'],
  ];
  for (const [raw, path] of cases) {
    const config = buildStaticConfig({ store: { file: 'routes.yaml' }, ...raw });
    const err = await startMeridian(config, { logger, defaultMetrics: false }).then(
      () => null,
      (e: unknown) => e,
    );
    t.ok(err instanceof ConfigError, `${path} is refused`);
    t.equal((err as ConfigError).issues[0]?.path, path);
  }
});
