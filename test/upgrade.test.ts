import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import t, { type Test } from 'tap';
import { outstanding, parseRawResponse, rawConnect, streamRequest, type RawResponse } from './helpers/data-plane.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

const GREETING = 'hello from upstream\n';

/** Upgrade requests as the upstream saw them, and the upgraded sockets it holds. */
interface UpgradeLog {
  requests: IncomingMessage[];
  sockets: Duplex[];
  /** Upgraded sockets on which the upstream has read end-of-stream. */
  ended: number;
}

/**
 * Makes an upstream accept upgrades: 101 Switching Protocols, a greeting,
 * then an echo of every byte it receives.
 */
function acceptUpgrades(up: TestUpstream): UpgradeLog {
  const log: UpgradeLog = { requests: [], sockets: [], ended: 0 };
  up.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    log.requests.push(req);
    log.sockets.push(socket);
    socket.on('error', () => socket.destroy());
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: accept-for-${String(req.headers['sec-websocket-key'])}\r\n\r\n`,
    );
    socket.write(GREETING);
    if (head.length > 0) socket.write(head);
    socket.on('data', (chunk: Buffer) => socket.write(chunk));
    // A half-close from the other side ends the conversation (node:http sockets allow half-open).
    socket.on('end', () => {
      log.ended++;
      socket.end();
    });
  });
  return log;
}

/** A Meridian routing host `ws.test` to one upstream; both torn down with the test. */
async function setup(t: Test): Promise<{ up: TestUpstream; m: TestMeridian }> {
  const up = await startUpstream('ws');
  const m = await startTestMeridian({
    regions: { 'eu-west': { location: { lat: 53.35, lon: -6.26 } } },
    services: { ws: { versions: { stable: { endpoints: { 'eu-west': [up.address] } } } } },
    routes: { ws: { hosts: ['ws.test'], pathPrefix: '/', service: 'ws' } },
  });
  t.teardown(async () => {
    await m.close();
    await up.kill();
  });
  return { up, m };
}

function upgradeRequest(host: string, path = '/chat'): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k123\r\nSec-WebSocket-Version: 13\r\nX-Client: raw\r\n\r\n`;
}

/** Reads one complete response off raw bytes: its head, and a body delimited by content-length or by close. */
function headOf(data: Buffer): RawResponse {
  const res = parseRawResponse(data);
  if (res === null) throw new Error(`no complete response head in ${JSON.stringify(data.toString('latin1'))}`);
  return res;
}

t.test('an upgrade is relayed: 101, then bytes flow both ways until either side closes', async (t) => {
  const { up, m } = await setup(t);
  const log = acceptUpgrades(up);
  const client = await rawConnect(m.port);
  t.teardown(() => client.socket.destroy());
  client.socket.write(upgradeRequest('ws.test'));

  const afterHead = (d: Buffer): boolean => d.includes(`\r\n\r\n${GREETING}`);
  const res = headOf(await client.until(afterHead, 'the 101 and the greeting'));
  t.equal(res.status, 101, '101 Switching Protocols');
  t.same(res.headers.get('upgrade'), ['websocket']);
  t.match(res.headers.get('connection')?.join(',') ?? '', /upgrade/i, 'Connection: Upgrade is relayed on a 101');
  t.same(res.headers.get('sec-websocket-accept'), ['accept-for-k123'], 'protocol headers of the 101 are relayed');
  t.equal(res.body.toString(), GREETING, 'upstream-to-client bytes arrive after the head');

  t.equal(log.requests.length, 1, 'the upstream got the upgrade request');
  const seen = log.requests[0] as IncomingMessage;
  t.equal(seen.url, '/chat');
  t.equal(seen.headers.upgrade, 'websocket');
  t.match(seen.headers.connection ?? '', /upgrade/i);
  t.equal(seen.headers['sec-websocket-key'], 'k123', 'end-to-end headers are forwarded');
  t.equal(seen.headers['x-client'], 'raw');
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1', 'forwarding headers are added');
  t.equal(seen.headers.via, '1.1 test-node');

  const headLength = client.received().indexOf('\r\n\r\n') + 4;
  client.socket.write('ping 1');
  await client.until((d) => d.subarray(headLength).toString() === `${GREETING}ping 1`, 'the first echo');
  const big = Buffer.alloc(256 * 1024, 'z');
  client.socket.write(big);
  await client.until((d) => d.length - headLength === GREETING.length + 6 + big.length, 'a 256 KiB echo');
  t.equal(client.received().subarray(headLength).toString(), `${GREETING}ping 1${big.toString()}`, 'client-to-upstream bytes are echoed back intact');
  t.equal(outstanding(m), 0, 'an upgraded connection is not an outstanding request');

  // The client's half-close reaches the upstream, whose own close then reaches the client.
  client.socket.end();
  await waitFor(() => log.ended === 1, "the client's end of stream to reach the upstream");
  await client.closed();
  t.pass('the tunnel closed on both sides');
});

