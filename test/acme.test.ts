import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { seal } from '../src/acme/sealed.js';
import { buildStaticConfig } from '../src/config/static-load.js';
import { getJson, send } from './helpers/client.js';
import { startEtcd } from './helpers/etcd.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { curlHttps, freePort, pebbleMissing, startPebble, type TestPebble } from './helpers/pebble.js';
import { waitFor } from './helpers/poll.js';
import { spawnMeridian } from './helpers/process.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';
import { Etcd3 } from 'etcd3';

const missing = pebbleMissing();

interface AcmeCert {
  name: string;
  issuer: string | null;
  notAfter: string | null;
  renewAt: string | null;
  lastAttempt: string | null;
  lastError: string | null;
}
interface State {
  errors: { key: string; message: string }[];
  tls: { acme: { certificates: AcmeCert[]; skipped: string[]; storage: string }; certificates: { acme?: string; fingerprint256: string }[] };
}

/** Routes sending `hosts` (and anything else) to `up`. */
function routes(up: TestUpstream, hosts: string[]): Record<string, unknown> {
  return {
    regions: { 'eu-west': { location: { lat: 53.35, lon: -6.26 } } },
    services: { web: { versions: { stable: { endpoints: { 'eu-west': [`127.0.0.1:${up.port}`] } } } } },
    routes: { web: { hosts, pathPrefix: '/', service: 'web' } },
  };
}

/** The ACME certificate of `name` in a node's state, once it has one. */
async function issued(adminPort: number, name: string, timeoutMs = 20_000): Promise<AcmeCert> {
  return waitFor(async () => {
    const state = await getJson<State>(adminPort, '/api/v1/state');
    return state.tls.acme.certificates.find((c) => c.name === name && c.notAfter !== null);
  }, `an ACME certificate for ${name}`, timeoutMs, 100);
}

