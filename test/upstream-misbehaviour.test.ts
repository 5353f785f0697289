import t, { type Test } from 'tap';
import { send } from './helpers/client.js';
import { outstanding, parseRawResponse, rawConnect } from './helpers/data-plane.js';
import { simpleRoutes, startTestMeridian, type StaticOverrides, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startRawUpstream, writeInPieces, type RawUpstream } from './helpers/raw-upstream.js';

const OK_HELLO = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello';

/** A raw upstream behind a Meridian; both torn down with the test (closing Meridian twice is harmless). */
async function setup(t: Test, service: Record<string, unknown> = {}, overrides: StaticOverrides = {}): Promise<{ up: RawUpstream; m: TestMeridian }> {
  const up = await startRawUpstream();
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [up.address] }, service), overrides);
  t.teardown(async () => {
    await m.close();
    await up.close();
  });
  return { up, m };
}

/** Resolves with what `promise` gives, or rejects when it takes longer than `ms` (a hang, not a speed check). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms}ms`)), ms);
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** Checks that a Meridian still serves a normal request, then closes well before its 5 s shutdown timeout. */
async function stillServesAndCloses(t: Test, up: RawUpstream, m: TestMeridian): Promise<void> {
  up.script((socket) => socket.write(OK_HELLO));
  const after = await send(m.port, { path: '/after' });
  t.equal(after.status, 200, 'a normal request afterwards is served');
  t.equal(after.text, 'hello');
  await waitFor(() => outstanding(m) === 0, 'nothing outstanding');
  await within(m.close(), 3_000, 'shutdown');
  t.pass('Meridian closed without waiting for a stuck exchange');
}

t.test('an invalid reason phrase is replaced by the standard one; nothing hangs', async (t) => {
  const { up, m } = await setup(t);
  up.script((socket) => socket.write('HTTP/1.1 200 O\x01K\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello'));
  const client = await rawConnect(m.port);
  t.teardown(() => client.socket.destroy());
  client.socket.write('GET /reason HTTP/1.1\r\nHost: a.test\r\n\r\n');
  const data = await client.until((d) => {
    const res = parseRawResponse(d);
    return res !== null && res.body.length >= 5;
  }, 'a complete response');
  const res = parseRawResponse(data);
  t.equal(res?.status, 200, 'the upstream status is relayed');
  t.equal(res?.statusText, 'OK', 'with the standard reason phrase');
  t.equal(res?.body.toString(), 'hello', 'and the whole body');
  await stillServesAndCloses(t, up, m);
});

t.test('an upstream header value node:http refuses: 502 upstream-bad-response, complete', async (t) => {
  const { up, m } = await setup(t);
  up.script((socket) => socket.write('HTTP/1.1 200 OK\r\nx-bad: a\x01b\r\ncontent-length: 5\r\n\r\nhello'));
  const res = await send(m.port, { path: '/bad-header' });
  t.equal(res.status, 502);
  t.equal(res.headers['x-meridian-error'], 'upstream-bad-response');
  t.equal(res.text, 'The upstream sent an invalid response\n', 'a complete error body');
  await stillServesAndCloses(t, up, m);
});

t.test('a status outside 100-599 (600, 999): 502 upstream-bad-response', async (t) => {
  const { up, m } = await setup(t);
  for (const status of [600, 999]) {
    up.script((socket) => socket.write(`HTTP/1.1 ${status} Odd\r\ncontent-length: 5\r\n\r\nhello`));
    const res = await send(m.port, { path: `/status-${status}` });
    t.equal(res.status, 502, `${status} is not relayed`);
    t.equal(res.headers['x-meridian-error'], 'upstream-bad-response');
  }
  await stillServesAndCloses(t, up, m);
});

t.test('102 Processing every 50 ms does not extend timeouts.request: 504 upstream-timeout', async (t) => {
  const { up, m } = await setup(t, { timeouts: { request: '300ms' } });
  up.script((socket) => {
    const timer = setInterval(() => socket.write('HTTP/1.1 102 Processing\r\n\r\n'), 50);
    socket.once('close', () => clearInterval(timer));
  });
  const started = Date.now();
  const res = await send(m.port, { path: '/processing' });
  const elapsed = Date.now() - started;
  t.equal(res.status, 504);
  t.equal(res.headers['x-meridian-error'], 'upstream-timeout');
  t.ok(elapsed >= 250, `not before the timeout (${elapsed}ms)`);
  t.ok(elapsed < 2_500, `bounded by the request timeout, not by the interim responses (${elapsed}ms)`);
  await stillServesAndCloses(t, up, m);
});

t.test('interim responses do not extend perTryTimeout: the next endpoint answers', async (t) => {
  const stuck = await startRawUpstream();
  const good = await startRawUpstream();
  t.teardown(async () => {
    await stuck.close();
    await good.close();
  });
  stuck.script((socket) => {
    const timer = setInterval(() => socket.write('HTTP/1.1 102 Processing\r\n\r\n'), 50);
    socket.once('close', () => clearInterval(timer));
  });
  good.script((socket) => socket.write(OK_HELLO));
  const m = await startTestMeridian(
    simpleRoutes({ 'eu-west': [stuck.address], 'us-east': [good.address] }, { retries: { attempts: 1, perTryTimeout: '200ms' }, timeouts: { request: '10s' } }),
    { node: { region: 'eu-west' } },
  );
  t.teardown(() => m.close());
  const res = await send(m.port, { path: '/retry' });
  t.equal(res.status, 200, 'the try stuck in 102s timed out and was retried');
  t.equal(res.text, 'hello');
  t.equal(stuck.requests.length, 1, 'the stuck endpoint got the first try');
  t.equal(good.requests.length, 1, 'the other region got the retry');
  const metrics = await send(m.adminPort, { path: '/metrics' });
  t.match(metrics.text, /meridian_retries_total\{service="web",reason="upstream-timeout"\} 1/, 'counted as a timeout');
});

