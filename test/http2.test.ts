import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as h2connect, constants, type ClientHttp2Session } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { send } from './helpers/client.js';
import { makeCa, makeCert } from './helpers/certs.js';
import { simpleRoutes, startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { Rng } from './helpers/rng.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

const run = promisify(execFile);

interface Node {
  m: TestMeridian;
  tlsPort: number;
  ca: string;
  up: TestUpstream;
}

async function start(t: Test): Promise<Node> {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-h2-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = makeCa(dir);
  const cert = makeCert(dir, ca, 'a', ['a.example.test']);
  const up = await startUpstream('up');
  t.teardown(() => up.kill());
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [up.address] }), { proxy: { debugHeaders: true, tls: { listen: '127.0.0.1:0', certificates: [cert] } } });
  t.teardown(() => m.close());
  return { m, tlsPort: m.meridian.tlsAddress?.port as number, ca: ca.cert, up };
}

function session(node: Node): ClientHttp2Session {
  const s = h2connect(`https://a.example.test:${node.tlsPort}`, { ca: readFileSync(node.ca), host: '127.0.0.1', servername: 'a.example.test', lookup: (_h, _o, cb) => cb(null, '127.0.0.1', 4) } as Parameters<typeof h2connect>[1]);
  s.on('error', () => undefined);
  return s;
}

/** One request on an HTTP/2 session: status, headers and body. */
function request(s: ClientHttp2Session, headers: Record<string, string | string[]>, body?: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = s.request(headers, { endStream: body === undefined });
    let data = '';
    let head: Record<string, unknown> = {};
    stream.on('response', (h) => (head = h));
    stream.on('data', (d: Buffer) => (data += d.toString()));
    stream.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: data }));
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

