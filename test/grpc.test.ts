import { readFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { grpcMessage, grpcStatusFor, isGrpcContentType } from '../src/proxy/grpc.js';
import { send } from './helpers/client.js';
import { echoClient, grpc, startEchoServer, type EchoClient, type EchoServer } from './helpers/grpc.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { makeTestCertificates, type TestCertificates } from './helpers/tls.js';

const REGIONS = { 'eu-west': { location: { lat: 53.35, lon: -6.26 } } };

/** One service per upstream, each on its own host; gRPC servers answer no HTTP health path, so the checks are TCP (and TLS) connects. */
function routes(h2c: EchoServer, tls: EchoServer, caFile: string, second: EchoServer, doomedPort: number): Record<string, unknown> {
  const service = (version: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    healthCheck: { mode: 'tcp', interval: '200ms', timeout: '200ms' },
    slowStart: '0s',
    ...extra,
    versions: { v1: version },
  });
  return {
    regions: REGIONS,
    services: {
      plain: service({ protocol: 'h2c', endpoints: { 'eu-west': [`127.0.0.1:${h2c.port}`] } }),
      secure: service({ protocol: 'h2', tls: { ca: caFile }, endpoints: { 'eu-west': [`https://localhost:${tls.port}`] } }),
      slow: service({ endpoints: { 'eu-west': [{ address: `127.0.0.1:${h2c.port}`, protocol: 'h2c' }, { address: `127.0.0.1:${second.port}`, protocol: 'h2c' }] } }, { timeouts: { request: '300ms' } }),
      // The doomed endpoint is nearly always picked first; after its first check passed, no check notices it closed.
      failover: service(
        { protocol: 'h2c', endpoints: { 'eu-west': [{ address: `127.0.0.1:${doomedPort}`, weight: 1000 }, `127.0.0.1:${second.port}`] } },
        { healthCheck: { mode: 'tcp', interval: '1h', timeout: '1s' } },
      ),
    },
    routes: {
      plain: { hosts: ['plain.test'], service: 'plain' },
      secure: { hosts: ['secure.test'], service: 'secure' },
      slow: { hosts: ['slow.test'], service: 'slow' },
      failover: { hosts: ['failover.test'], service: 'failover' },
    },
  };
}

/** A TCP listener that passes TCP health checks until it is closed; then its port refuses connections. */
async function doomedListener(): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

interface Setup {
  readonly m: TestMeridian;
  readonly h2c: EchoServer;
  readonly tls: EchoServer;
  /** A second h2c server: the other endpoint of `slow` and the live one of `failover`. */
  readonly second: EchoServer;
  /** The first endpoint of `failover`: healthy at first, then closed by the test. */
  readonly doomed: { readonly port: number; close(): Promise<void> };
  readonly certs: TestCertificates;
  /** A client speaking to Meridian: h2c on the plaintext listener, or over TLS. */
  client(authority: string, over: 'h2c' | 'tls'): EchoClient;
}

let certs: TestCertificates;
t.before(async () => {
  certs = await makeTestCertificates();
});

async function setup(t: Test): Promise<Setup> {
  const h2c = await startEchoServer();
  const tls = await startEchoServer({ cert: certs.cert, key: certs.key });
  const second = await startEchoServer();
  const doomed = await doomedListener();
  t.teardown(async () => {
    h2c.kill();
    tls.kill();
    second.kill();
    await doomed.close().catch(() => undefined);
  });
  const m = await startTestMeridian(routes(h2c, tls, certs.caFile, second, doomed.port), {
    proxy: { h2c: true, tls: { listen: '127.0.0.1:0', certificates: [{ cert: join(certs.dir, 'server.pem'), key: join(certs.dir, 'server.key') }] } },
  });
  t.teardown(() => m.close());
  const tlsPort = m.meridian.tlsAddress?.port as number;
  const caPem = await readFile(certs.caFile, 'utf8');
  return {
    m,
    h2c,
    tls,
    second,
    doomed,
    certs,
    client(authority, over) {
      const c = over === 'h2c' ? echoClient(`127.0.0.1:${m.port}`, { authority }) : echoClient(`localhost:${tlsPort}`, { authority, caPem });
      t.teardown(() => c.close());
      return c;
    },
  };
}

t.test('unary calls through Meridian: h2c and TLS clients, h2c and h2 upstreams', async (t) => {
  const s = await setup(t);
  for (const over of ['h2c', 'tls'] as const) {
    for (const host of ['plain.test', 'secure.test']) {
      const r = await s.client(host, over).unary({ text: `${over} to ${host}` });
      t.equal(r.error, null, `${over} client, ${host}: no error`);
      t.equal(r.value?.text, `echo ${over} to ${host}`, `${over} client, ${host}: the reply arrives`);
    }
  }
  const seen = [...s.h2c.seen, ...s.tls.seen];
  t.equal(seen.length, 4, 'each call reached an upstream once');
  t.ok(seen.every((md) => md.get('x-request-id').length === 1 && md.get('x-forwarded-for')[0] === '127.0.0.1'), 'through Meridian: forwarding headers were added');
});

t.test('server streaming: every message, then trailers with a custom key', async (t) => {
  const s = await setup(t);
  for (const [host, over] of [['plain.test', 'h2c'], ['secure.test', 'tls']] as const) {
    const { replies, status } = await s.client(host, over).stream({ text: 'tick', count: 5 });
    t.same(replies.map((r) => r.text), ['tick 0', 'tick 1', 'tick 2', 'tick 3', 'tick 4'], `${host}: five messages in order`);
    t.equal(status.code, grpc.status.OK, `${host}: status OK from the upstream's trailers`);
    t.same(status.metadata.get('x-stream-trailer'), ['sent 5'], `${host}: the custom trailer arrives`);
  }
});

