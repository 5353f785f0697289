import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { getJson, send } from './helpers/client.js';
import { makeCa, makeCert, type TestCa } from './helpers/certs.js';
import { simpleRoutes, startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { runCli, spawnMeridian } from './helpers/process.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

const run = promisify(execFile);

interface Fixture {
  dir: string;
  ca: TestCa;
  a: { cert: string; key: string };
  b: { cert: string; key: string };
}

/** A CA and two certificates: `a.example.test` (exact) and `*.b.example.test` (wildcard). */
function fixture(t: Test): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = makeCa(dir);
  return { dir, ca, a: makeCert(dir, ca, 'a', ['a.example.test']), b: makeCert(dir, ca, 'b', ['*.b.example.test']) };
}

/** What certificate a TLS client sending `servername` gets (undefined: no SNI), and the negotiated protocol (not verified: the test compares certificates). */
async function handshake(port: number, servername: string | undefined): Promise<{ cert: PeerCertificate; protocol: string | null; alpn: string | false | null }> {
  const socket: TLSSocket = connect({ host: '127.0.0.1', port, ...(servername === undefined ? {} : { servername }), rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'] });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  const out = { cert: socket.getPeerCertificate(), protocol: socket.getProtocol(), alpn: socket.alpnProtocol };
  socket.destroy();
  return out;
}

async function curl(args: string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '5', '-w', '\n%{http_code}', ...args]);
  const lines = stdout.split('\n');
  return { status: Number(lines.pop()), body: lines.join('\n') };
}

async function startTls(t: Test, f: Fixture, up: TestUpstream, tls: Record<string, unknown> = {}, routes: unknown = simpleRoutes({ 'eu-west': [up.address] })): Promise<TestMeridian & { tlsPort: number }> {
  const m = await startTestMeridian(routes, { proxy: { tls: { listen: '127.0.0.1:0', certificates: [f.a, f.b], ...tls } } });
  t.teardown(() => m.close());
  const tlsPort = m.meridian.tlsAddress?.port;
  if (tlsPort === undefined) throw new Error('no TLS listener');
  return { ...m, tlsPort };
}

t.test('HTTPS: each SNI name gets its certificate (exact, then wildcard, else the first), curl over TLS reaches the upstream with X-Forwarded-Proto https', async (t) => {
  const f = fixture(t);
  const up = await startUpstream('up');
  t.teardown(() => up.kill());
  const m = await startTls(t, f, up);

  t.match((await handshake(m.tlsPort, 'a.example.test')).cert.subjectaltname, 'DNS:a.example.test', 'exact name');
  t.match((await handshake(m.tlsPort, 'x.b.example.test')).cert.subjectaltname, 'DNS:*.b.example.test', 'one-label wildcard');
  t.match((await handshake(m.tlsPort, 'y.x.b.example.test')).cert.subjectaltname, 'DNS:a.example.test', 'a wildcard covers one label only: the first certificate');
  const bare = await handshake(m.tlsPort, undefined);
  t.match(bare.cert.subjectaltname, 'DNS:a.example.test', 'no SNI: the first certificate');
  t.match(bare.protocol, /^TLSv1\.[23]$/);
  t.equal(bare.alpn, 'h2', 'ALPN settles on h2 when the client offers it');

  for (const host of ['a.example.test', 'z.b.example.test']) {
    const res = await curl(['--http1.1', '--cacert', f.ca.cert, '--resolve', `${host}:${m.tlsPort}:127.0.0.1`, `https://${host}:${m.tlsPort}/hello?x=1`]);
    t.equal(res.status, 200, `curl https://${host} verifies the certificate and is served`);
    t.match(res.body, /"label":"up"/);
  }
  const seen = up.seen.at(-1);
  t.equal(seen?.headers['x-forwarded-proto'], 'https', 'the upstream learns the client spoke https');
  t.equal(seen?.url, '/hello?x=1');
  t.equal((await send(m.port)).status, 200, 'the plaintext listener serves as before');
  t.equal(up.seen.at(-1)?.headers['x-forwarded-proto'], 'http');

  const state = await getJson<{ tls: { certificates: { names: string[]; notAfter: string; issuer: string }[] } }>(m.adminPort, '/api/v1/state');
  t.same(state.tls.certificates.map((c) => c.names), [['a.example.test'], ['*.b.example.test']], 'the state lists each certificate with its names');
  t.match(state.tls.certificates[0]?.issuer, /Meridian Test CA/);
  t.ok(Date.parse(state.tls.certificates[0]?.notAfter ?? '') > Date.now(), 'and its expiry');
});