t.test('an unsolicited 100 Continue before the answer is dropped; the answer is relayed', async (t) => {
  const { up, m } = await setup(t);
  const cases: { name: string; pieces: string[] }[] = [
    { name: 'one segment', pieces: [`HTTP/1.1 100 Continue\r\n\r\n${OK_HELLO}`] },
    { name: '100 alone, then the answer', pieces: ['HTTP/1.1 100 Continue\r\n\r\n', OK_HELLO] },
    { name: 'split inside the status line and the blank line', pieces: ['HTT', 'P/1.1 10', '0 Continue\r\n\r', `\n${OK_HELLO}`] },
    { name: 'two 100s', pieces: ['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n', `\r\n${OK_HELLO}`] },
    { name: '100 with headers, then 102, then the answer', pieces: ['HTTP/1.1 100 Continue\r\nx-a: 1\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n', OK_HELLO] },
  ];
  for (const c of cases) {
    up.script((socket) => writeInPieces(socket, c.pieces));
    const res = await send(m.port, { path: '/continue' });
    t.equal(res.status, 200, `${c.name}: 200`);
    t.equal(res.text, 'hello', `${c.name}: body intact`);
  }
  t.equal(new Set(up.requests.map((r) => r.connection)).size, 1, 'every exchange reused one upstream connection: none was torn down');
  const lookalike = 'HTTP/1.1 100 Continue\r\n\r\n';
  up.script((socket) => socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${lookalike.length}\r\n\r\n${lookalike}`));
  const body = await send(m.port, { path: '/body' });
  t.equal(body.text, lookalike, 'a body that looks like a 100 head is not touched');
  await stillServesAndCloses(t, up, m);
});

t.test('a POST with a body behind an unsolicited 100 arrives whole', async (t) => {
  const { up, m } = await setup(t);
  up.script((socket) => writeInPieces(socket, ['HTTP/1.1 100 Continue\r\n\r\n', OK_HELLO]));
  const payload = Buffer.alloc(100_000, 'p');
  const res = await send(m.port, { method: 'POST', path: '/upload', body: payload });
  t.equal(res.status, 200);
  t.equal(res.text, 'hello');
  t.match(up.requests.at(-1)?.head, /content-length: 100000/i, 'the request went out with its body');
});

t.test('103 Early Hints: at most 3 relayed per request', async (t) => {
  const { up, m } = await setup(t);
  up.script((socket) => {
    let out = '';
    for (let i = 0; i < 10; i++) out += `HTTP/1.1 103 Early Hints\r\nLink: </style-${i}.css>; rel=preload\r\n\r\n`;
    writeInPieces(socket, [out, OK_HELLO]);
  });
  const client = await rawConnect(m.port);
  t.teardown(() => client.socket.destroy());
  client.socket.write('GET /hints HTTP/1.1\r\nHost: a.test\r\n\r\n');
  const data = await client.until((d) => d.includes('\r\n\r\nhello'), 'the final response');
  const text = data.toString('latin1');
  const hints = text.match(/HTTP\/1\.1 103 /g) ?? [];
  t.equal(hints.length, 3, 'three 103s reached the client');
  t.match(text, /style-0\.css[\s\S]*style-1\.css[\s\S]*style-2\.css/, 'the first three, in order');
  t.notMatch(text, /style-3\.css/, 'the fourth is dropped');
  t.match(text, /HTTP\/1\.1 200 OK\r\n/, 'then the answer');
});

t.test('upstream x-meridian-* headers never reach the client; debug headers are still added', async (t) => {
  const { up, m } = await setup(t, {}, { proxy: { debugHeaders: true } });
  up.script((socket) =>
    socket.write('HTTP/1.1 200 OK\r\nx-meridian-error: no-route\r\nX-Meridian-Region: fake\r\nx-meridianish: kept\r\ncontent-length: 5\r\n\r\nhello'),
  );
  const res = await send(m.port, { path: '/spoof' });
  t.equal(res.status, 200);
  t.equal(res.headers['x-meridian-error'], undefined, "an upstream x-meridian-error is not relayed as if it were Meridian's");
  t.equal(res.headers['x-meridian-region'], 'eu-west', "the region header is Meridian's own");
  t.equal(res.headers['x-meridianish'], 'kept', 'other headers pass');
});

t.test('upgrade requests: a declined upgrade is sanitised the same way; status 600 is 502', async (t) => {
  const { up, m } = await setup(t);
  const upgrade = 'GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
  up.script((socket) => socket.write('HTTP/1.1 403 No\x01pe\r\nx-meridian-error: fake\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno'));
  const declined = await rawConnect(m.port);
  t.teardown(() => declined.socket.destroy());
  declined.socket.write(upgrade);
  await declined.closed();
  const res = parseRawResponse(declined.received());
  t.equal(res?.status, 403, 'the refusal is relayed');
  t.equal(res?.statusText, 'Forbidden', 'with the standard reason phrase');
  t.equal(res?.headers.get('x-meridian-error'), undefined, "the upstream's x-meridian-error is dropped");
  t.equal(res?.body.toString(), 'no');

  up.script((socket) => socket.write('HTTP/1.1 600 Odd\r\ncontent-length: 2\r\n\r\nno'));
  const odd = await rawConnect(m.port);
  t.teardown(() => odd.socket.destroy());
  odd.socket.write(upgrade);
  await odd.closed();
  const bad = parseRawResponse(odd.received());
  t.equal(bad?.status, 502);
  t.same(bad?.headers.get('x-meridian-error'), ['upstream-bad-response']);
  await stillServesAndCloses(t, up, m);
});
