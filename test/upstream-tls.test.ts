import { mkdtemp, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { send, type TestResponse } from './helpers/client.js';
import { rawConnect } from './helpers/data-plane.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { spawnMeridian } from './helpers/process.js';
import { makeTestCertificates, startTlsUpstream, type TestCertificates, type TlsUpstream } from './helpers/tls.js';
import { startUpstream } from './helpers/upstream.js';

const REGIONS = {
  'eu-west': { location: { lat: 53.35, lon: -6.26 } },
  'us-east': { location: { lat: 38.9, lon: -77.04 } },
};

/** One service `web` on every host; `version` is its one version (endpoints, tls). */
function doc(version: Record<string, unknown>, service: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    regions: REGIONS,
    services: { web: { healthCheck: { interval: '200ms', timeout: '200ms' }, slowStart: '0s', ...service, versions: { stable: version } } },
    routes: { web: { pathPrefix: '/', service: 'web' } },
  };
}

interface Started {
  readonly m: TestMeridian;
  readonly logs: Record<string, unknown>[];
}

async function meridian(t: Test, routes: Record<string, unknown>): Promise<Started> {
  const logs: Record<string, unknown>[] = [];
  const m = await startTestMeridian(routes, { node: { region: 'eu-west' }, proxy: { debugHeaders: true } }, { onLog: (line) => logs.push(line) });
  t.teardown(() => m.close());
  return { m, logs };
}

/** The health of the endpoint whose key is `key` in the table in force. */
function health(m: TestMeridian, key: string): { state: string; reason: string } {
  for (const service of m.meridian.applier.current?.services.values() ?? []) {
    for (const version of service.versions.values()) {
      for (const group of version.groups) for (const ep of group.all) if (ep.key === key) return { state: ep.health.state, reason: ep.health.reason };
    }
  }
  throw new Error(`no endpoint ${key}`);
}

async function metric(m: TestMeridian, prefix: string): Promise<string[]> {
  const res = await send(m.adminPort, { path: '/metrics' });
  return res.text.split('\n').filter((line) => line.startsWith(prefix));
}

let certs: TestCertificates;
let upstream: TlsUpstream;
/** An upstream presenting a self-signed certificate. */
let selfSigned: TlsUpstream;
/** The upstream's certificate on an address it does not name (127.0.0.2). */
let otherIp: TlsUpstream;

t.before(async () => {
  certs = await makeTestCertificates();
  upstream = await startTlsUpstream(certs);
  selfSigned = await startTlsUpstream(certs.selfSigned, 'self-signed');
  otherIp = await startTlsUpstream(certs, 'other-ip', '127.0.0.2');
});
t.teardown(async () => {
  await upstream.close();
  await selfSigned.close();
  await otherIp.close();
});

function expectTlsFailure(t: Test, res: TestResponse): void {
  t.equal(res.status, 502);
  t.equal(res.headers['x-meridian-error'], 'upstream-tls-failed');
  t.match(res.text, /verified TLS connection/);
}

t.test('https:// with the private CA: 200, SNI is the endpoint name, one connection whatever the Host header', async (t) => {
  const key = `https://localhost:${upstream.port}`;
  const { m } = await meridian(t, doc({ endpoints: { 'eu-west': [key] }, tls: { ca: certs.caFile } }));
  const handshakes = upstream.handshakes;
  upstream.proxiedSockets.clear();
  const first = await send(m.port, { path: '/a', headers: { host: 'one.example' } });
  t.equal(first.status, 200);
  t.equal(first.text, 'tls /a');
  t.equal(first.headers['x-meridian-endpoint'], key, 'the endpoint is named with its scheme');
  const second = await send(m.port, { path: '/b', headers: { host: 'two.example' } });
  t.equal(second.text, 'tls /b');
  t.ok(upstream.serverNames.slice(handshakes).every((name) => name === 'localhost'), 'SNI is the endpoint host, never the client Host header');
  await waitFor(() => health(m, key).state === 'healthy', 'the HTTPS health check to pass');
  const state = JSON.parse((await send(m.adminPort, { path: '/api/v1/state' })).text) as { services: { web: { versions: { stable: { regions: Record<string, { endpoints: Record<string, unknown>[] }> } } } } };
  t.match(state.services.web.versions.stable.regions['eu-west']?.endpoints[0], { address: key, health: 'healthy', tls: { serverName: null, ca: certs.caFile, verify: true } });
  t.equal(upstream.proxiedSockets.size, 1, 'requests for two Host headers shared one TLS connection');
});