t.test('a certificate swapped on disk under load: new connections get it with no failed request; unusable files keep the one in force, shown in state.errors', async (t) => {
  const f = fixture(t);
  const up = await startUpstream('up');
  t.teardown(() => up.kill());
  const m = await startTls(t, f, up);
  const before = (await handshake(m.tlsPort, 'a.example.test')).cert.fingerprint256;

  let stop = false;
  const statuses = new Map<string, number>();
  const load = (async () => {
    while (!stop) {
      // A new TLS connection each time: every request sees the certificate in force at its handshake.
      const res = await curl(['--http1.1', '--cacert', f.ca.cert, '--resolve', `a.example.test:${m.tlsPort}:127.0.0.1`, `https://a.example.test:${m.tlsPort}/`]).catch((err: Error) => ({ status: -1, body: err.message }));
      statuses.set(String(res.status), (statuses.get(String(res.status)) ?? 0) + 1);
    }
  })();

  const next = makeCert(f.dir, f.ca, 'a2', ['a.example.test']);
  // Replaced the way tools do it: each file written beside and renamed over.
  copyFileSync(next.key, `${f.a.key}.new`);
  copyFileSync(next.cert, `${f.a.cert}.new`);
  renameSync(`${f.a.key}.new`, f.a.key);
  renameSync(`${f.a.cert}.new`, f.a.cert);
  const after = await waitFor(async () => {
    const fp = (await handshake(m.tlsPort, 'a.example.test')).cert.fingerprint256;
    return fp !== before ? fp : null;
  }, 'the new certificate to be served');
  await new Promise((resolve) => setTimeout(resolve, 300));

  writeFileSync(f.a.cert, '-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n');
  const errors = await waitFor(async () => {
    const state = await getJson<{ errors: { key: string; message: string }[] }>(m.adminPort, '/api/v1/state');
    return state.errors.length > 0 ? state.errors : null;
  }, 'the bad file in state.errors');
  t.equal(errors[0]?.key, 'proxy.tls.certificates.0');
  t.match(errors[0]?.message, /not a PEM certificate.*stays/);
  t.equal((await handshake(m.tlsPort, 'a.example.test')).cert.fingerprint256, after, 'the certificate in force stays');
  await new Promise((resolve) => setTimeout(resolve, 300));
  stop = true;
  await load;
  t.same([...statuses.keys()], ['200'], `every request under load was served: ${JSON.stringify([...statuses])}`);
  t.ok((statuses.get('200') ?? 0) >= 5, 'and there was load');
  const metrics = (await send(m.adminPort, { path: '/metrics' })).text;
  t.match(metrics, /meridian_tls_certificate_reloads_total\{result="applied"\} [1-9]/);
  t.match(metrics, /meridian_tls_certificate_reloads_total\{result="rejected"\} [1-9]/);

  // Putting a good certificate back clears the error.
  copyFileSync(next.cert, f.a.cert);
  await waitFor(async () => (await getJson<{ errors: unknown[] }>(m.adminPort, '/api/v1/state')).errors.length === 0, 'the error to clear');
});

t.test('garbage, plaintext HTTP and silence on the TLS port: that connection is closed and counted, others are served', async (t) => {
  const f = fixture(t);
  const up = await startUpstream('up');
  t.teardown(() => up.kill());
  const m = await startTls(t, f, up);
  const closedAfter = (payload: Buffer | null): Promise<string> =>
    new Promise((resolve) => {
      const socket = netConnect(m.tlsPort, '127.0.0.1', () => {
        if (payload !== null) socket.write(payload);
      });
      let got = '';
      socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(got));
    });
  await closedAfter(Buffer.from('GET / HTTP/1.1\r\nhost: a\r\n\r\n'));
  await closedAfter(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00]));
  const random = Buffer.alloc(4096);
  for (let i = 0; i < random.length; i++) random[i] = (i * 7919 + 13) & 0xff;
  await closedAfter(random);
  const metrics = (await send(m.adminPort, { path: '/metrics' })).text;
  const counted = [...metrics.matchAll(/meridian_tls_handshake_errors_total\{reason="[A-Z0-9_]+"\} (\d+)/g)].reduce((n, x) => n + Number(x[1]), 0);
  t.ok(counted >= 3, `each bad handshake was counted (${counted})`);
  const res = await curl(['--cacert', f.ca.cert, '--resolve', `a.example.test:${m.tlsPort}:127.0.0.1`, `https://a.example.test:${m.tlsPort}/`]);
  t.equal(res.status, 200, 'a good client is served');
});