t.test('HTTP/2 over TLS: curl --http2 and a node:http2 client go through the same request path as HTTP/1.1', async (t) => {
  const node = await start(t);
  const { stdout } = await run('curl', ['-sS', '--http2', '-D', '-', '--cacert', node.ca, '--resolve', `a.example.test:${node.tlsPort}:127.0.0.1`, `https://a.example.test:${node.tlsPort}/h2?q=1`]);
  t.match(stdout, /^HTTP\/2 200/, 'curl negotiates h2 and is served');
  t.match(stdout, /x-meridian-region: eu-west/, 'routed like any request');
  const seen = node.up.seen.at(-1);
  t.equal(seen?.url, '/h2?q=1');
  t.equal(seen?.headers.host, `a.example.test:${node.tlsPort}`, ':authority reaches the upstream as Host');
  t.equal(seen?.headers['x-forwarded-proto'], 'https');
  t.notOk(Object.keys(seen?.headers ?? {}).some((h) => h.startsWith(':')), 'no pseudo-header is forwarded');

  const s = session(node);
  t.teardown(() => s.close());
  const cookies = await request(s, { ':path': '/c', cookie: ['a=1', 'b=2'] });
  t.equal(cookies.status, 200);
  t.equal(node.up.seen.at(-1)?.headers.cookie, 'a=1; b=2', 'cookies sent as separate fields are joined for the HTTP/1.1 upstream');
  const posted = await request(s, { ':method': 'POST', ':path': '/p', 'content-type': 'text/plain' }, 'hello over h2');
  t.equal(posted.status, 200);
  t.equal(node.up.seen.at(-1)?.body.toString(), 'hello over h2', 'a request body streams through');
  const many = await Promise.all(Array.from({ length: 20 }, (_, i) => request(s, { ':path': `/m/${i}` })));
  t.same(many.map((r) => r.status), Array(20).fill(200), 'concurrent streams on one connection are all served');
  t.equal((await send(node.m.port)).status, 200, 'HTTP/1.1 on the plaintext listener as before');
  const h1 = await run('curl', ['-sS', '--http1.1', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', '--cacert', node.ca, '--resolve', `a.example.test:${node.tlsPort}:127.0.0.1`, `https://a.example.test:${node.tlsPort}/`]);
  t.equal(h1.stdout, '1.1 200', 'and HTTP/1.1 over TLS');
});

t.test("Meridian's own errors over HTTP/2 carry no Connection header and the session stays usable", async (t) => {
  const node = await start(t);
  const s = session(node);
  t.teardown(() => s.close());
  await node.up.kill();
  const failed = await request(s, { ':path': '/down' });
  t.equal(failed.status, 502, 'an upstream that is gone: 502');
  t.match(String(failed.headers['x-meridian-error']), /^upstream-/);
  const again = await request(s, { ':path': '/down' });
  t.ok(again.status >= 500, 'the same session serves the next stream');
});

t.test('rapid reset (CVE-2023-44487): a client resetting streams faster than the limit loses its connection; another client is served', async (t) => {
  const node = await start(t);
  node.up.handle((_req, res) => setTimeout(() => res.end('slow'), 200));
  // The attack as it is sent on the wire: HEADERS opening a stream, then RST_STREAM (CANCEL) at once, over and over.
  const abuser = tlsConnect({ host: '127.0.0.1', port: node.tlsPort, servername: 'a.example.test', rejectUnauthorized: false, ALPNProtocols: ['h2'] });
  abuser.on('error', () => undefined);
  abuser.on('data', () => undefined);
  const closed = new Promise<void>((resolve) => abuser.once('close', () => resolve()));
  await new Promise<void>((resolve) => abuser.once('secureConnect', () => resolve()));
  // :method GET, :scheme https, :path / (static table), :authority a.example.test (literal, indexed name).
  const block = Buffer.concat([Buffer.from([0x82, 0x87, 0x84, 0x41, 14]), Buffer.from('a.example.test')]);
  const cancel = Buffer.from([0, 0, 0, 8]);
  const frames: Buffer[] = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0))];
  for (let i = 0; i < 1_000; i++) frames.push(frame(1, 0x4 | 0x1, 2 * i + 1, block), frame(3, 0, 2 * i + 1, cancel));
  abuser.write(Buffer.concat(frames));
  await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the abusing connection was not closed within 10 s')), 10_000))]);
  t.pass('the abusing connection was closed');
  const metrics = (await send(node.m.adminPort, { path: '/metrics' })).text;
  t.match(metrics, /meridian_http2_connections_closed_total\{reason="rapid-reset"\} 1/, 'and counted');
  const good = session(node);
  t.teardown(() => good.close());
  t.equal((await request(good, { ':path': '/ok' })).status, 200, 'another client is served');
  await waitFor(async () => (await send(node.m.adminPort, { path: '/healthz' })).status === 200, 'the node to be up');
});

/** An HTTP/2 frame: 9-byte header (length, type, flags, stream id) and payload. */
function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

