import { readFileSync } from 'node:fs';
import { connect as h2connect } from 'node:http2';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { send } from './helpers/client.js';
import { rawConnect } from './helpers/data-plane.js';
import { simpleRoutes, startTestMeridian, type StaticOverrides, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';

type Line = Record<string, unknown>;

const FIELDS = ['time', 'type', 'id', 'client', 'method', 'host', 'path', 'protocol', 'status', 'bytesIn', 'bytesOut', 'durationMs', 'upstreamMs', 'route', 'service', 'version', 'region', 'endpoint', 'tries', 'error'];

/** Every line of an access log file, each parsed (a line that is not JSON fails the test). */
function readLines(file: string): Line[] {
  let text = '';
  try {
    text = readFileSync(file, 'latin1');
  } catch {
    return [];
  }
  if (text !== '' && !text.endsWith('\n')) throw new Error(`a partial line at the end: ${JSON.stringify(text.slice(-80))}`);
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);
}

/** Meridian with its access log in a temp file, and the upstreams torn down with the test. */
async function start(t: Test, routes: unknown, overrides: StaticOverrides = {}, ups: TestUpstream[] = []): Promise<{ m: TestMeridian; file: string; lines: () => Line[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'meridian-access-'));
  const file = join(dir, 'access.log');
  const m = await startTestMeridian(routes, { ...overrides, log: { access: file, ...(overrides.log ?? {}) } }, { dir });
  t.teardown(async () => {
    await m.close();
    for (const up of ups) await up.kill();
  });
  return { m, file, lines: () => readLines(file) };
}