t.test('redirectToHttps answers 308 to the TLS listener from the plaintext one; hsts is sent over TLS only', async (t) => {
  const f = fixture(t);
  const up = await startUpstream('up');
  t.teardown(() => up.kill());
  const routes = simpleRoutes({ 'eu-west': [up.address] }) as { routes: Record<string, Record<string, unknown>> };
  routes.routes.secure = { hosts: ['a.example.test'], pathPrefix: '/', service: 'web', redirectToHttps: true };
  const m = await startTls(t, f, up, { hsts: { maxAge: '8760h', includeSubDomains: true } }, routes);
  const plain = await send(m.port, { path: '/pay?x=1', headers: { host: 'a.example.test:8080' }, method: 'POST', body: 'x' });
  t.equal(plain.status, 308, 'a plaintext request to the route is redirected, method and body kept by the client');
  t.equal(plain.headers.location, `https://a.example.test:${m.tlsPort}/pay?x=1`);
  t.equal(up.seen.length, 0, 'and not forwarded');
  t.equal((await send(m.port, { headers: { host: 'other.test' } })).status, 200, 'other routes are served over plaintext');
  t.equal((await send(m.port, { headers: { host: 'other.test' } })).headers['strict-transport-security'], undefined, 'without hsts');
  const followed = await run('curl', ['-sS', '-L', '-D', '-', '-o', '/dev/null', '--cacert', f.ca.cert, '--resolve', `a.example.test:${m.tlsPort}:127.0.0.1`, '--resolve', `a.example.test:${m.port}:127.0.0.1`, `http://a.example.test:${m.port}/pay`]);
  t.match(followed.stdout, /HTTP\/1\.1 308[\s\S]*HTTP\/2 200/, 'curl -L follows it to the TLS listener and is served (over HTTP/2)');
  t.match(followed.stdout, /strict-transport-security: max-age=31536000; includeSubDomains/i, 'with hsts over TLS');
});

t.test('a node does not start on an unusable certificate: the problem is named', async (t) => {
  const f = fixture(t);
  writeFileSync(join(f.dir, 'routes.yaml'), JSON.stringify(simpleRoutes({ 'eu-west': ['127.0.0.1:9'] })));
  const other = makeCert(f.dir, f.ca, 'other', ['other.test']);
  const cases: [string, { cert: string; key: string }, RegExp][] = [
    ['missing file', { cert: join(f.dir, 'nope.pem'), key: f.a.key }, /cannot read the certificate .*nope\.pem: ENOENT/],
    ['key of another certificate', { cert: f.a.cert, key: other.key }, /does not belong to the certificate/],
    ['not PEM', { cert: join(f.dir, 'routes.yaml'), key: f.a.key }, /is not a PEM certificate/],
  ];
  for (const [what, pair, message] of cases) {
    const config = join(f.dir, 'meridian.json');
    writeFileSync(config, JSON.stringify({ proxy: { listen: '127.0.0.1:0', tls: { listen: '127.0.0.1:0', certificates: [pair] } }, admin: { listen: '127.0.0.1:0' }, store: { file: join(f.dir, 'routes.yaml'), snapshot: join(f.dir, 's.json') } }));
    const out = await runCli(['start', '--config', config, '--log-level', 'silent']);
    t.equal(out.code, 1, `${what}: exit 1`);
    t.match(out.stderr, /proxy\.tls\.certificates\.0/, `${what}: names the certificate`);
    t.match(out.stderr, message, `${what}: says what is wrong`);
    t.notMatch(out.stderr, /\n\s+at /, `${what}: no stack trace`);
  }

  // A TLS port already taken: the start fails, and nothing it had bound keeps the process alive.
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.teardown(() => taken.close());
  const busyPort = (taken.address() as AddressInfo).port;
  const config = join(f.dir, 'busy.json');
  writeFileSync(config, JSON.stringify({ proxy: { listen: '127.0.0.1:0', tls: { listen: `127.0.0.1:${busyPort}`, certificates: [f.a] } }, admin: { listen: '127.0.0.1:0' }, store: { file: join(f.dir, 'routes.yaml'), snapshot: join(f.dir, 's.json') } }));
  const busy = await runCli(['start', '--config', config, '--log-level', 'silent']);
  t.equal(busy.code, 1, 'a busy TLS port: exit 1 (not a hang)');
  t.match(busy.stderr, /EADDRINUSE/, 'naming the bind failure');
});