t.test('seeded HTTP/2 frame fuzz, SETTINGS and PING floods: floods lose their connection, no frame sequence takes the node down, others are served', async (t) => {
  const node = await start(t);
  const seed = Number(process.env.FUZZ_SEED ?? 20261130);
  const rng = new Rng(seed);
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  const cases: Buffer[][] = [];
  for (let i = 0; i < 60; i++) {
    const frames: Buffer[] = [frame(4, 0, 0, Buffer.alloc(0))];
    for (let j = rng.int(6) + 1; j > 0; j--) {
      // Mostly well-formed headers with random types, flags, streams and payloads; sometimes raw garbage.
      frames.push(rng.chance(0.15) ? rng.bytes(rng.int(64) + 1) : frame(rng.int(12), rng.int(256), rng.pick([0, 1, 2, 3, 5, 0x7fffffff]), rng.bytes(rng.int(48))));
    }
    cases.push(frames);
  }
  /** Sends the preface and `frames` on a new h2 connection; resolves whether Meridian closed it within `ms`. */
  const attempt = async (frames: Buffer[], ms: number): Promise<boolean> => {
    const socket = tlsConnect({ host: '127.0.0.1', port: node.tlsPort, servername: 'a.example.test', rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
    socket.write(Buffer.concat([preface, ...frames]));
    const ended = await Promise.race([new Promise<boolean>((resolve) => socket.once('close', () => resolve(true))), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms))]);
    socket.destroy();
    return ended;
  };
  // Random frames: many are legal to ignore (unknown types, odd flags); none may take the node down.
  const outcomes = await Promise.all(cases.map((frames) => attempt(frames, 1_000)));
  t.comment(`seed ${seed}: ${outcomes.filter(Boolean).length} of ${cases.length} fuzzed connections closed by Meridian, the rest still open`);
  // Floods: SETTINGS and PING frames sent faster than they can be acknowledged.
  const settings = [frame(4, 0, 0, Buffer.alloc(0)), ...Array.from({ length: 20_000 }, () => frame(4, 0, 0, Buffer.alloc(0)))];
  const pings = [frame(4, 0, 0, Buffer.alloc(0)), ...Array.from({ length: 20_000 }, (_, i) => frame(6, 0, 0, Buffer.alloc(8, i & 0xff)))];
  t.ok(await attempt(settings, 5_000), 'a SETTINGS flood loses its connection');
  t.ok(await attempt(pings, 5_000), 'a PING flood loses its connection');
  const good = session(node);
  t.teardown(() => good.close());
  t.equal((await request(good, { ':path': '/after-fuzz' })).status, 200, 'a well-behaved client is served afterwards');
  t.equal((await send(node.m.adminPort, { path: '/healthz' })).status, 200, 'the node is up');
  t.match((await send(node.m.adminPort, { path: '/metrics' })).text, /meridian_http2_connections_closed_total\{reason="protocol-error"\} [1-9]/, 'abusive sessions are counted');
});