t.test('an IP endpoint sends no SNI and is verified against the IP in the certificate', async (t) => {
  const key = `https://127.0.0.1:${upstream.port}`;
  const { m } = await meridian(t, doc({ endpoints: { 'eu-west': [key] }, tls: { ca: certs.caFile } }, { healthCheck: { mode: 'tcp', interval: '200ms', timeout: '200ms' } }));
  const before = upstream.handshakes;
  const res = await send(m.port, { path: '/ip' });
  t.equal(res.status, 200);
  t.equal(res.text, 'tls /ip');
  t.ok(upstream.handshakes > before);
  t.same([...new Set(upstream.serverNames.slice(before))], [''], 'no SNI for an IP address');
  await waitFor(() => health(m, key).state === 'healthy', 'the TCP check to complete a TLS handshake');
});

t.test('verification failures are 502 upstream-tls-failed, the reason is logged and the endpoint goes down', async (t) => {
  const cases: { name: string; tls?: Record<string, unknown>; host: string; reason: string; server?: TlsUpstream }[] = [
    { name: 'no ca: the default roots do not know the private CA', host: 'localhost', reason: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' },
    { name: 'a CA that signed something else', tls: { ca: certs.otherCaFile }, host: 'localhost', reason: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' },
    { name: 'a server name the certificate does not carry', tls: { ca: certs.caFile, serverName: 'api.internal' }, host: 'localhost', reason: 'ERR_TLS_CERT_ALTNAME_INVALID' },
    { name: 'an IP the certificate does not carry', tls: { ca: certs.caFile }, host: '127.0.0.2', reason: 'ERR_TLS_CERT_ALTNAME_INVALID', server: otherIp },
    { name: 'a self-signed certificate', host: 'localhost', reason: 'DEPTH_ZERO_SELF_SIGNED_CERT', server: selfSigned },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const server = c.server ?? upstream;
      const key = `https://${c.host}:${server.port}`;
      const version = c.tls === undefined ? { endpoints: { 'eu-west': [key] } } : { endpoints: { 'eu-west': [key] }, tls: c.tls };
      const { m, logs } = await meridian(t, doc(version));
      const served = server.requests;
      expectTlsFailure(t, await send(m.port, { path: '/x', method: 'POST', body: 'payload' }));
      t.equal(server.requests, served, 'nothing reached the upstream');
      const line = await waitFor(() => logs.find((l) => l.msg === 'upstream TLS handshake failed: its requests fail with 502 upstream-tls-failed (or go to another endpoint)'), 'the warn line');
      t.match(line, { level: 'warn', endpoint: key, reason: c.reason });
      await waitFor(() => health(m, key).state === 'unhealthy', 'the active check to fail');
      t.equal(health(m, key).reason, 'tls-failed');
      const checkLine = await waitFor(() => logs.find((l) => l.msg === 'health check: upstream TLS handshake failed'), 'the check warn line');
      t.match(checkLine, { endpoint: key, reason: c.reason });
      t.equal((await metric(m, 'meridian_proxy_errors_total{code="upstream-tls-failed"}')).length, 1, 'counted by code');
      t.equal((await metric(m, 'meridian_health_checks_total{result="tls-failed"}')).length, 1, 'failed checks counted as tls-failed');
      // Throttled: more failures within 10 s add no line.
      for (let i = 0; i < 3; i++) expectTlsFailure(t, await send(m.port));
      t.equal(logs.filter((l) => l.reason === c.reason && l.msg === line.msg).length, 1, 'one warn line per 10 s');
    });
  }
});