/** One GET over a new TLS connection (resuming `session` when given): the serving worker, whether the session was resumed, and the session to resume next. */
async function tlsGet(port: number, ca: string, session?: Buffer): Promise<{ worker: string; reused: boolean; session: Buffer | undefined }> {
  const socket = connect({ host: '127.0.0.1', port, servername: 'a.example.test', ca: [readFileSync(ca)], ...(session === undefined ? {} : { session }) });
  let next: Buffer | undefined;
  socket.on('session', (s: Buffer) => (next = s));
  let got = '';
  let reused = false;
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => {
      reused = socket.isSessionReused();
      socket.write('GET / HTTP/1.1\r\nhost: a.example.test\r\nconnection: close\r\n\r\n');
    });
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    socket.once('error', reject);
    socket.once('close', () => resolve());
  });
  const worker = /x-meridian-worker: (\d+)/i.exec(got)?.[1];
  if (!got.startsWith('HTTP/1.1 200') || worker === undefined) throw new Error(`unexpected answer: ${got.slice(0, 200)}`);
  return { worker, reused, session: next };
}

t.test('two workers terminate TLS; a session resumes on either worker (shared ticket keys)', async (t) => {
  const f = fixture(t);
  const up = await startUpstream('up');
  t.teardown(() => up.kill());
  writeFileSync(join(f.dir, 'routes.yaml'), JSON.stringify(simpleRoutes({ 'eu-west': [up.address] })));
  const config = join(f.dir, 'meridian.json');
  writeFileSync(config, JSON.stringify({ proxy: { listen: '127.0.0.1:0', debugHeaders: true, tls: { listen: '127.0.0.1:0', certificates: [f.a, f.b] } }, admin: { listen: '127.0.0.1:0' }, store: { file: join(f.dir, 'routes.yaml'), snapshot: join(f.dir, 's.json') } }));
  const proc = await spawnMeridian(['start', '--config', config, '--workers', '2', '--log-level', 'info']);
  t.teardown(() => proc.stop('SIGKILL'));
  const started = proc.logs.find((l) => l.msg === 'meridian started') as { tls?: { port: number } };
  const port = started.tls?.port;
  if (port === undefined) throw new Error('no TLS address in the start line');

  const first = await tlsGet(port, f.ca.cert);
  let session = first.session;
  const workers = new Set([first.worker]);
  let reused = 0;
  for (let i = 0; i < 8; i++) {
    const next = await tlsGet(port, f.ca.cert, session);
    workers.add(next.worker);
    if (next.reused) reused++;
    session = next.session ?? session;
  }
  t.equal(workers.size, 2, `both workers served TLS (${[...workers].join(', ')})`);
  t.equal(reused, 8, `(${reused} of 8) ` + 'every reconnection resumed its session, whichever worker took it');

  // A reloaded certificate brings the listener a new context; sessions still resume on every worker.
  const before = (await handshake(port, 'x.b.example.test')).cert.fingerprint256;
  const next = makeCert(f.dir, f.ca, 'b2', ['*.b.example.test']);
  copyFileSync(next.key, f.b.key);
  copyFileSync(next.cert, f.b.cert);
  await waitFor(async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add((await handshake(port, 'x.b.example.test')).cert.fingerprint256);
    return seen.size === 1 && !seen.has(before);
  }, 'every worker to serve the new certificate');
  let resumedAfter = 0;
  let afterSession = (await tlsGet(port, f.ca.cert)).session;
  for (let i = 0; i < 6; i++) {
    const next = await tlsGet(port, f.ca.cert, afterSession);
    if (next.reused) resumedAfter++;
    afterSession = next.session ?? afterSession;
  }
  t.equal(resumedAfter, 6, `after the reload too (${resumedAfter} of 6)`);
  const state = await getJson<{ tls: { certificates: { names: string[] }[] } }>(proc.adminPort, '/api/v1/state');
  t.same(state.tls.certificates.map((c) => c.names), [['a.example.test'], ['*.b.example.test']], 'the primary shows the certificates the workers serve');
});

