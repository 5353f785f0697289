import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import t, { type Test } from 'tap';
import { send } from './helpers/client.js';
import { outstanding, sha256, streamRequest } from './helpers/data-plane.js';
import { simpleRoutes, startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

const MiB = 1024 * 1024;

/** One upstream behind one Meridian; both torn down with the test. */
async function setup(t: Test, service: Record<string, unknown> = {}, options: { collectBody?: boolean } = {}): Promise<{ up: TestUpstream; m: TestMeridian }> {
  const up = await startUpstream('stream', options);
  const m = await startTestMeridian(simpleRoutes({ 'eu-west': [up.address] }, service));
  t.teardown(async () => {
    await m.close();
    await up.kill();
  });
  return { up, m };
}

/** Answers with the SHA-256 and length of the body the upstream received. */
function digestHandler(up: TestUpstream): void {
  up.handle((_req, res, body) => {
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`${sha256(body)} ${body.length}`);
  });
}

t.test('a 1 MiB request body arrives byte-identical, with content-length and chunked', async (t) => {
  const { up, m } = await setup(t);
  digestHandler(up);
  const payload = randomBytes(MiB);
  const expected = `${sha256(payload)} ${MiB}`;

  const fixed = await send(m.port, { method: 'POST', path: '/fixed', headers: { 'content-length': String(MiB) }, body: payload });
  t.equal(fixed.status, 200);
  t.equal(fixed.text, expected, 'fixed-length body intact');
  t.equal(up.seen.at(-1)?.headers['content-length'], String(MiB), 'content-length forwarded');

  const chunked = await streamRequest(m.port, {
    method: 'POST',
    path: '/chunked',
    write: (req) => {
      // Several writes without a content-length: node:http frames them chunked.
      for (let offset = 0; offset < payload.length; offset += 64 * 1024) req.write(payload.subarray(offset, offset + 64 * 1024));
      req.end();
    },
  });
  t.equal(chunked.error, null);
  t.equal(chunked.status, 200);
  t.equal(chunked.body.toString(), expected, 'chunked body intact');
  t.equal(up.seen.at(-1)?.headers['transfer-encoding'], 'chunked', 'a body of unknown length is streamed chunked, not buffered');
  t.equal(outstanding(m), 0);
});

t.test('a 1 MiB response body arrives byte-identical, fixed-length and chunked', async (t) => {
  const { up, m } = await setup(t);
  const payload = randomBytes(MiB);
  up.handle((req, res) => {
    if (req.url === '/fixed') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(MiB) }).end(payload);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    for (let offset = 0; offset < payload.length; offset += 100_000) res.write(payload.subarray(offset, offset + 100_000));
    res.end();
  });
  const fixed = await send(m.port, { path: '/fixed' });
  t.equal(fixed.status, 200);
  t.equal(fixed.headers['content-length'], String(MiB));
  t.equal(fixed.body.length, MiB);
  t.equal(sha256(fixed.body), sha256(payload), 'fixed-length response intact');

  const chunked = await send(m.port, { path: '/chunked' });
  t.equal(chunked.status, 200);
  t.equal(chunked.headers['transfer-encoding'], 'chunked');
  t.equal(chunked.body.length, MiB);
  t.equal(sha256(chunked.body), sha256(payload), 'chunked response intact');
  t.equal(outstanding(m), 0);
});

t.test('a client that aborts mid-request-body: the upstream request is aborted, nothing leaks', async (t) => {
  const { up, m } = await setup(t);
  const half = randomBytes(MiB / 2);
  const outcome = await streamRequest(m.port, {
    method: 'POST',
    path: '/upload',
    headers: { 'content-length': String(MiB) },
    write: (req) => {
      req.write(half);
      // Cut the connection once the upstream has the request in hand.
      void waitFor(() => up.seen.length === 1, 'the upload to reach the upstream').then(
        () => req.destroy(),
        () => req.destroy(),
      );
    },
  });
  t.equal(outcome.status, 0, 'the client got no response: it went away first');
  t.equal(up.seen.length, 1);
  await waitFor(() => up.seen[0]?.aborted, 'the upstream request to be aborted');
  t.ok(up.seen[0]?.aborted, 'the upstream saw the request aborted, not completed');
  t.ok((up.seen[0]?.body.length ?? 0) < MiB, 'the upstream never got a complete body');
  await waitFor(() => outstanding(m) === 0, 'outstanding to return to 0');
  t.equal(outstanding(m), 0, 'no request is left outstanding');
  const after = await send(m.port, { path: '/after' });
  t.equal(after.status, 200, 'the proxy still serves requests');
  t.equal(outstanding(m), 0);
});

