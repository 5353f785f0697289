import t, { type Test } from 'tap';
import { ConfigError, formatIssue } from '../src/config/issues.js';
import { buildStaticConfig } from '../src/config/static-load.js';
import { send } from './helpers/client.js';
import { parseRawResponse, rawConnect, type RawClient, type RawResponse } from './helpers/data-plane.js';
import { simpleRoutes, startTestMeridian, type StaticOverrides, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

async function setup(t: Test, overrides: StaticOverrides = {}): Promise<{ up: TestUpstream; m: TestMeridian }> {
  const up = await startUpstream('limits');
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [up.address] }), overrides);
  t.teardown(async () => {
    await m.close();
    await up.kill();
  });
  return { up, m };
}

/** Whether raw bytes hold a complete content-length framed response after `from`. */
function completeAfter(data: Buffer, from: number): boolean {
  const res = parseRawResponse(data.subarray(from));
  return res !== null && res.body.length >= Number(res.headers.get('content-length')?.[0] ?? 0);
}

/** Sends one request on a raw client and reads its response (content-length framed). */
async function exchange(client: RawClient, bytes: string): Promise<RawResponse> {
  const from = client.received().length;
  client.socket.write(bytes);
  const data = await client.until((d) => completeAfter(d, from), 'a complete response');
  return parseRawResponse(data.subarray(from)) as RawResponse;
}

async function metric(m: TestMeridian, name: string): Promise<number> {
  const res = await send(m.adminPort, { path: '/metrics' });
  const line = res.text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.slice(name.length + 1));
}