/** A node's ACME order counter for `result`. */
async function orders(adminPort: number, result: 'issued' | 'failed'): Promise<number> {
  const text = (await send(adminPort, { path: '/metrics' })).body.toString();
  const line = text.split('\n').find((l) => l.startsWith(`meridian_acme_orders_total{result="${result}"}`));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

interface Ports {
  plain: number;
  tls: number;
}

/** A Meridian with ACME against `pebble` on the given ports (Pebble validates there). */
function startAcmeMeridian(up: TestUpstream, hosts: string[], pebble: TestPebble, ports: Ports, acme: Record<string, unknown>, dir?: string): Promise<TestMeridian> {
  return startTestMeridian(
    routes(up, hosts),
    {
      proxy: {
        listen: `127.0.0.1:${ports.plain}`,
        tls: { listen: `127.0.0.1:${ports.tls}`, acme: { directory: pebble.directory, email: 'ops@example.test', caFile: pebble.caFile, retryAfter: '1s', ...acme } },
      },
    },
    dir === undefined ? {} : { dir },
  );
}

/** Pebble, an upstream and a temp dir for one test, all stopped with it. */
async function setup(t: Test, validitySeconds?: number): Promise<{ pebble: TestPebble; up: TestUpstream; ports: Ports; dir: string }> {
  const ports = { plain: await freePort(), tls: await freePort() };
  const pebble = await startPebble({ httpPort: ports.plain, tlsPort: ports.tls, ...(validitySeconds === undefined ? {} : { validitySeconds }) });
  const up = await startUpstream('acme-upstream');
  const dir = mkdtempSync(join(tmpdir(), 'meridian-acme-'));
  t.teardown(async () => {
    await up.kill();
    await pebble.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { pebble, up, ports, dir };
}

t.test('configuration', async (t) => {
  const base = { proxy: { tls: { acme: { directory: 'https://ca.example.test/dir', email: 'ops@example.test' } } }, store: { file: 'routes.yaml' } };
  const config = buildStaticConfig(base);
  t.equal(config.proxy.tls?.certificates.length, 0, 'no certificate files are needed with acme');
  t.equal(config.proxy.tls?.acme?.challenge, 'http-01');
  t.equal(config.proxy.tls?.acme?.renewBefore, 30 * 24 * 3_600_000, 'renewal 30 days ahead by default');
  t.throws(() => buildStaticConfig({ ...base, proxy: { tls: {} } }), /certificates.*at least one certificate \(or acme\)/s, 'neither files nor acme');
  t.throws(() => buildStaticConfig({ ...base, proxy: { tls: { acme: { ...base.proxy.tls.acme, names: ['*.example.test'] } } } }), /wildcards cannot be proven/, 'a wildcard name is refused');
  t.throws(() => buildStaticConfig({ ...base, proxy: { tls: { acme: { ...base.proxy.tls.acme, colour: 'red' } } } }), /colour/, 'an unknown field is an error');
  t.throws(() => buildStaticConfig({ ...base, store: { etcd: { endpoints: ['http://127.0.0.1:2379'] } } }), /encryptionKey.*required with store.etcd/s, 'etcd needs an encryption key');
});

t.test('HTTP-01 on one node: issued, served, kept on disk, reused after a restart', { skip: missing ?? false, timeout: 90_000 }, async (t) => {
  const { pebble, up, ports, dir } = await setup(t);
  const storage = join(dir, 'acme');
  let m = await startAcmeMeridian(up, ['a.acme.test', '*.wild.acme.test'], pebble, ports, { storage }, dir);
  t.teardown(() => m.close());
  const cert = await issued(m.adminPort, 'a.acme.test');
  t.match(cert.issuer, /Pebble Intermediate/, 'issued by Pebble');
  t.equal(cert.lastError, null);
  const served = await curlHttps('a.acme.test', ports.tls, pebble.rootsFile);
  t.ok(served.ok, `curl verifies the issued certificate (${served.error})`);
  t.equal(served.status, 200);
  t.match(served.body, /acme-upstream/, 'the request reached the upstream');
  const state = await getJson<State>(m.adminPort, '/api/v1/state');
  t.same(state.tls.acme.skipped, ['*.wild.acme.test'], 'the wildcard route host is skipped and shown');
  t.equal(await orders(m.adminPort, 'issued'), 1, 'one order');
  t.match(await send(m.adminPort, { path: '/metrics' }), { body: /meridian_tls_certificate_expiry_seconds\{name="a\.acme\.test"\} \d+/ }, 'expiry gauge');
  t.equal(statSync(join(storage, 'certs', 'a.acme.test.key')).mode & 0o777, 0o600, 'the private key is readable by its owner only');
  t.equal(statSync(join(storage, 'account.key')).mode & 0o777, 0o600, 'so is the account key');
  // A pending token is answered; any other path under the challenge prefix is routed as usual.
  t.equal((await send(m.port, { path: '/.well-known/acme-challenge/not-pending', headers: { host: 'a.acme.test' } })).status, 200, 'an unknown token goes to the upstream');

  await m.close();
  m = await startAcmeMeridian(up, ['a.acme.test'], pebble, ports, { storage }, dir);
  const again = await issued(m.adminPort, 'a.acme.test', 5_000);
  t.equal(again.notAfter, cert.notAfter, 'the stored certificate is served after the restart');
  t.ok((await curlHttps('a.acme.test', ports.tls, pebble.rootsFile)).ok, 'and verifies');
  t.equal(await orders(m.adminPort, 'issued'), 0, 'the restarted node ordered nothing');
});

t.test('TLS-ALPN-01 on one node', { skip: missing ?? false, timeout: 60_000 }, async (t) => {
  const { pebble, up, ports, dir } = await setup(t);
  const m = await startAcmeMeridian(up, ['b.acme.test'], pebble, ports, { storage: join(dir, 'acme'), challenge: 'tls-alpn-01' }, dir);
  t.teardown(() => m.close());
  const cert = await issued(m.adminPort, 'b.acme.test');
  t.match(cert.issuer, /Pebble Intermediate/);
  const served = await curlHttps('b.acme.test', ports.tls, pebble.rootsFile);
  t.ok(served.ok, `curl verifies the certificate (${served.error})`);
  t.equal(served.status, 200);
  t.equal(await orders(m.adminPort, 'issued'), 1);
});

t.test('renewal of a short-lived certificate at two thirds of its lifetime', { skip: missing ?? false, timeout: 60_000 }, async (t) => {
  // Pebble issues 9-second certificates: renewal is due 3 seconds before expiry.
  const { pebble, up, ports, dir } = await setup(t, 9);
  const m = await startAcmeMeridian(up, ['r.acme.test'], pebble, ports, { storage: join(dir, 'acme') }, dir);
  t.teardown(() => m.close());
  const first = await issued(m.adminPort, 'r.acme.test');
  t.ok(first.renewAt !== null && first.notAfter !== null && Date.parse(first.notAfter) - Date.parse(first.renewAt) <= 3_000 + 1_000, 'renewal scheduled a third of the lifetime ahead');
  const renewed = await waitFor(async () => {
    const state = await getJson<State>(m.adminPort, '/api/v1/state');
    const cert = state.tls.acme.certificates.find((c) => c.name === 'r.acme.test');
    return cert !== undefined && cert.notAfter !== first.notAfter ? cert : undefined;
  }, 'the certificate to be renewed', 30_000, 200);
  t.ok(Date.parse(renewed.notAfter as string) > Date.parse(first.notAfter as string), 'the new certificate lasts longer');
  t.ok((await orders(m.adminPort, 'issued')) >= 2, 'a second order');
  t.ok((await curlHttps('r.acme.test', ports.tls, pebble.rootsFile)).ok, 'the renewed certificate verifies');
});

t.test('directory unreachable: the error is shown, retried, the node keeps serving', { skip: missing ?? false, timeout: 60_000 }, async (t) => {
  const up = await startUpstream('still-here');
  const dir = mkdtempSync(join(tmpdir(), 'meridian-acme-'));
  t.teardown(async () => {
    await up.kill();
    rmSync(dir, { recursive: true, force: true });
  });
  const closed = await freePort();
  const m = await startTestMeridian(routes(up, ['down.acme.test']), {
    proxy: { tls: { listen: '127.0.0.1:0', acme: { directory: `https://127.0.0.1:${closed}/dir`, email: 'ops@example.test', storage: join(dir, 'acme'), retryAfter: '1s' } } },
  }, { dir });
  t.teardown(() => m.close());
  const failed = await waitFor(async () => (await getJson<State>(m.adminPort, '/api/v1/state')).tls.acme.certificates.find((c) => c.lastError !== null), 'the failure in the state', 20_000, 100);
  t.match(failed.lastError, /ECONNREFUSED|connect/, 'the reason is shown');
  const state = await getJson<State>(m.adminPort, '/api/v1/state');
  t.ok(state.errors.some((e) => e.key === 'proxy.tls.acme.down.acme.test'), 'and listed in state.errors');
  await waitFor(async () => {
    const now = (await getJson<State>(m.adminPort, '/api/v1/state')).tls.acme.certificates.find((c) => c.name === 'down.acme.test');
    return now !== undefined && now.lastAttempt !== failed.lastAttempt;
  }, 'a retry', 20_000, 100);
  t.equal((await send(m.adminPort, { path: '/healthz' })).status, 200, 'the process is up');
  t.equal((await send(m.port, { headers: { host: 'down.acme.test' } })).status, 200, 'plaintext traffic still flows');
});

t.test('two workers: the primary orders, any worker answers and serves', { skip: missing ?? false, timeout: 60_000 }, async (t) => {
  const { pebble, up, ports, dir } = await setup(t);
  const routesFile = join(dir, 'routes.json');
  writeFileSync(routesFile, JSON.stringify(routes(up, ['w.acme.test'])));
  const configFile = join(dir, 'meridian.json');
  writeFileSync(configFile, JSON.stringify({
    node: { name: 'acme-workers' },
    proxy: { listen: `127.0.0.1:${ports.plain}`, workers: 2, tls: { listen: `127.0.0.1:${ports.tls}`, acme: { directory: pebble.directory, email: 'ops@example.test', caFile: pebble.caFile, storage: join(dir, 'acme'), retryAfter: '1s' } } },
    admin: { listen: '127.0.0.1:0' },
    store: { file: routesFile, snapshot: join(dir, 'last-good.json') },
  }));
  const m = await spawnMeridian(['start', '--config', configFile, '--log-level', 'info']);
  t.teardown(() => m.stop());
  await issued(m.adminPort, 'w.acme.test');
  for (let i = 0; i < 4; i++) {
    const served = await curlHttps('w.acme.test', ports.tls, pebble.rootsFile);
    t.ok(served.ok && served.status === 200, `request ${i} verifies (${served.error})`);
  }
  t.equal(await orders(m.adminPort, 'issued'), 1, 'one order for the node');
});

t.test('a fleet on one etcd: each name ordered once, served by every node; a wrong key is an error, not an outage', { skip: missing ?? false, timeout: 120_000 }, async (t) => {
  const etcd = await startEtcd();
  t.teardown(() => etcd.destroy());
  // Pebble validates on node A's ports; node B's orders are answered there through the shared challenges.
  const { pebble, up, ports, dir } = await setup(t);
  const keyFile = join(dir, 'acme.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'));
  const client = new Etcd3({ hosts: etcd.url });
  t.teardown(() => client.close());
  const prefix = '/meridian/';
  const names = ['c.acme.test', 'd.acme.test'];
  await client.put(`${prefix}regions/eu-west`).value(JSON.stringify({ location: { lat: 53.35, lon: -6.26 } }));
  await client.put(`${prefix}services/web`).value(JSON.stringify({ versions: { stable: { endpoints: { 'eu-west': [`127.0.0.1:${up.port}`] } } } }));
  await client.put(`${prefix}routes/web`).value(JSON.stringify({ hosts: names, pathPrefix: '/', service: 'web' }));
  const failures: string[] = [];
  const node = (name: string, listen: Ports | null, key: string): Promise<TestMeridian> =>
    startTestMeridian({}, {
      node: { name },
      proxy: {
        listen: listen === null ? '127.0.0.1:0' : `127.0.0.1:${listen.plain}`,
        tls: { listen: listen === null ? '127.0.0.1:0' : `127.0.0.1:${listen.tls}`, acme: { directory: pebble.directory, email: 'ops@example.test', caFile: pebble.caFile, encryptionKey: key, retryAfter: '1s' } },
      },
      store: { file: undefined, etcd: { endpoints: [etcd.url], prefix } },
    }, { onLog: (line) => void (line.msg === 'ACME order failed; retrying later' && failures.push(`${name}: ${String(line.err)}`)) });
  const [a, b] = await Promise.all([node('node-a', ports, keyFile), node('node-b', null, keyFile)]);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  for (const name of names) for (const m of [a, b]) await issued(m.adminPort, name, 40_000);
  const total = (await orders(a.adminPort, 'issued')) + (await orders(b.adminPort, 'issued'));
  t.equal(total, names.length, 'each name was ordered exactly once across the fleet');
  t.same(failures, [], 'no order failed: a node finding the lock taken waits for it');
  const bTls = b.meridian.tlsAddress?.port as number;
  for (const name of names) {
    t.ok((await curlHttps(name, ports.tls, pebble.rootsFile)).ok, `node A serves ${name}`);
    t.ok((await curlHttps(name, bTls, pebble.rootsFile)).ok, `node B serves ${name}`);
  }
  const stored = JSON.parse((await client.get(`${prefix}certs/c.acme.test`).string()) as string) as { key: { alg: string; data: string }; cert: string };
  t.equal(stored.key.alg, 'aes-256-gcm', 'the private key is stored encrypted');
  t.notMatch(JSON.stringify(stored), /PRIVATE KEY/, 'and never in the clear');

  // A node with another key cannot read the fleet's keys: a clear error, no order, the node stays up.
  const wrongKey = join(dir, 'wrong.key');
  writeFileSync(wrongKey, randomBytes(32).toString('hex'));
  const c = await node('node-c', null, wrongKey);
  t.teardown(() => c.close());
  const refused = await waitFor(async () => (await getJson<State>(c.adminPort, '/api/v1/state')).errors.find((e) => e.key.startsWith('proxy.tls.acme.')), 'the decryption error in state', 15_000, 100);
  t.match(refused.message, /encryptionKey is not the key it was stored with/);
  t.equal((await send(c.adminPort, { path: '/healthz' })).status, 200, 'node C is up');

  // A value sealed with another key reaches node A by watch: it keeps serving what it has.
  const before = await issued(a.adminPort, 'c.acme.test');
  await client.put(`${prefix}certs/c.acme.test`).value(JSON.stringify({ ...stored, key: seal(randomBytes(32), 'c.acme.test', 'not a key') }));
  await waitFor(async () => (await getJson<State>(a.adminPort, '/api/v1/state')).errors.some((e) => e.key === 'proxy.tls.acme.c.acme.test'), 'node A to report the unreadable value', 10_000, 100);
  t.equal((await issued(a.adminPort, 'c.acme.test')).notAfter, before.notAfter, 'node A keeps its certificate');
  t.ok((await curlHttps('c.acme.test', ports.tls, pebble.rootsFile)).ok, 'and serves it');
  t.equal((await orders(a.adminPort, 'issued')) + (await orders(b.adminPort, 'issued')), names.length, 'still one order per name');
});