t.test('verify: false accepts any certificate, warned once per table', async (t) => {
  const key = `https://localhost:${upstream.port}`;
  const { m, logs } = await meridian(t, doc({ endpoints: { 'eu-west': [key] }, tls: { verify: false, serverName: 'api.internal' } }));
  const res = await send(m.port, { path: '/any' });
  t.equal(res.status, 200);
  t.equal(res.text, 'tls /any');
  const warned = logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('upstream TLS without verification'));
  t.equal(warned.length, 1);
  t.match(warned[0], { level: 'warn', endpoints: [key], count: 1 });
  await waitFor(() => health(m, key).state === 'healthy', 'checks to pass without verification');
});

t.test('a TLS failure happens before sending: even a POST is retried on the next endpoint', async (t) => {
  // Checks fail everywhere (503 for the good endpoint, TLS for the bad), so the failover order decides: eu-west first.
  upstream.handle((req, res) => {
    if (req.headers['user-agent'] === 'meridian-health-check') res.writeHead(503).end();
    else res.writeHead(200, { 'x-upstream': 'good' }).end(`${req.method ?? ''} ok`);
  });
  t.teardown(() => upstream.handle((req, res) => res.writeHead(200).end(`tls ${req.url ?? ''}`)));
  const bad = { address: `https://localhost:${upstream.port}`, tls: { ca: certs.otherCaFile } };
  const good = { address: `https://127.0.0.1:${upstream.port}`, tls: { ca: certs.caFile } };
  const { m } = await meridian(t, doc({ endpoints: { 'eu-west': [bad], 'us-east': [good] } }, { steering: 'failover', failover: ['eu-west', 'us-east'] }));
  const res = await send(m.port, { method: 'POST', path: '/p', body: 'once' });
  t.equal(res.status, 200);
  t.equal(res.text, 'POST ok');
  t.equal(res.headers['x-meridian-region'], 'us-east');
  t.equal((await metric(m, 'meridian_retries_total{service="web",reason="upstream-tls-failed"}')).length, 1, 'the retry is counted with its reason');
  await waitFor(() => health(m, bad.address).reason === 'tls-failed', 'the bad endpoint to be down for TLS');
});

t.test('the unsolicited-100 filter works on TLS connections', async (t) => {
  upstream.handle((req, res) => {
    res.writeContinue();
    res.writeHead(200).end(`after 100 ${req.url ?? ''}`);
  });
  t.teardown(() => upstream.handle((req, res) => res.writeHead(200).end(`tls ${req.url ?? ''}`)));
  const { m } = await meridian(t, doc({ endpoints: { 'eu-west': [`https://localhost:${upstream.port}`] }, tls: { ca: certs.caFile } }));
  for (let i = 0; i < 3; i++) {
    const res = await send(m.port, { path: `/c${i}` });
    t.equal(res.status, 200);
    t.equal(res.text, `after 100 /c${i}`);
  }
});

t.test('a plaintext endpoint beside a TLS one keeps working as before', async (t) => {
  const { m } = await meridian(t, doc({ endpoints: { 'eu-west': [`http://127.0.0.1:${upstream.port}`] } }));
  const res = await send(m.port);
  t.equal(res.status, 502, 'plaintext to a TLS port is not HTTP');
  t.not(res.headers['x-meridian-error'], 'upstream-tls-failed', 'and not a TLS failure: no TLS was attempted');
});

t.test('a refused TLS endpoint is a refused connection, not a TLS failure', async (t) => {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const key = `https://localhost:${port}`;
  const { m } = await meridian(t, doc({ endpoints: { 'eu-west': [key] }, tls: { ca: certs.caFile } }));
  const res = await send(m.port);
  t.equal(res.status, 502);
  t.equal(res.headers['x-meridian-error'], 'upstream-connect-failed');
  await waitFor(() => health(m, key).reason === 'connect-refused', 'the check to report a refused connection');
});

