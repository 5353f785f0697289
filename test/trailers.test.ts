import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import t, { type Test } from 'tap';
import { send } from './helpers/client.js';
import { startH2Upstream, type H2Upstream } from './helpers/h2-upstream.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

interface Setup {
  readonly m: TestMeridian;
  readonly h1: TestUpstream;
  readonly h2c: H2Upstream;
}

/** An HTTP/1.1 upstream (h1.test) and an h2c upstream (h2.test), each answering with a body and trailers. */
async function setup(t: Test): Promise<Setup> {
  const h1 = await startUpstream('h1');
  h1.handle((req, res, body) => {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
    res.write(`h1 got ${body.length} bytes, te=${req.headers.te ?? '-'}`);
    res.addTrailers({ 'x-checksum': 'h1-sum', 'x-meridian-spoofed': 'no' });
    res.end();
  });
  const h2c = await startH2Upstream('h2c');
  h2c.handle((stream, seen) => {
    stream.respond({ ':status': 200, 'content-type': 'text/plain' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'h2-sum', 'x-meridian-spoofed': 'no' }));
    stream.end(`h2c got ${seen.body.length} bytes, te=${String(seen.headers.te ?? '-')}`);
  });
  t.teardown(async () => {
    await h1.kill();
    await h2c.close();
  });
  const m = await startTestMeridian(
    {
      regions: { 'eu-west': { location: { lat: 53.35, lon: -6.26 } } },
      services: {
        h1: { versions: { v1: { endpoints: { 'eu-west': [h1.address] } } } },
        h2c: { versions: { v1: { protocol: 'h2c', endpoints: { 'eu-west': [`127.0.0.1:${h2c.port}`] } } } },
      },
      routes: { h1: { hosts: ['h1.test'], service: 'h1' }, h2c: { hosts: ['h2.test'], service: 'h2c' } },
    },
    { proxy: { h2c: true } },
  );
  t.teardown(() => m.close());
  return { m, h1, h2c };
}

/** An HTTP/1.1 request: status, body and the response trailers node:http parsed. */
function h1Request(port: number, host: string, headers: Record<string, string>, body?: string): Promise<{ status: number; body: string; trailers: IncomingHttpHeaders; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: body === undefined ? 'GET' : 'POST', path: '/', headers: { host, ...headers }, agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, trailers: res.trailers, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** An HTTP/2 request: status, body and the trailing HEADERS. */
function h2Request(s: ClientHttp2Session, host: string, te = true): Promise<{ status: number; body: string; trailers: IncomingHttpHeaders | null }> {
  return new Promise((resolve, reject) => {
    const stream = s.request({ ':path': '/', ':authority': host, ...(te ? { te: 'trailers' } : {}) });
    let status = 0;
    let body = '';
    let trailers: IncomingHttpHeaders | null = null;
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('trailers', (h) => (trailers = h));
    stream.on('data', (d: Buffer) => (body += d.toString()));
    stream.on('end', () => resolve({ status, body, trailers }));
    stream.on('error', reject);
  });
}

t.test('response trailers reach an HTTP/1.1 client, after the last chunk', async (t) => {
  const { m } = await setup(t);
  for (const host of ['h1.test', 'h2.test']) {
    const r = await h1Request(m.port, host, { te: 'trailers' });
    t.equal(r.status, 200, `${host}: served`);
    t.equal(r.headers['transfer-encoding'], 'chunked', `${host}: chunked, which is what carries trailers`);
    t.equal(r.trailers['x-checksum'], host === 'h1.test' ? 'h1-sum' : 'h2-sum', `${host}: the upstream's trailer arrives`);
    t.notOk('x-meridian-spoofed' in r.trailers, `${host}: an upstream cannot speak in Meridian's namespace in trailers either`);
    t.match(r.body, /te=trailers$/, `${host}: te: trailers reached the upstream`);
  }
  const plain = await h1Request(m.port, 'h1.test', { te: 'gzip, chunked' });
  t.match(plain.body, /te=-$/, 'a te without trailers is hop-by-hop and stays with Meridian');
});

t.test('response trailers reach an HTTP/2 client as trailing HEADERS', async (t) => {
  const { m } = await setup(t);
  const s = h2connect(`http://127.0.0.1:${m.port}`);
  s.on('error', () => undefined);
  t.teardown(() => s.close());
  for (const host of ['h1.test', 'h2.test']) {
    const r = await h2Request(s, host);
    t.equal(r.status, 200, `${host}: served over h2c`);
    t.equal(r.trailers?.['x-checksum'], host === 'h1.test' ? 'h1-sum' : 'h2-sum', `${host}: the trailer arrives as trailing HEADERS`);
    t.notOk(r.trailers !== null && 'x-meridian-spoofed' in r.trailers, `${host}: without the x-meridian- one`);
    t.match(r.body, /te=trailers$/, `${host}: te: trailers reached the upstream`);
  }
  const announced = await h2Request(s, 'h1.test', false);
  t.equal(announced.trailers?.['x-checksum'], 'h1-sum', 'without TE: trailers, trailers the upstream announced (Trailer: x-checksum) still arrive');
  const unannounced = await h2Request(s, 'h2.test', false);
  t.equal(unannounced.status, 200, 'a client that did not ask for trailers is served');
  t.equal(unannounced.trailers, null, 'without the trailers neither asked for nor announced (the stream ended with its body)');
});

/** The value of a metric without labels on the admin listener. */
async function counter(m: TestMeridian, name: string): Promise<number> {
  const res = await send(m.adminPort, { path: '/metrics' });
  const line = res.text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

t.test('request trailers: the body goes through; the trailers cannot be sent upstream and are counted', async (t) => {
  const { m, h1 } = await setup(t);
  const seenTrailers: Record<string, string>[] = [];
  h1.handle((req, res, body) => {
    seenTrailers.push({ ...req.trailers } as Record<string, string>);
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`h1 got ${body.length} bytes`);
  });
  const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: m.port, method: 'POST', path: '/', headers: { host: 'h1.test', 'transfer-encoding': 'chunked', trailer: 'x-digest' }, agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.write('part one, ');
    req.write('part two');
    req.addTrailers({ 'x-digest': 'abc' });
    req.end();
  });
  t.equal(chunked.status, 200, 'an HTTP/1.1 chunked request with trailers is served');
  t.equal(chunked.body, 'h1 got 18 bytes', 'its whole body reached the upstream');

  const s = h2connect(`http://127.0.0.1:${m.port}`);
  s.on('error', () => undefined);
  t.teardown(() => s.close());
  const h2 = await new Promise<number>((resolve, reject) => {
    const stream = s.request({ ':method': 'POST', ':path': '/', ':authority': 'h1.test' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'x-digest': 'def' }));
    stream.on('response', (h) => resolve(Number(h[':status'])));
    stream.on('error', reject);
    stream.end('h2 body');
    stream.resume();
  });
  t.equal(h2, 200, 'an HTTP/2 request with trailing HEADERS is served');
  t.same(seenTrailers, [{}, {}], 'the upstream saw no trailers');
  t.equal(await waitFor(async () => ((await counter(m, 'meridian_request_trailers_dropped_total')) === 2 ? 2 : null), 'both counted'), 2, 'each request whose trailers were dropped is counted');
});