t.test('a client that aborts during a slow response: the upstream response is closed, nothing leaks', async (t) => {
  const { up, m } = await setup(t);
  let responseClosedEarly = false;
  let responseClosed = false;
  let timer: NodeJS.Timeout | undefined;
  t.teardown(() => clearInterval(timer));
  up.handle((req, res: ServerResponse) => {
    if (req.url !== '/slow') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('quick');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    let sent = 0;
    timer = setInterval(() => {
      res.write(`chunk ${sent++}\n`);
      if (sent === 200) res.end();
    }, 25);
    res.on('close', () => {
      clearInterval(timer);
      responseClosed = true;
      responseClosedEarly = !res.writableFinished;
    });
  });
  const outcome = await streamRequest(m.port, {
    path: '/slow',
    onData: (_chunk, req) => req.destroy(),
  });
  t.equal(outcome.status, 200, 'the response had started');
  t.notOk(outcome.complete, 'the client did not read it to the end');
  await waitFor(() => responseClosed, 'the upstream response to close');
  t.ok(responseClosedEarly, 'the upstream response was closed before it finished');
  await waitFor(() => outstanding(m) === 0, 'outstanding to return to 0');
  t.equal(outstanding(m), 0);
  const after = await send(m.port, { path: '/after' });
  t.equal(after.text, 'quick', 'the proxy still serves requests');
});

t.test('an upstream that resets the connection: 502 upstream-reset', async (t) => {
  const { up, m } = await setup(t);
  up.handle((req) => req.socket.destroy());
  const res = await send(m.port, { path: '/reset' });
  t.equal(res.status, 502);
  t.equal(res.headers['x-meridian-error'], 'upstream-reset');
  t.match(res.headers['content-type'], /^text\/plain/);
  t.ok(res.body.length > 0 && res.body.length < 200, `a short body (${JSON.stringify(res.text)})`);
  t.equal(outstanding(m), 0);
});

t.test('an upstream whose port is closed: 502 upstream-connect-failed', async (t) => {
  const { up, m } = await setup(t);
  await up.kill();
  const res = await send(m.port, { path: '/dead' });
  t.equal(res.status, 502);
  t.equal(res.headers['x-meridian-error'], 'upstream-connect-failed');
  t.match(res.headers['content-type'], /^text\/plain/);
  t.equal(outstanding(m), 0);
});

t.test('an upstream that answers too late: 504 upstream-timeout after the service request timeout', async (t) => {
  const { up, m } = await setup(t, { timeouts: { request: '300ms' } });
  let late: NodeJS.Timeout | undefined;
  t.teardown(() => clearTimeout(late));
  up.handle((_req, res) => {
    late = setTimeout(() => res.writeHead(200).end('too late'), 3_000);
    res.on('close', () => clearTimeout(late));
  });
  const started = Date.now();
  const res = await send(m.port, { path: '/late' });
  const elapsed = Date.now() - started;
  t.equal(res.status, 504);
  t.equal(res.headers['x-meridian-error'], 'upstream-timeout');
  t.ok(elapsed >= 250, `not before the timeout (${elapsed}ms)`);
  t.ok(elapsed < 2_500, `well before the upstream would answer (${elapsed}ms)`);
  t.equal(outstanding(m), 0);
});