t.test('a proxied request: every field, in order, with its value', async (t) => {
  const up = await startUpstream('a');
  up.handle((_req, res, body) => res.writeHead(200, { 'content-type': 'text/plain' }).end(`got ${body.length} bytes\n`));
  const { m, lines } = await start(t, simpleRoutes({ 'eu-west': [up.address] }), { node: { region: 'eu-west' } }, [up]);
  // The peer (127.0.0.1) is trusted: the client is the address it forwarded, and its request id is kept.
  const res = await send(m.port, { method: 'POST', path: '/p?q=1', body: 'hello', headers: { host: 'www.example.com', 'x-forwarded-for': '203.0.113.7', 'x-request-id': 'req-abc-123' } });
  t.equal(res.status, 200);
  const [line] = await waitFor(() => (lines().length === 1 ? lines() : null), 'one access line');
  t.same(Object.keys(line as Line), FIELDS, 'flat, stable field names in a fixed order');
  t.match(line, {
    type: 'request',
    id: 'req-abc-123',
    client: '203.0.113.7',
    method: 'POST',
    host: 'www.example.com',
    path: '/p?q=1',
    protocol: 'HTTP/1.1',
    status: 200,
    bytesIn: 5,
    bytesOut: res.body.length,
    route: 'web',
    service: 'web',
    version: 'stable',
    region: 'eu-west',
    endpoint: up.address,
    tries: 1,
    error: null,
  });
  t.match((line as Line).time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO 8601 with milliseconds');
  t.ok(typeof (line as Line).durationMs === 'number' && typeof (line as Line).upstreamMs === 'number', 'durations are numbers');
  t.ok(((line as Line).upstreamMs as number) <= ((line as Line).durationMs as number), 'the upstream part is within the whole');
  t.equal(up.seen[0]?.headers['x-request-id'], 'req-abc-123', 'the id logged is the one forwarded');
  // Without an id from a trusted peer, the generated one is logged and forwarded.
  await send(m.port, { path: '/second' });
  const second = await waitFor(() => lines()[1], 'second line');
  t.equal(second.id, up.seen[1]?.headers['x-request-id'], 'a generated id is logged as forwarded upstream');
  t.equal(second.client, '127.0.0.1');
});

t.test('a retried request, a no-route 404, a 502 from a killed upstream, and odd bytes in path and host', async (t) => {
  const bad = await startUpstream('bad');
  const good = await startUpstream('good');
  bad.handle((_req, res) => res.writeHead(503).end('busy\n'));
  const routes = {
    regions: { 'eu-west': { location: { lat: 53.35, lon: -6.26 } }, 'us-east': { location: { lat: 38.9, lon: -77.04 } } },
    services: {
      web: { retries: { attempts: 1 }, slowStart: '0s', versions: { stable: { endpoints: { 'eu-west': [bad.address], 'us-east': [good.address] } } } },
      lone: { retries: { attempts: 0 }, versions: { stable: { endpoints: { 'eu-west': ['127.0.0.1:1'] } } } },
    },
    routes: { web: { hosts: ['web.test'], pathPrefix: '/', service: 'web' }, lone: { hosts: ['lone.test'], pathPrefix: '/', service: 'lone' } },
  };
  const { m, lines } = await start(t, routes, { node: { region: 'eu-west' } }, [bad, good]);
  t.equal((await send(m.port, { path: '/r', headers: { host: 'web.test' } })).status, 200);
  t.equal((await send(m.port, { path: '/nothing', headers: { host: 'nowhere.test' } })).status, 404);
  t.equal((await send(m.port, { path: '/x', headers: { host: 'lone.test' } })).status, 502);
  // Quotes, backslashes, a tab and bytes that are not UTF-8, as far as node:http lets them through (latin1);
  // control characters it refuses are covered by the escaping test (line-writer.test.ts).
  const raw = await rawConnect(m.port);
  raw.socket.write(Buffer.from('GET /q"\\?x="1" HTTP/1.1\r\nHost: no"where\\\xc3\x28\xff\t.test\r\nConnection: close\r\n\r\n', 'latin1'));
  await raw.closed();
  // A head node:http's parser refuses: nothing of the request is known but who sent it and what it was told.
  const malformed = await rawConnect(m.port);
  malformed.socket.write('GET / HTTP/1.1\r\nHost: web.test\r\nNo colon here\r\n\r\n');
  await malformed.closed();
  // An upgrade to an endpoint that refuses: its line comes when the answer ends, with the error.
  const refused = await rawConnect(m.port);
  refused.socket.write('GET /ws HTTP/1.1\r\nHost: lone.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  await refused.closed();
  const all = await waitFor(() => (lines().length >= 6 ? lines() : null), 'six lines');
  t.match(all[4], { type: 'request', status: 400, error: 'bad-request', id: null, method: null, host: null, path: null, client: '127.0.0.1', tries: 0 }, 'a request the parser refused');
  t.match(all[5], { type: 'upgrade', status: 502, error: 'upstream-connect-failed', path: '/ws', route: 'lone', endpoint: '127.0.0.1:1', tries: 1, upstreamMs: null }, 'a failed upgrade');
  t.match(all[0], { status: 200, tries: 2, region: 'us-east', endpoint: good.address, error: null }, 'the retry: two tries, the one that answered');
  t.match(all[1], { status: 404, error: 'no-route', route: null, endpoint: null, tries: 0, upstreamMs: null, host: 'nowhere.test', bytesOut: 'No route matches this host and path\n'.length });
  t.match(all[2], { status: 502, error: 'upstream-connect-failed', route: 'lone', service: 'lone', tries: 1, upstreamMs: null, endpoint: '127.0.0.1:1' });
  const odd = all[3] as Line;
  t.equal(odd.path, '/q"\\?x="1"', 'the path comes back exactly from JSON');
  t.equal(Buffer.from(odd.host as string, 'latin1').toString('hex'), Buffer.from('no"where\\\xc3\x28\xff\t.test', 'latin1').toString('hex'), 'so does the host, byte for byte');
  const text = readFileSync(join(m.dir, 'access.log'));
  t.ok(text.every((b) => b < 0x80), 'the file is pure ASCII (other bytes escaped)');
});

t.test('HTTP/2 and an upgraded connection', async (t) => {
  const up = await startUpstream('ws');
  up.server.on('upgrade', (_req, socket, head) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhi');
    if (head.length > 0) socket.write(head);
    socket.on('data', (chunk: Buffer) => socket.write(chunk));
    socket.on('end', () => socket.end());
  });
  const { m, lines } = await start(t, simpleRoutes({ 'eu-west': [up.address] }), { proxy: { h2c: true } }, [up]);
  up.handle((_req, res) => res.writeHead(404).end('no\n'));
  // HTTP/2 with prior knowledge (h2c).
  const session = h2connect(`http://127.0.0.1:${m.port}`);
  t.teardown(() => session.close());
  await new Promise<void>((resolve, reject) => {
    const stream = session.request({ ':path': '/h2', ':method': 'GET', ':authority': 'h2.test' });
    stream.on('response', () => undefined);
    stream.resume();
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  const h2 = await waitFor(() => lines().find((l) => l.path === '/h2'), 'the HTTP/2 line');
  t.match(h2, { protocol: 'HTTP/2', status: 404, host: 'h2.test', method: 'GET' });
  // An upgrade: written when the connection closes, with the bytes each way.
  const raw = await rawConnect(m.port);
  raw.socket.write('GET /chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  await raw.until((d) => d.includes('hi'), 'the greeting');
  raw.socket.write('0123456789');
  await raw.until((d) => d.toString().endsWith('0123456789'), 'the echo');
  t.equal(lines().filter((l) => l.type === 'upgrade').length, 0, 'nothing is written while the connection is open');
  raw.socket.end();
  await raw.closed();
  const upgrade = await waitFor(() => lines().find((l) => l.type === 'upgrade'), 'the upgrade line');
  t.match(upgrade, { type: 'upgrade', status: 101, path: '/chat', host: 'ws.test', bytesIn: 10, bytesOut: 12, tries: 1, route: 'web', endpoint: up.address, error: null });
  t.ok((upgrade.durationMs as number) >= (upgrade.upstreamMs as number), 'its duration is the whole connection');
});

t.test('successes are sampled, errors always written', async (t) => {
  const up = await startUpstream('a');
  const { m, lines } = await start(t, simpleRoutes({ 'eu-west': [up.address] }), { log: { successSample: 0.0001 } }, [up]);
  // At 1 in 10,000, 20 successes most likely write nothing (at most a couple); every error is written.
  for (let i = 0; i < 20; i++) await send(m.port, { path: `/ok${i}` });
  up.handle((_req, res) => res.writeHead(500).end('boom\n'));
  await send(m.port, { path: '/fails' });
  t.equal((await send(m.port, { path: '/none', headers: { host: 'x' } })).status, 500);
  const failed = await waitFor(() => lines().find((l) => l.path === '/fails'), 'the 500 line');
  t.match(failed, { status: 500, error: null, bytesOut: 5 }, 'an upstream 5xx is written, with no error code of its own');
  await waitFor(() => lines().find((l) => l.path === '/none'), 'the second 500 line');
  t.ok(lines().length <= 4, `successes are sampled (${lines().length - 2} of 20 written)`);
});