t.test('an upgrade to a TLS endpoint is relayed over the TLS connection', async (t) => {
  const onUpgrade = (req: IncomingMessage, socket: Duplex): void => {
    socket.on('error', () => socket.destroy());
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello ${req.url ?? ''}\n`);
    socket.on('data', (chunk: Buffer) => socket.write(chunk));
  };
  upstream.server.on('upgrade', onUpgrade);
  t.teardown(() => upstream.server.off('upgrade', onUpgrade));
  const { m } = await meridian(t, doc({ endpoints: { 'eu-west': [`https://localhost:${upstream.port}`] }, tls: { ca: certs.caFile } }));
  const client = await rawConnect(m.port);
  t.teardown(() => client.socket.destroy());
  client.socket.write('GET /ws HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
  await client.until((d) => d.toString().includes('hello /ws\n'), 'the 101 and the greeting');
  t.match(client.received().toString(), /^HTTP\/1\.1 101 /);
  client.socket.write('ping');
  await client.until((d) => d.toString().endsWith('hello /ws\nping'), 'the echo through the TLS tunnel');
  t.pass('bytes flow both ways');
});

t.test('https:// to a plaintext server is a TLS failure with OpenSSL\'s reason', async (t) => {
  const plain = await startUpstream('plain');
  t.teardown(() => plain.kill());
  const key = `https://127.0.0.1:${plain.port}`;
  const { m, logs } = await meridian(t, doc({ endpoints: { 'eu-west': [key] } }));
  expectTlsFailure(t, await send(m.port));
  t.equal(plain.started, 0, 'no request reached it');
  const line = await waitFor(() => logs.find((l) => l.endpoint === key && typeof l.msg === 'string' && l.msg.startsWith('upstream TLS handshake failed')), 'the warn line');
  t.match(line.reason, /^ERR_SSL_/);
});

t.test('with workers: the CA travels to the workers, the primary checks over TLS, the workers log failures', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meridian-tls-workers-'));
  const routes = join(dir, 'routes.yaml');
  const good = `https://localhost:${upstream.port}`;
  const bad = `https://127.0.0.1:${upstream.port}`;
  await writeFile(routes, stringify({
    regions: REGIONS,
    services: {
      good: { healthCheck: { interval: '200ms', timeout: '200ms' }, versions: { stable: { endpoints: { 'eu-west': [good] }, tls: { ca: certs.caFile } } } },
      bad: { healthCheck: { interval: '200ms', timeout: '200ms' }, versions: { stable: { endpoints: { 'eu-west': [bad] }, tls: { ca: certs.otherCaFile } } } },
    },
    routes: { good: { hosts: ['good.test'], service: 'good' }, bad: { hosts: ['bad.test'], service: 'bad' } },
  }));
  const conf = join(dir, 'meridian.yaml');
  await writeFile(conf, stringify({ node: { name: 'tls-workers' }, proxy: { listen: '127.0.0.1:0', shutdownTimeout: '5s' }, admin: { listen: '127.0.0.1:0' }, store: { file: routes, snapshot: join(dir, 'snap.json') } }));
  const proc = await spawnMeridian(['start', '--config', conf, '--workers', '2', '--log-level', 'info']);
  t.teardown(() => proc.stop('SIGKILL'));
  for (let i = 0; i < 4; i++) t.equal((await send(proc.proxyPort, { headers: { host: 'good.test' }, path: `/w${i}` })).text, `tls /w${i}`, 'workers verify with the CA they were handed');
  expectTlsFailure(t, await send(proc.proxyPort, { headers: { host: 'bad.test' } }));
  const line = await waitFor(() => proc.logs.find((l) => l.endpoint === bad && l.msg === 'upstream TLS handshake failed: its requests fail with 502 upstream-tls-failed (or go to another endpoint)'), "a worker's warn line");
  t.match(line, { level: 'warn', reason: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  const endpointState = async (service: string): Promise<Record<string, unknown> | undefined> => {
    const state = JSON.parse((await send(proc.adminPort, { path: '/api/v1/state' })).text) as { services: Record<string, { versions: { stable: { regions: Record<string, { endpoints: Record<string, unknown>[] }> } } }> };
    return state.services[service]?.versions.stable.regions['eu-west']?.endpoints[0];
  };
  await waitFor(async () => (await endpointState('good'))?.health === 'healthy', 'the primary to check the good endpoint over TLS');
  await waitFor(async () => (await endpointState('bad'))?.reason === 'tls-failed', 'the bad endpoint to be down for TLS');
});