t.test("an upstream's error status and message reach the client", async (t) => {
  const s = await setup(t);
  for (const [host, over] of [['plain.test', 'h2c'], ['secure.test', 'tls']] as const) {
    const r = await s.client(host, over).unary({ fail_code: grpc.status.NOT_FOUND, fail_message: 'no such thing: café 100%' });
    t.equal(r.error?.code, grpc.status.NOT_FOUND, `${host}: the status code`);
    t.equal(r.error?.details, 'no such thing: café 100%', `${host}: the message, percent-encoding and all`);
    t.same(r.error?.metadata.get('x-meridian-error'), [], `${host}: not one of Meridian's own errors`);
  }
});

t.test('a refused connect is retried on another endpoint, as for any POST', async (t) => {
  const s = await setup(t);
  const failover = s.m.meridian.applier.current?.services.get('failover')?.versions.get('v1')?.groups[0]?.all ?? [];
  await waitFor(() => failover.length === 2 && failover.every((ep) => ep.health.state === 'healthy'), 'both failover endpoints checked healthy');
  await s.doomed.close();
  const r = await s.client('failover.test', 'h2c').unary({ text: 'still here' });
  t.equal(r.error, null, 'the call succeeds');
  t.equal(r.value?.text, 'echo still here');
  t.equal(s.second.seen.length, 1, 'on the live endpoint');
  const metrics = await send(s.m.adminPort, { path: '/metrics' });
  t.match(metrics.text, /meridian_retries_total\{service="failover",reason="upstream-connect-failed"\} 1/, 'after one retry');
});

t.test("Meridian's own errors are gRPC statuses: unavailable, deadline exceeded, unimplemented", async (t) => {
  const s = await setup(t);
  const timedOut = await s.client('slow.test', 'h2c').unary({ text: 'late', delay_ms: 3_000 });
  t.equal(timedOut.error?.code, grpc.status.DEADLINE_EXCEEDED, 'a request timeout is DEADLINE_EXCEEDED');
  t.same(timedOut.error?.metadata.get('x-meridian-error'), ['upstream-timeout'], 'with the x-meridian-error code');
  t.match(timedOut.error?.details, /did not answer in time/, 'and the reason as grpc-message');
  t.equal(s.h2c.seen.length + s.second.seen.length, 1, 'a gRPC call is a POST: once sent it is not tried again elsewhere');

  const unrouted = await s.client('nowhere.test', 'tls').unary({ text: 'x' });
  t.equal(unrouted.error?.code, grpc.status.UNIMPLEMENTED, 'no route is UNIMPLEMENTED');
  t.same(unrouted.error?.metadata.get('x-meridian-error'), ['no-route']);

  const client = s.client('plain.test', 'h2c');
  t.equal((await client.unary({ text: 'before' })).error, null, 'the upstream answers before it is killed');
  s.h2c.kill();
  const killed = await client.unary({ text: 'after' });
  t.equal(killed.error?.code, grpc.status.UNAVAILABLE, 'a killed upstream is UNAVAILABLE');
  t.match(killed.error?.metadata.get('x-meridian-error')[0], /^(upstream-connect-failed|upstream-reset|no-healthy-upstream)$/, "with Meridian's code in the metadata");

  const plain = await send(s.m.port, { headers: { host: 'nowhere.test' } });
  t.equal(plain.status, 404, 'a request that is not gRPC still gets the plain-text error');
});

t.test('the gRPC error mapping, message encoding and content types', async (t) => {
  t.same(
    [504, 408, 404, 405, 502, 503, 499, 400, 431, 500, 501].map(grpcStatusFor),
    [4, 4, 12, 12, 14, 14, 1, 13, 13, 13, 13],
    'timeouts DEADLINE_EXCEEDED, no route UNIMPLEMENTED, upstream and capacity failures UNAVAILABLE, the rest INTERNAL',
  );
  t.equal(grpcMessage('Timed out: 100% (café)\n'), 'Timed out: 100%25 (caf%C3%A9)%0A', 'percent-encoded outside printable ASCII, and % itself');
  for (const type of ['application/grpc', 'application/grpc+proto', 'Application/GRPC+json', 'application/grpc; charset=utf-8']) t.ok(isGrpcContentType(type), `${type} is gRPC`);
  for (const type of ['application/grpc-web', 'application/grpc-web+proto', 'application/grpcx', 'application/json', 'text/plain']) t.notOk(isGrpcContentType(type), `${type} is not`);
});

t.test("Meridian's errors on gRPC requests that arrive over HTTP/1.1, and gRPC-Web requests", async (t) => {
  const s = await setup(t);
  const grpcOverH1 = await send(s.m.port, { method: 'POST', headers: { host: 'nowhere.test', 'content-type': 'application/grpc' }, body: '' });
  t.equal(grpcOverH1.status, 200, 'a gRPC status, not an HTTP error');
  t.equal(grpcOverH1.headers['grpc-status'], '12');
  t.equal(grpcOverH1.headers['grpc-message'], 'No route matches this host and path');
  t.equal(grpcOverH1.headers['x-meridian-error'], 'no-route');
  t.equal(grpcOverH1.text, '', 'no body');
  const grpcWeb = await send(s.m.port, { method: 'POST', headers: { host: 'nowhere.test', 'content-type': 'application/grpc-web+proto' }, body: '' });
  t.equal(grpcWeb.status, 404, 'gRPC-Web gets the HTTP error: its clients read statuses from the body and HTTP');
});