t.test('an upstream that resets mid-body cuts the client connection', async (t) => {
  const { up, m } = await setup(t);
  up.handle((req, res) => {
    const fixed = req.url === '/fixed';
    res.writeHead(200, fixed ? { 'content-type': 'text/plain', 'content-length': '100000' } : { 'content-type': 'text/plain' });
    res.write(Buffer.alloc(10_000, 'x'), () => setTimeout(() => req.socket.destroy(), 20));
  });
  for (const path of ['/fixed', '/chunked']) {
    const outcome = await streamRequest(m.port, { path });
    t.equal(outcome.status, 200, `${path}: the response head had been relayed`);
    t.notOk(outcome.complete, `${path}: the client does not see a complete response`);
    t.ok(outcome.body.length < 100_000, `${path}: only part of the body arrived (${outcome.body.length} bytes)`);
    await waitFor(() => outstanding(m) === 0, 'outstanding to return to 0');
  }
});

t.test('Expect: 100-continue: the client gets 100 Continue and the body is delivered', async (t) => {
  const { up, m } = await setup(t);
  digestHandler(up);
  const body = randomBytes(64 * 1024);
  const outcome = await streamRequest(m.port, {
    method: 'POST',
    path: '/upload',
    headers: { expect: '100-continue', 'content-length': String(body.length) },
    onContinue: (req) => req.end(body),
  });
  t.ok(outcome.continued, 'the client got 100 Continue');
  t.equal(outcome.status, 200);
  t.equal(outcome.body.toString(), `${sha256(body)} ${body.length}`, 'the body reached the upstream intact');
  t.equal(up.seen.at(-1)?.headers.expect, undefined, 'Expect is not forwarded');
});

t.test('Expect: 100-continue with no matching route: 404 without a 100', async (t) => {
  const up = await startUpstream('only');
  const m = await startTestMeridian({
    regions: { 'eu-west': { location: { lat: 53.35, lon: -6.26 } } },
    services: { web: { versions: { stable: { endpoints: { 'eu-west': [up.address] } } } } },
    routes: { web: { hosts: ['known.test'], pathPrefix: '/', service: 'web' } },
  });
  t.teardown(async () => {
    await m.close();
    await up.kill();
  });
  const outcome = await streamRequest(m.port, {
    method: 'POST',
    path: '/upload',
    headers: { host: 'unknown.test', expect: '100-continue', 'content-length': '5' },
    onContinue: (req) => req.end('hello'),
  });
  t.notOk(outcome.continued, 'no 100 Continue was sent');
  t.equal(outcome.status, 404);
  t.equal(outcome.headers['x-meridian-error'], 'no-route');
  t.equal(up.seen.length, 0, 'nothing reached the upstream');
});

t.test('HEAD, 204 and 304 pass through without a body', async (t) => {
  const { up, m } = await setup(t);
  up.handle((req, res) => {
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1234' }).end();
    } else if (req.url === '/empty') {
      res.writeHead(204, { 'x-empty': 'yes' }).end();
    } else if (req.headers['if-none-match'] === '"v1"') {
      res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=60' }).end();
    } else {
      res.writeHead(200, { etag: '"v1"' }).end('fresh');
    }
  });
  const head = await send(m.port, { method: 'HEAD', path: '/file' });
  t.equal(head.status, 200);
  t.equal(up.seen.at(-1)?.method, 'HEAD', 'the upstream saw HEAD');
  t.equal(head.headers['content-length'], '1234', "the upstream's content-length is relayed");
  t.equal(head.body.length, 0, 'no body');

  const empty = await send(m.port, { path: '/empty' });
  t.equal(empty.status, 204);
  t.equal(empty.headers['x-empty'], 'yes');
  t.equal(empty.body.length, 0);

  const fresh = await send(m.port, { path: '/cached' });
  t.equal(fresh.status, 200);
  t.equal(fresh.text, 'fresh');
  const notModified = await send(m.port, { path: '/cached', headers: { 'if-none-match': '"v1"' } });
  t.equal(notModified.status, 304);
  t.equal(notModified.headers.etag, '"v1"');
  t.equal(notModified.headers['cache-control'], 'max-age=60');
  t.equal(notModified.body.length, 0);
  t.equal(outstanding(m), 0);
});