t.test('a request Transfer-Encoding other than exactly chunked: 501 and the connection closes', async (t) => {
  const { up, m } = await setup(t);
  const cases = ['gzip, chunked', 'identity, chunked', 'x-custom,chunked'];
  for (const coding of cases) {
    const client = await rawConnect(m.port);
    t.teardown(() => client.socket.destroy());
    const res = await exchange(client, `POST /te HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: ${coding}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
    t.equal(res.status, 501, coding);
    t.same(res.headers.get('x-meridian-error'), ['unsupported-transfer-coding']);
    t.same(res.headers.get('connection'), ['close']);
    await client.closed();
  }
  // node:http's parser already refuses chunked twice (400) before Meridian sees the request.
  for (const head of ['Transfer-Encoding: chunked, chunked', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked']) {
    const client = await rawConnect(m.port);
    t.teardown(() => client.socket.destroy());
    const res = await exchange(client, `POST /te HTTP/1.1\r\nHost: a.test\r\n${head}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
    t.equal(res.status, 400, JSON.stringify(head));
    t.same(res.headers.get('x-meridian-error'), ['bad-request'], "node:http's own refusals are answered like Meridian's");
  }
  t.equal(up.seen.length, 0, 'none reached the upstream');

  const fine = await rawConnect(m.port);
  t.teardown(() => fine.socket.destroy());
  const ok = await exchange(fine, 'POST /te HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding:  ChunKed \r\n\r\n5\r\nhello\r\n0\r\n\r\n');
  t.equal(ok.status, 200, 'chunked in any case, with surrounding whitespace');
  t.equal(up.seen.at(-1)?.body.toString(), 'hello');
});

/** A request with `count` header fields in all (Host included). */
function withHeaders(count: number): string {
  let out = 'GET /many HTTP/1.1\r\nHost: a.test\r\n';
  for (let i = 1; i < count; i++) out += `h${i}: ${i}\r\n`;
  return `${out}\r\n`;
}

t.test('proxy.maxHeaders (default 100): one field more is 431, never truncated', async (t) => {
  const { up, m } = await setup(t);
  const client = await rawConnect(m.port);
  t.teardown(() => client.socket.destroy());
  const full = await exchange(client, withHeaders(100));
  t.equal(full.status, 200, '100 fields pass');
  t.equal(up.seen.at(-1)?.headers.h99, '99', 'the last one arrives');
  const over = await exchange(client, withHeaders(101));
  t.equal(over.status, 431, '101 fields');
  t.same(over.headers.get('x-meridian-error'), ['too-many-headers']);
  const far = await exchange(client, withHeaders(1100));
  t.equal(far.status, 431, 'more than node:http keeps by default (1,000)');
  // Depending on the Node version the parser may already refuse a head this size (16 KiB): either way 431, never truncated.
  t.ok(['too-many-headers', 'request-headers-too-large'].includes(far.headers.get('x-meridian-error')?.[0] ?? ''), `x-meridian-error ${String(far.headers.get('x-meridian-error'))}`);
  t.equal(up.seen.length, 1, 'only the first reached the upstream');
});

t.test('proxy.maxHeaders is configurable and applies to upgrades too', async (t) => {
  const { m } = await setup(t, { proxy: { maxHeaders: 5 } });
  const client = await rawConnect(m.port);
  t.teardown(() => client.socket.destroy());
  t.equal((await exchange(client, withHeaders(5))).status, 200);
  t.equal((await exchange(client, withHeaders(6))).status, 431);
  const upgrade = await rawConnect(m.port);
  t.teardown(() => upgrade.socket.destroy());
  const res = await exchange(upgrade, 'GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n');
  t.equal(res.status, 431, 'an upgrade with 6 fields');
});

t.test('proxy.maxConnections: extra connections are refused while the capped ones are served', async (t) => {
  const { m } = await setup(t, { proxy: { maxConnections: 2 } });
  const first = await rawConnect(m.port);
  const second = await rawConnect(m.port);
  t.teardown(() => {
    first.socket.destroy();
    second.socket.destroy();
  });
  const request = 'GET /capped HTTP/1.1\r\nHost: a.test\r\n\r\n';
  t.equal((await exchange(first, request)).status, 200);
  t.equal((await exchange(second, request)).status, 200);
  const third = await rawConnect(m.port);
  t.teardown(() => third.socket.destroy());
  third.socket.write(request);
  await third.closed();
  t.equal(third.received().length, 0, 'the third connection is closed without an answer');
  t.equal((await exchange(first, request)).status, 200, 'the capped connections are still served');
  t.equal((await exchange(second, request)).status, 200);
  t.equal(await metric(m, 'meridian_connections_refused_total'), 1, 'the refusal is counted');
  first.socket.destroy();
  await waitFor(async () => {
    const again = await rawConnect(m.port);
    try {
      return (await exchange(again, request)).status === 200;
    } finally {
      again.socket.destroy();
    }
  }, 'a free slot to be usable again');
  t.pass('a slot freed by a closed connection is usable again');
});

t.test('proxy.maxHeaders, maxConnections and escapedSlashes: defaults and refused values', async (t) => {
  const defaults = buildStaticConfig({ store: { file: 'routes.yaml' } });
  t.equal(defaults.proxy.maxHeaders, 100);
  t.equal(defaults.proxy.maxConnections, undefined, 'no connection cap by default');
  t.equal(defaults.proxy.escapedSlashes, 'keep');
  let issues: string[] = [];
  try {
    buildStaticConfig({ store: { file: 'routes.yaml' }, proxy: { maxHeaders: 0, maxConnections: 1.5, escapedSlashes: 'decode' } });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    issues = err.issues.map(formatIssue);
  }
  t.equal(issues.length, 3, issues.join('; '));
  t.match(issues.join('\n'), /proxy\.maxHeaders: /);
  t.match(issues.join('\n'), /proxy\.maxConnections: /);
  t.match(issues.join('\n'), /proxy\.escapedSlashes: /);
});

t.test("requests node:http's parser refuses get Meridian's error answers: malformed 400, head too large 431, too slow 408", async (t) => {
  const { up, m } = await setup(t, { proxy: { headersTimeout: '300ms' } });
  const garbage = await rawConnect(m.port);
  t.teardown(() => garbage.socket.destroy());
  const bad = await exchange(garbage, 'GET /x HTTP/1.1\r\nHost: a.test\r\nBad Header: 1\r\n\r\n');
  t.equal(bad.status, 400);
  t.same(bad.headers.get('x-meridian-error'), ['bad-request']);
  t.same(bad.headers.get('connection'), ['close']);
  await garbage.closed();

  const large = await rawConnect(m.port);
  t.teardown(() => large.socket.destroy());
  const big = await exchange(large, `GET /x HTTP/1.1\r\nHost: a.test\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`);
  t.equal(big.status, 431);
  t.same(big.headers.get('x-meridian-error'), ['request-headers-too-large']);

  const slow = await rawConnect(m.port);
  t.teardown(() => slow.socket.destroy());
  slow.socket.write('GET /x HTTP/1.1\r\nHost: a.test\r\n');
  const data = await slow.until((d) => completeAfter(d, 0), 'the timeout answer', 5_000);
  const timedOut = parseRawResponse(data) as RawResponse;
  t.equal(timedOut.status, 408, 'a head not finished within proxy.headersTimeout');
  t.same(timedOut.headers.get('x-meridian-error'), ['request-timeout']);
  t.equal(up.seen.length, 0, 'none reached the upstream');
  const metrics = (await send(m.adminPort, { path: '/metrics' })).text;
  t.match(metrics, /meridian_proxy_errors_total\{code="request-headers-too-large"\} 1/);
  t.match(metrics, /meridian_proxy_errors_total\{code="request-timeout"\} 1/);
});