t.test('bytes sent right behind the upgrade request reach the upstream', async (t) => {
  const { up, m } = await setup(t);
  const log = acceptUpgrades(up);
  const client = await rawConnect(m.port);
  t.teardown(() => client.socket.destroy());
  client.socket.write(`${upgradeRequest('ws.test')}early bytes`);
  const data = await client.until((d) => d.includes(`${GREETING}early bytes`), 'the early bytes to be echoed');
  t.equal(headOf(data).status, 101);
  t.equal(headOf(data).body.toString(), `${GREETING}early bytes`);

  // The upstream going away closes the client's side of the tunnel.
  (log.sockets[0] as Duplex).destroy();
  await client.closed();
  t.pass('the client connection closed after the upstream left');
});

t.test('an upstream that declines the upgrade: its response is relayed', async (t) => {
  const { up, m } = await setup(t);
  // No 'upgrade' listener on the upstream: node:http answers the request as a plain one.
  up.handle((req, res) => {
    if (req.url === '/chunked') {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-plain': 'yes' });
      res.write('no upgrade ');
      res.end('for you');
      return;
    }
    res.writeHead(426, { 'content-type': 'text/plain', 'content-length': '17', 'x-plain': 'yes' }).end('upgrade required\n');
  });

  const client = await rawConnect(m.port);
  t.teardown(() => client.socket.destroy());
  client.socket.write(upgradeRequest('ws.test', '/fixed'));
  await client.closed();
  const res = headOf(client.received());
  t.equal(res.status, 426, 'the status is relayed');
  t.same(res.headers.get('x-plain'), ['yes'], 'headers are relayed');
  t.same(res.headers.get('content-length'), ['17']);
  t.equal(res.body.toString(), 'upgrade required\n', 'the body is relayed');
  t.equal(up.seen.at(-1)?.headers.upgrade, 'websocket', 'the upstream saw the upgrade request');

  // The same through node:http, with a chunked answer: a client sees a plain, complete response.
  const plain = await streamRequest(m.port, { path: '/chunked', headers: { host: 'ws.test', connection: 'Upgrade', upgrade: 'websocket' } });
  t.equal(plain.error, null);
  t.equal(plain.status, 200);
  t.equal(plain.headers['x-plain'], 'yes');
  t.equal(plain.body.toString(), 'no upgrade for you', 'the whole body arrives');
  await waitFor(() => outstanding(m) === 0, 'outstanding to return to 0');
});

t.test('an upgrade to an upstream whose port is closed: 502 upstream-connect-failed', async (t) => {
  const { up, m } = await setup(t);
  await up.kill();
  const client = await rawConnect(m.port);
  t.teardown(() => client.socket.destroy());
  client.socket.write(upgradeRequest('ws.test'));
  await client.closed();
  const res = headOf(client.received());
  t.equal(res.status, 502);
  t.same(res.headers.get('x-meridian-error'), ['upstream-connect-failed']);
  t.equal(outstanding(m), 0);
});

t.test('a client that leaves before the upstream answers the upgrade: nothing leaks', async (t) => {
  const { up, m } = await setup(t);
  const held: Duplex[] = [];
  // The upstream takes the upgrade request and never answers.
  up.server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    // Upgraded sockets of node:http are half-open capable: end-of-stream must be read and acted on.
    socket.on('end', () => socket.destroy());
    socket.resume();
    held.push(socket);
  });
  const client = await rawConnect(m.port);
  client.socket.write(upgradeRequest('ws.test'));
  await waitFor(() => held.length === 1, 'the upgrade request to reach the upstream');
  t.equal(outstanding(m), 1, 'the pending upgrade is outstanding');
  let upstreamClosed = false;
  (held[0] as Duplex).once('close', () => (upstreamClosed = true));
  client.socket.destroy();
  await waitFor(() => outstanding(m) === 0, 'outstanding to return to 0');
  await waitFor(() => upstreamClosed, 'the upstream connection to be closed');
  t.ok(upstreamClosed, 'the upstream connection of the abandoned upgrade is closed');
});

t.test('an upgrade with no matching route: 404 no-route', async (t) => {
  const { up, m } = await setup(t);
  const log = acceptUpgrades(up);
  const client = await rawConnect(m.port);
  t.teardown(() => client.socket.destroy());
  client.socket.write(upgradeRequest('elsewhere.test'));
  await client.closed();
  const res = headOf(client.received());
  t.equal(res.status, 404);
  t.same(res.headers.get('x-meridian-error'), ['no-route']);
  t.match(res.headers.get('content-type')?.[0] ?? '', /^text\/plain/);
  t.equal(res.body.toString(), 'No route matches this host and path\n');
  t.equal(log.requests.length, 0, 'nothing reached the upstream');
});

t.test('CONNECT: 405 method-not-allowed', async (t) => {
  const { up, m } = await setup(t);
  const client = await rawConnect(m.port);
  t.teardown(() => client.socket.destroy());
  client.socket.write('CONNECT ws.test:443 HTTP/1.1\r\nHost: ws.test:443\r\n\r\n');
  await client.closed();
  const res = headOf(client.received());
  t.equal(res.status, 405);
  t.same(res.headers.get('x-meridian-error'), ['method-not-allowed']);
  t.match(res.headers.get('content-type')?.[0] ?? '', /^text\/plain/);
  t.equal(up.started, 0, 'nothing reached the upstream');
});