t.test('ticket keys are renewed every ticketKeyRotation on every worker: a ticket from before a renewal makes a full handshake, new ones resume anywhere', async (t) => {
  const f = fixture(t);
  const up = await startUpstream('up');
  t.teardown(() => up.kill());
  writeFileSync(join(f.dir, 'routes.yaml'), JSON.stringify(simpleRoutes({ 'eu-west': [up.address] })));
  const config = join(f.dir, 'meridian.json');
  const write = (rotation: string): void =>
    writeFileSync(config, JSON.stringify({ proxy: { listen: '127.0.0.1:0', debugHeaders: true, tls: { listen: '127.0.0.1:0', certificates: [f.a], ticketKeyRotation: rotation } }, admin: { listen: '127.0.0.1:0' }, store: { file: join(f.dir, 'routes.yaml'), snapshot: join(f.dir, 's.json') } }));

  write('500ms');
  const refused = await runCli(['start', '--config', config, '--log-level', 'silent']);
  t.equal(refused.code, 1, 'a rotation shorter than 1s is refused');
  t.match(refused.stderr, /proxy\.tls\.ticketKeyRotation.*at least 1s/);

  write('4s');
  const proc = await spawnMeridian(['start', '--config', config, '--workers', '2', '--log-level', 'info']);
  t.teardown(() => proc.stop('SIGKILL'));
  const started = proc.logs.find((l) => l.msg === 'meridian started') as { tls?: { port: number } };
  const port = started.tls?.port;
  if (port === undefined) throw new Error('no TLS address in the start line');
  const since = async (): Promise<string> => (await getJson<{ tls: { ticketKeys: { rotateEveryMs: number; inForceSince: string } } }>(proc.adminPort, '/api/v1/state')).tls.ticketKeys.inForceSince;
  /** Waits for the next renewal (seen in the primary's state), then a moment for the workers to hear of it. */
  const nextRenewal = async (): Promise<void> => {
    const before = await since();
    await waitFor(async () => (await since()) !== before, 'the ticket keys to be renewed', 10_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
  };
  const state = await getJson<{ tls: { ticketKeys: { rotateEveryMs: number } } }>(proc.adminPort, '/api/v1/state');
  t.equal(state.tls.ticketKeys.rotateEveryMs, 4000, 'the state shows the rotation period (and never the keys)');
  t.notMatch(JSON.stringify(state), /"keys"/);

  await nextRenewal();
  const old = (await tlsGet(port, f.ca.cert)).session;
  const workers = new Set<string>();
  let resumed = 0;
  for (let i = 0; i < 4; i++) {
    const again = await tlsGet(port, f.ca.cert, old);
    workers.add(again.worker);
    if (again.reused) resumed++;
  }
  t.equal(resumed, 4, 'within a period a ticket resumes');
  await nextRenewal();
  const stale = await tlsGet(port, f.ca.cert, old);
  t.notOk(stale.reused, 'after a renewal the old ticket no longer resumes (a full handshake, and the request is served)');
  let fresh = stale.session;
  let resumedAfter = 0;
  for (let i = 0; i < 6; i++) {
    const next = await tlsGet(port, f.ca.cert, fresh);
    workers.add(next.worker);
    if (next.reused) resumedAfter++;
    fresh = next.session ?? fresh;
  }
  t.equal(resumedAfter, 6, `a ticket under the new keys resumes (${resumedAfter} of 6)`);
  t.equal(workers.size, 2, `on both workers (${[...workers].join(', ')})`);
});