t.test('h2c: with proxy.h2c the plaintext listener serves HTTP/2 with prior knowledge and HTTP/1.1 alike; without it, HTTP/1.1 only', async (t) => {
  const up = await startUpstream('up');
  t.teardown(() => up.kill());
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [up.address] }), { proxy: { h2c: true, headersTimeout: '1s' } });
  t.teardown(() => m.close());
  const h2 = await run('curl', ['-sS', '--http2-prior-knowledge', '-D', '-', '-d', 'h2c body', `http://127.0.0.1:${m.port}/h2c`]);
  t.match(h2.stdout, /^HTTP\/2 200/, 'curl --http2-prior-knowledge is served over HTTP/2');
  t.equal(up.seen.at(-1)?.body.toString(), 'h2c body', 'with its body');
  t.equal(up.seen.at(-1)?.headers['x-forwarded-proto'], 'http');
  for (const args of [[], ['-X', 'PUT', '-d', 'P'], ['-X', 'PATCH', '-d', 'x'], ['-X', 'POST', '-d', 'y']]) {
    const h1 = await run('curl', ['-sS', '--http1.1', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', ...args, `http://127.0.0.1:${m.port}/h1`]);
    t.equal(h1.stdout, '1.1 200', `HTTP/1.1 ${args[1] ?? 'GET'} is served as before (methods starting with P are not mistaken for the preface)`);
  }
  const silent = silentClientClosed(m.port);
  t.ok(await silent, 'a client that sends nothing is closed after the headers timeout');

  const plain = await startTestMeridian(simpleRoutes({ 'eu-west': [up.address] }));
  t.teardown(() => plain.close());
  const refused = await run('curl', ['-sS', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${plain.port}/`]).then(
    (r) => r.stdout,
    (err: Error) => err.message,
  );
  t.notMatch(refused, /^200$/, 'without h2c the preface is not HTTP/2 to the plaintext listener');
});

/** Connects and sends nothing; resolves true once Meridian closes the connection (within 15 s). */
function silentClientClosed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, 15_000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

t.test('HTTP/2 responses: repeated fields, HEAD and 204 without a body, 103 and 100 interim heads, a response cut short resets the stream, a client reset aborts the upstream', async (t) => {
  const node = await start(t);
  const s = session(node);
  t.teardown(() => s.close());
  let upstreamClosed = 0;
  node.up.handle((req, res) => {
    if (req.url === '/cookies') {
      res.writeHead(200, [['set-cookie', 'a=1'], ['set-cookie', 'b=2'], ['keep-alive', 'timeout=5'], ['x-two', 'one'], ['x-two', 'two']].flat());
      res.end('ok');
    } else if (req.url === '/empty') {
      res.writeHead(204);
      res.end();
    } else if (req.url === '/hints') {
      res.writeEarlyHints({ link: '</a.css>; rel=preload' });
      setTimeout(() => res.end('after hints'), 20);
    } else if (req.url === '/cut') {
      res.writeHead(200, { 'content-length': '100000' });
      res.write('x'.repeat(1000));
      setTimeout(() => res.socket?.destroy(), 50);
    } else if (req.url === '/hang') {
      res.on('close', () => upstreamClosed++);
    } else {
      res.end(req.method === 'HEAD' ? undefined : 'body');
    }
  });

  const cookies = await request(s, { ':path': '/cookies' });
  t.equal(cookies.status, 200);
  t.same(cookies.headers['set-cookie'], ['a=1', 'b=2'], 'repeated Set-Cookie fields stay separate');
  t.equal(cookies.headers['x-two'], 'one, two', 'other repeated fields arrive (node:http2 joins them for the reader)');
  t.equal(cookies.headers['keep-alive'], undefined, 'a connection-specific field of the upstream is not sent on HTTP/2');
  t.equal(cookies.body, 'ok');

  const head = await request(s, { ':method': 'HEAD', ':path': '/' });
  t.equal(head.status, 200, 'HEAD is answered');
  t.equal(head.body, '', 'without a body');
  const empty = await request(s, { ':path': '/empty' });
  t.equal(empty.status, 204, '204 ends the stream with its head');

  const informational: number[] = [];
  const hinted = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const stream = s.request({ ':path': '/hints' });
    let status = 0;
    let body = '';
    stream.on('headers', (h) => informational.push(Number(h[':status'])));
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (d: Buffer) => (body += d.toString()));
    stream.on('end', () => resolve({ status, body }));
    stream.on('error', reject);
  });
  t.same(informational, [103], 'the upstream 103 Early Hints reaches the client as an interim head');
  t.same(hinted, { status: 200, body: 'after hints' });

  const continued = await new Promise<{ interim: number[]; status: number }>((resolve, reject) => {
    const stream = s.request({ ':method': 'POST', ':path': '/', expect: '100-continue', 'content-length': '4' }, { endStream: false });
    const interim: number[] = [];
    stream.on('continue', () => {
      interim.push(100);
      stream.end('data');
    });
    stream.on('response', (h) => {
      stream.resume();
      stream.on('end', () => resolve({ interim, status: Number(h[':status']) }));
    });
    stream.on('error', reject);
  });
  t.same(continued, { interim: [100], status: 200 }, 'Expect: 100-continue gets 100, then the body is sent and answered');

  const cut = await new Promise<{ status: number; bytes: number; rst: number }>((resolve) => {
    const stream = s.request({ ':path': '/cut' });
    let status = 0;
    let bytes = 0;
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (d: Buffer) => (bytes += d.length));
    stream.on('error', () => undefined);
    stream.on('close', () => resolve({ status, bytes, rst: stream.rstCode ?? -1 }));
  });
  t.equal(cut.status, 200);
  t.ok(cut.bytes < 100_000, `the client got part of the body (${cut.bytes} bytes)`);
  t.equal(cut.rst, constants.NGHTTP2_INTERNAL_ERROR, `(rst ${cut.rst}) and a reset stream, not a clean end: it knows the response is incomplete`);

  const hang = s.request({ ':path': '/hang' });
  hang.on('error', () => undefined);
  await waitFor(() => node.up.seen.some((r) => r.url === '/hang'), 'the request to reach the upstream');
  hang.close(constants.NGHTTP2_CANCEL);
  await waitFor(() => upstreamClosed === 1, 'the upstream request to be aborted when the client resets its stream');
  t.equal(upstreamClosed, 1, 'a client reset aborts the upstream request');
  const after = await request(s, { ':path': '/after' });
  t.equal(after.status, 200, 'and the session serves on');
});
